"""JIOC: the coordination terms, herding, the stream, and a short incremental run."""
import numpy as np
import pytest
import torch

from repro.jioc import coordination, data, learners
from repro.jioc.learners import Config


def test_ic_down_weights_the_class_that_receives_more_gradient():
    ic = coordination.InputCoordinator(3)
    ic.reset(3, torch.tensor([0, 1, 2]))
    # class 0: many samples; classes 1, 2: few -> class 0 accumulates the most |p_y - 1|
    y = torch.tensor([0] * 20 + [1] * 2 + [2] * 2)
    logits = torch.zeros(len(y), 3)
    for _ in range(5):
        ic.update(logits, y)
    w = ic.class_weights()
    assert w[0] < 1 < w[1] and torch.isclose(w[1], w[2])
    # the weighted CE is normalised: equal weights give the plain mean CE
    flat = coordination.InputCoordinator(3)
    flat.reset(3, torch.tensor([0, 1, 2]))
    y_bal = torch.tensor([0, 1, 2] * 4)
    z = torch.randn(12, 3)
    assert torch.isclose(flat.loss(z, y_bal), torch.nn.functional.cross_entropy(z, y_bal), rtol=0.2)


def test_ic_sample_variant_weights_hard_samples_up():
    ic = coordination.InputCoordinator(2, variant="sample")
    ic.reset(2, torch.tensor([0, 1]))
    z = torch.tensor([[5.0, -5.0], [0.0, 0.0]])  # first sample is easy, second is hard
    y = torch.tensor([0, 0])
    ce = torch.nn.functional.cross_entropy(z, y, reduction="none")
    assert ic.loss(z, y) > ce.mean()


def test_ic_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="IC variant"):
        coordination.InputCoordinator(2, variant="focal")


@pytest.mark.parametrize("variant", coordination.SUPPRESSION_VARIANTS)
def test_oc_is_zero_when_the_model_equals_the_previous_model_on_old_heads(variant):
    torch.manual_seed(0)
    old = torch.randn(8, 4)  # two old tasks of two classes
    new = torch.full((8, 2), -1e4)  # the new heads hold no probability mass
    logits = torch.cat([old, new], dim=1)
    y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    is_mem = torch.tensor([True] * 4 + [False] * 4)
    kd = coordination.taskwise_kd(logits, old, [2, 2])
    assert kd.abs() < 1e-6
    sup = coordination.suppression(logits[is_mem], y[is_mem], 4, "neglog")
    assert sup.abs() < 1e-6
    total = coordination.output_coordination(logits, old, y, is_mem, [2, 2], suppression_variant=variant)
    if variant == "neglog":
        assert total.abs() < 1e-6
    else:  # the separated softmax is a CE over the old heads: zero only for perfect old-head predictions
        assert torch.isclose(total, torch.nn.functional.cross_entropy(old[:4], y[:4]))


def test_suppression_grows_with_the_mass_on_new_heads():
    y = torch.tensor([0])
    low = coordination.suppression(torch.tensor([[2.0, 0.0, -2.0]]), y, 2)
    high = coordination.suppression(torch.tensor([[2.0, 0.0, 4.0]]), y, 2)
    assert 0 < low < high


def test_herding_mean_approaches_the_class_mean():
    torch.manual_seed(0)
    f = torch.randn(200, 16) + 1.0
    mu = torch.nn.functional.normalize(f, dim=1).mean(0)
    gaps = []
    for m in (1, 5, 20):
        idx = herding_idx = learners.herding(f, m)
        assert len(set(idx.tolist())) == m
        gaps.append(float((torch.nn.functional.normalize(f[herding_idx], dim=1).mean(0) - mu).norm()))
    assert gaps[0] > gaps[1] > gaps[2]
    rand = torch.nn.functional.normalize(f[torch.randperm(200)[:20]], dim=1).mean(0)
    assert gaps[2] < float((rand - mu).norm())


def test_long_tailed_stream_cuts_each_task_and_keeps_test_balanced():
    s = data.make_stream(0, "longtail")
    counts = s.train_counts()
    for t in range(s.tasks):
        head, tail = counts[2 * t], counts[2 * t + 1]
        assert tail == max(1, int(head / 10)) and (2 * t + 1) in s.tail_classes
    test_counts = np.bincount(s.y_test.numpy())
    assert test_counts.min() >= 50
    b = data.make_stream(0, "balanced")
    assert np.array_equal(b.class_order, s.class_order) and len(b.y_train) > len(s.y_train)
    assert not np.array_equal(data.make_stream(1).class_order, b.class_order)


def test_a_two_task_run_keeps_old_classes_better_than_finetuning():
    stream = data.make_stream(0, "balanced", tasks=5)
    stream.tasks = 2
    ft = learners.run(stream, Config(base="finetune", epochs=6), 0)
    er = learners.run(stream, Config(base="er", coordination="jioc", epochs=6, memory=40), 0)
    assert ft.old_to_new[0] > 90  # finetuning forgets: nearly every old sample goes to a new class
    assert er.old_to_new[0] < ft.old_to_new[0] - 30
    assert er.accuracy[-1] > ft.accuracy[-1]


def test_runs_are_deterministic_for_a_seed():
    stream = data.make_stream(3, "longtail")
    stream.tasks = 2
    cfg = Config(base="der", coordination="jioc", epochs=2)
    a, b = learners.run(stream, cfg, 3), learners.run(stream, cfg, 3)
    assert a.accuracy == b.accuracy and a.norm_ratio == b.norm_ratio


def test_der_freezes_old_branches_and_keeps_the_old_classifier():
    from repro.jioc.models import DERNet

    net = DERNet(hidden=8)
    net.add_task(2)
    w = net.fc.weight.detach().clone()
    net.add_task(2)
    assert not any(p.requires_grad for p in net.branches[0].parameters())
    assert torch.equal(net.fc.weight[:2, :8], w) and net.fc.weight.shape == (4, 16)
    out = net(torch.randn(5, 64))
    assert out["logits"].shape == (5, 4) and out["aux_logits"].shape == (5, 3)


def test_config_rejects_unknown_names():
    with pytest.raises(ValueError, match="base must be one of"):
        Config(base="bic")
    with pytest.raises(ValueError, match="coordination"):
        Config(coordination="both")


def test_foster_boosts_then_compresses_into_one_backbone():
    from repro.jioc.models import FosterTeacher, IncrementalNet

    student = IncrementalNet(hidden=16)
    student.add_task(2)
    student.add_task(2)
    teacher = FosterTeacher(student)
    out = teacher(torch.randn(5, 64))
    assert out["logits"].shape == (5, 4) and out["aux_logits"].shape == (5, 4) and out["features"].shape == (5, 32)
    assert not any(p.requires_grad for p in teacher.old.parameters())
    torch.testing.assert_close(teacher.fc.weight[:2, :16], student.head_weight()[:2])
    stream = data.make_stream(0, "balanced")
    stream.tasks = 2
    result = learners.run(stream, Config(base="foster", coordination="jioc", epochs=3), 0)
    assert len(result.accuracy) == 2 and result.accuracy[-1] > 50  # the compressed student is what is scored


def test_conv_backbone_with_augmentation_runs():
    stream = data.make_stream(0, "longtail")
    stream.tasks = 2
    result = learners.run(stream, Config(base="der", backbone="conv", augment=True, epochs=2), 0)
    assert len(result.accuracy) == 2
    x = torch.arange(64.0)[None]
    shifted = learners.shift(x, torch.Generator().manual_seed(0))
    assert sorted(shifted.flatten().tolist()) == sorted(x.flatten().tolist())


def _fake_results(gains, seeds=(0, 1, 2), memory=20):
    """A results table where +JIOC adds ``gains[base]`` (+ the seed) to a base's accuracy, in both regimes."""
    import pandas as pd

    rows = []
    for regime in ("balanced", "longtail"):
        for base, g in gains.items():
            for s in seeds:
                for coord, acc in {"none": 50.0, "ic": 51.0, "oc": 52.0, "jioc": 50.0 + g + s}.items():
                    rows.append({"base": base, "coordination": coord, "regime": regime, "memory": memory, "seed": s,
                                 "average_accuracy": acc, "tail_recall": 20.0 + (coord in ("ic", "jioc")) * (1 + s),
                                 "norm_ratio": 2.0 if coord in ("none", "oc") else 1.5,
                                 "old_to_new": 30.0 - (coord in ("oc", "jioc")) * (5 + s)})
    return pd.DataFrame(rows)


def test_claims_follow_the_policy_and_keep_non_paper_bases_out():
    from repro.claims import REPRODUCED, Superior, policy_errors
    from repro.jioc import report

    results = _fake_results({"finetune": 1.0, "er": 20.0, "icarl": 5.0, "der": 20.0})
    claims = {c.id: c for c in report.claims(results, 20)}
    assert set(claims) == {"j1_gain_icarl", "j1_gain_der", "j1_der_smallest", "j2_longtail_gain_icarl",
                           "j3_tail_recall", "j3_norm_ratio", "j4_old_to_new", "j5_joint_vs_single"}
    for c in claims.values():
        assert policy_errors(c) == [] and c.kind == "reproduction" and isinstance(c.rule, Superior)
        assert c.samples is not None and c.seeds == 3 and c.confidence in ("paper", "secondary")
    # the per-seed samples are the paired gains; DER gaining more than iCaRL breaks the paper's pattern
    assert claims["j1_gain_der"].samples == [20.0, 21.0, 22.0]
    assert claims["j1_der_smallest"].samples == [-15.0, -15.0, -15.0]
    assert claims["j1_der_smallest"].verdict != REPRODUCED
    assert claims["j1_gain_icarl"].verdict == REPRODUCED
    # j2 tests iCaRL's long-tailed gain against Table 2's +5.07, direction only
    assert claims["j2_longtail_gain_icarl"].samples == [5.0, 6.0, 7.0]
    assert "5.07" in claims["j2_longtail_gain_icarl"].paper_value
    assert "direction only" in claims["j2_longtail_gain_icarl"].statement
    # every base a mechanism claim averages over is named, non-paper bases flagged
    for name in ("ER*", "iCaRL", "DER"):
        assert name in claims["j4_old_to_new"].statement
    assert "Finetune" not in claims["j4_old_to_new"].statement
    assert "Finetune*" in claims["j3_tail_recall"].statement
    assert claims["j4_old_to_new"].samples == [5.0, 6.0, 7.0]


def test_gains_table_reports_every_base_and_the_regime_difference():
    from repro.jioc import report

    results = _fake_results({"er": 20.0, "icarl": 5.0})
    table = report.gains_table(results, 20)
    assert table.loc[("ER", "balanced"), "mean"] == 21.0 and not table.loc[("ER", "balanced"), "paper base"]
    assert table.loc[("iCaRL", "longtail - balanced"), "mean"] == 0.0
    assert table.loc[("iCaRL", "balanced"), "paper base"] and table.loc[("iCaRL", "balanced"), "seeds"] == 3


def test_der_pattern_is_not_claimed_without_another_paper_base():
    from repro.jioc import report

    ids = [c.id for c in report.claims(_fake_results({"er": 2.0, "der": 1.0}), 20)]
    assert "j1_gain_der" in ids and "j1_der_smallest" not in ids and "j2_longtail_gain_icarl" not in ids
