"""Acme's two-round pairwise test finds a planted slow node among real gloo processes."""
import pytest

from repro.acme.localize import round_one_groups, two_round_test


def test_round_one_pairs_and_a_triple():
    assert round_one_groups(4) == [[0, 1], [2, 3]]
    assert round_one_groups(5) == [[0, 1], [2, 3, 4]]


@pytest.mark.parametrize("world, faulty", [(4, [2]), (5, [4])])
def test_two_round_test_finds_the_planted_node(world, faulty):
    found = two_round_test(world, faulty)
    assert found["faulty"] == faulty
    assert set(faulty) <= set(found["suspects"])
