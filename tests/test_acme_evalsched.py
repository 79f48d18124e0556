"""Acme part 3: the evaluation-scheduling simulator on cases small enough to compute by hand."""
import pytest

from repro.acme.evalsched import (
    BASELINE,
    DECOUPLED,
    Cluster,
    Dataset,
    Policy,
    lpt_lower_bound,
    partition_tasks,
    simulate,
    synthetic_suite,
)

# 1 node, 2 GPUs; a 2.5 GB model over a 10 Gb/s NIC loads in 2 s alone and 4 s when two loads share the NIC
TINY = Cluster(nodes=1, gpus_per_node=2, model_gb=2.5, nic_gbps=10.0, pcie_load_s=0.5, cpu_slots=2)
TWO = [Dataset("a", 10.0, 5.0), Dataset("b", 10.0, 5.0)]


def test_baseline_makespan_by_hand():
    # both trials load together (4 s), infer (10 s), then score on the GPU (5 s)
    assert simulate(TWO, TINY, BASELINE).makespan_s == pytest.approx(19.0)


def test_load_once_and_cpu_metrics_by_hand():
    # one remote load (2 s), then each GPU copies from host memory (0.5 s), infers (10 s); metrics on CPU (5 s)
    policy = Policy(load_once=True, cpu_metrics=True)
    result = simulate(TWO, TINY, policy)
    assert result.makespan_s == pytest.approx(17.5)
    assert result.gpu_busy_s == pytest.approx(20.0)


def test_cpu_metrics_alone_frees_the_gpu_for_the_next_trial():
    three = TWO + [Dataset("c", 10.0, 5.0)]
    # baseline: a, b finish at 19; c then loads alone (2 s), infers (10) and scores (5): 36
    assert simulate(three, TINY, BASELINE).makespan_s == pytest.approx(36.0)
    # CPU metrics: a, b free their GPUs at 14; c loads (2), infers (10) -> 26, metric -> 31
    assert simulate(three, TINY, Policy(cpu_metrics=True)).makespan_s == pytest.approx(31.0)


def test_partition_splits_long_and_merges_short_datasets():
    tasks = partition_tasks([Dataset("long", 100, 9), Dataset("s1", 10, 1), Dataset("s2", 15, 1),
                             Dataset("s3", 30, 1)], task_seconds=40)
    # first fit decreasing: s3 (30) + s1 (10) fill one task, s2 (15) gets its own
    assert sorted(t.inference_s for t in tasks) == pytest.approx([15, 100 / 3, 100 / 3, 100 / 3, 40])
    assert sum(t.metric_s for t in tasks) == pytest.approx(12)  # the split dataset is scored once
    keys = [t.priority_s for t in tasks]
    assert keys == sorted(keys, reverse=True)  # long metric work starts first


def test_decoupled_beats_the_baseline_on_the_synthetic_suite():
    suite = synthetic_suite(63, seed=0)
    assert len(suite) == 63
    for nodes in (1, 4):
        cluster = Cluster(nodes)
        base = simulate(suite, cluster, BASELINE, dt=2.0).makespan_s
        ours = simulate(suite, cluster, DECOUPLED, dt=2.0).makespan_s
        assert ours < base
        assert ours >= lpt_lower_bound(suite, cluster)
