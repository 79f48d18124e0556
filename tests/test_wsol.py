"""WSOL: box geometry, metrics on hand cases, noise injector, WE variants, DDT and a short, deterministic run."""
import numpy as np
import pytest
import torch

from repro.wsol import boxes, data, losses, metrics, noise, pseudo


def test_iou_hand_cases():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 5, 5]], np.float32)
    got = boxes.iou(a, b)[0].tolist()
    assert got == pytest.approx([50 / 150, 1.0, 0.0, 25 / 100])
    assert boxes.iou(np.zeros((0, 4)), b).shape == (0, 4)
    # a degenerate box has no area: IoU 0, never nan
    assert boxes.iou([[3, 3, 3, 3]], [[3, 3, 3, 3]]).item() == 0.0


def test_nms_hand_case():
    bx = [[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 9]]
    sc = [0.9, 0.8, 0.7, 0.95]
    # box 3 (0.95) suppresses 0 (IoU 0.9) and 1 (IoU 9*9/(90+100-81)=0.74); box 2 is far away
    assert boxes.nms(bx, sc, 0.5).tolist() == [3, 2]
    # a higher threshold keeps box 1 (IoU with 3 is 0.74 < 0.8) but not box 0 (0.9)
    assert boxes.nms(bx, sc, 0.8).tolist() == [3, 1, 2]
    assert boxes.nms(np.zeros((0, 4)), [], 0.5).tolist() == []


def test_component_boxes_are_tight_and_sorted():
    m = np.zeros((20, 20), bool)
    m[2:5, 3:9] = True  # 18 px
    m[10:18, 10:12] = True  # 16 px
    m[0, 19] = True  # 1 px, dropped by min_area
    b, s = boxes.component_boxes(m, min_area=4)
    assert b.tolist() == [[3, 2, 9, 5], [10, 10, 12, 18]] and s.tolist() == [18, 16]
    assert boxes.largest(b).tolist() == [[3, 2, 9, 5]]


def test_metrics_on_a_multi_object_example():
    gt = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([[0, 0, 10, 10]], np.float32)]
    preds = [np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 31]], np.float32),
             np.array([[30, 30, 40, 40]], np.float32)]
    scores = [np.array([0.9, 0.8, 0.3]), np.array([0.95])]
    # image 0: first box TP, the duplicate is a FP (its GT is taken), third TP; image 1: FP
    assert metrics.match(preds[0], scores[0], gt[0]).tolist() == [True, False, True]
    assert metrics.instance_recall(preds, scores, gt) == pytest.approx(200 / 3)
    assert metrics.instance_recall(preds, scores, gt, min_score=0.5) == pytest.approx(100 / 3)
    # ranked: 0.95 FP, 0.9 TP, 0.8 FP, 0.3 TP; 3 GT -> precision at the recall steps: 1/2 at 1/3, 2/4 at 2/3
    assert metrics.ap50(preds, scores, gt) == pytest.approx(100 * (1 / 3 * 0.5 + 1 / 3 * 0.5))
    assert metrics.gt_known_loc(preds, scores, gt) == 50.0
    assert metrics.top1_loc(preds, scores, gt, [False, True]) == 0.0
    # the ground truth as predictions is perfect; a prediction may match any GT box of its image
    assert metrics.ap50(gt, [np.ones(len(g)) for g in gt], gt) == pytest.approx(100.0)
    assert metrics.top_box_hit(np.array([[20, 20, 30, 30]]), np.ones(1), gt[0])


def test_max_box_acc_picks_the_best_threshold():
    m = np.zeros((64, 64), np.float32)
    m[10:30, 10:30] = 0.5
    m[15:25, 15:25] = 1.0
    gt = [np.array([[15, 15, 25, 25]], np.float32)]
    acc, t = metrics.max_box_acc([m], gt, thresholds=np.array([0.3, 0.7]))
    assert acc == 100.0 and t == 0.7


def test_noise_injector_rates():
    rng = np.random.default_rng(0)
    clean = [np.array([[10, 10, 26, 26]], np.float32)] * 4000
    noisy, log = noise.corrupt(clean, 0.4, rng)
    assert log.boxes == 4000 and abs(log.rate - 0.4) < 0.03
    for kind in noise.KINDS:
        assert abs(log.kinds[kind] / 4000 - 0.1) < 0.02
    assert sum(len(b) for b in noisy) == 4000 - log.kinds["drop"] + log.kinds["spurious"]
    assert all(((b >= 0) & (b <= data.SIZE)).all() for b in noisy)
    same, log0 = noise.corrupt(clean[:50], 0.0, rng)
    assert log0.rate == 0 and all(np.array_equal(a, b) for a, b in zip(same, clean))


def test_we_variants_on_a_toy_batch():
    p = torch.tensor([0.9, 0.1, 0.1, 0.5])
    logits = torch.logit(p)
    h = losses.binary_entropy(p)
    assert losses.we_loss(logits, "uniform").item() == pytest.approx(h.mean().item())
    assert losses.we_loss(logits, "fgprob").item() == pytest.approx((p * h).mean().item())
    # balanced: fg = {0.9}; bg = {0.1, 0.1, 0.5}; the two group means count equally
    assert losses.we_loss(logits, "balanced").item() == pytest.approx((h[0] + h[1:].mean()).item() / 2)
    with pytest.raises(ValueError, match="WE variant"):
        losses.we_loss(logits, "focal")
    # the weights are stop-gradient: fgprob's gradient is p * dH/dlogit, not d(pH)/dlogit
    x = logits.clone().requires_grad_(True)
    losses.we_loss(x, "fgprob").backward()
    x2 = logits.clone().requires_grad_(True)
    losses.binary_entropy(torch.sigmoid(x2)).mul(p).mean().backward()
    assert torch.allclose(x.grad, x2.grad)


def test_detection_targets_and_perfect_prediction():
    t = losses.targets([np.array([[8, 8, 24, 24]], np.float32)])
    assert t["mask"].sum() == 1 and t["mask"][0, 2, 2] and t["heat"][0, 2, 2] == 1.0
    assert t["reg"][0, :, 2, 2].tolist() == pytest.approx([0.0, 0.0, np.log(0.25), np.log(0.25)])


def test_synthetic_data_boxes_are_exact():
    s = data.make_split(0, 20)
    assert s.images.shape == (20, 3, 64, 64) and s.images.dtype == torch.uint8
    assert set(s.counts) <= {1, 2, 3} and (s.counts == 1).sum() == 10
    for b, m in zip(s.boxes, s.masks):
        for x0, y0, x1, y1 in b.astype(int):
            assert m[y0:y1, x0:x1].any() and m[y0, x0:x1].any() and m[y1 - 1, x0:x1].any()
    assert torch.equal(data.make_split(0, 20).images, s.images)


def test_ddt_finds_the_dominant_direction_and_orients_it_to_the_minority():
    torch.manual_seed(0)
    f = torch.randn(4, 3, 8, 8) * 0.1
    f[:, 0, 2:4, 2:4] += 5.0  # a small bright "object" in channel 0
    d = pseudo.fit_ddt(f)
    assert abs(d.direction[0]) > 0.99
    m = d.maps(f)
    assert m[:, 18:30, 18:30].mean() > 0 > m[:, 40:, 40:].mean()  # maps are upsampled 8 -> 64


def test_agreement_and_split_threshold():
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    assert pseudo.agreement(a, a) == pytest.approx(1.0)
    assert pseudo.agreement(a, a[:1]) == pytest.approx(0.5)
    assert pseudo.agreement(a, np.zeros((0, 4))) == 0.0
    assert pseudo.split_threshold([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 0.8
    assert pseudo.correct(a, a) and not pseudo.correct(a[:1], a)


def test_a_short_run_is_deterministic_and_learns():
    from repro.wsol import experiment
    from repro.wsol.train import Recipe

    plan = experiment.Plan(seeds=1, n_train=64, n_held=32, n_test=32, classifier_epochs=2,
                           recipe=Recipe(epochs=2, batch=16), rhos=(0.4,), scr_rhos=(), variant_rhos=())
    prep = experiment.prepare((5, plan))
    assert set(prep.reliable) == {0.4} and len(prep.reliable[0.4]) == 64
    job = experiment.Job("bcd_we", 0.4, "balanced", 5)
    a = experiment.run_job((job, prep, plan.recipe))
    b = experiment.run_job((job, prep, plan.recipe))
    keys = [k for k in a if k not in ("examples", "cpu_s")]
    assert all(a[k] == b[k] or (np.isnan(a[k]) and np.isnan(b[k])) for k in keys)
    assert 0 <= a["ap50_all"] <= 100


def test_claims_follow_the_policy():
    import pandas as pd

    from repro.claims import policy_errors
    from repro.wsol import report

    rows = []
    for seed in range(3):
        for rho in (0.0, 0.4):
            for method, ap in (("bcd", 50 - 40 * rho), ("bcd_dl", 55 - 20 * rho), ("bcd_we", 60 - 10 * rho)):
                rows.append({"seed": seed, "method": method, "rho": rho, "variant": "balanced" * (method == "bcd_we"),
                             "ap50_all": ap + seed, "recall_single": 90.0, "recall_multi": 80.0 + seed,
                             "ap50_multi": 70.0})
        rows.append({"seed": seed, "method": "scr", "rho": 0.0, "variant": "", "ap50_all": 30.0,
                     "recall_single": 89.0 + seed * 0.5, "recall_multi": 40.0, "ap50_multi": 20.0})
    stats = pd.DataFrame({"seed": [0, 1, 2], "pseudo_recall": [80.0, 82, 85], "random_recall": [3.0, 2, 4],
                          "noisy_share_du": [70.0, 72, 75], "noisy_share_dl": [10.0, 12, 9]})
    claims = {c.id: c for c in report.claims(pd.DataFrame(rows), stats, "balanced",
                                             {"noise_rate": (0.41, 1000), "ap_gt": 100.0, "determinism": 0.0})}
    assert all(policy_errors(c) == [] for c in claims.values())
    assert claims["w2_we_gain_grows"].samples == pytest.approx([12.0] * 3)
    assert claims["w3_we_vs_dl_only"].samples == pytest.approx([(5 + 9) / 2] * 3)
    assert claims["w1_multi_recall"].samples == pytest.approx([40.0, 41.0, 42.0])
    assert claims["w1_single_parity"].verdict == "reproduced"
    assert all(c.premise == report.PREMISE for c in claims.values() if c.kind == "reproduction")
