"""Acme's two-round pairwise test finds a planted slow node among real gloo processes."""
import pytest

from repro.acme.localize import round_one_groups, two_round_test, two_round_trials


def test_round_one_pairs_and_a_triple():
    assert round_one_groups(4) == [[0, 1], [2, 3]]
    assert round_one_groups(5) == [[0, 1], [2, 3, 4]]


@pytest.mark.parametrize("world, faulty", [(4, [2])])
def test_two_round_test_finds_the_planted_node(world, faulty):
    found = two_round_test(world, faulty)
    assert found["faulty"] == faulty
    assert set(faulty) <= set(found["suspects"])


def test_several_trials_share_one_process_group_and_report_each_plant():
    trials = two_round_trials(5, [([4], 0.1), ([1], 0.1)])  # 5 ranks: round one has a triple
    assert [t["planted"] for t in trials] == [[4], [1]]
    assert [t["faulty"] for t in trials] == [[4], [1]]
