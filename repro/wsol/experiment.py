"""What each scale runs, in two stages.

1. :func:`prepare` (one per seed): the three splits, the classifier on image labels, DDT pseudo boxes (threshold on
   the held-out split), CAM maps and boxes, the noisy pseudo boxes at each rho, the D_L / D_U split (threshold fixed
   on the held-out split at rho = :data:`SPLIT_RHO`), and the CAM and DDT baselines on the test split.
2. :func:`run_job` (one per seed x method x rho): a localiser trained on that seed's pseudo boxes, scored on the
   test split.

Runs are independent, so both stages go to ``repro.utils.pool_map`` (single-threaded worker processes; each run
seeds itself, so the numbers do not depend on the pool size). Every method of a seed starts from the same
initial weights and sees the same batches order seed, so differences between methods are paired by seed.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from repro.utils import pool_map
from repro.wsol import metrics, noise, pseudo, train
from repro.wsol.data import Split, make_split
from repro.wsol.train import Recipe

SPLIT_RHO = 0.2  # the held-out noise rate at which the D_L / D_U threshold is fixed (then used at every rho)
DDT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # candidates, relative to each map's maximum
EXAMPLES = 6  # test images whose predictions come back for the figures


@dataclass(frozen=True)
class Plan:
    seeds: int
    n_train: int
    n_held: int
    n_test: int
    classifier_epochs: int
    recipe: Recipe
    rhos: tuple[float, ...]
    scr_rhos: tuple[float, ...]  # SCR runs (claim 1 needs rho = 0 only)
    variant_rhos: tuple[float, ...]  # where the WE variants other than the chapter's run


PLANS = {
    "smoke": Plan(seeds=1, n_train=128, n_held=64, n_test=96, classifier_epochs=8,
                  recipe=Recipe(epochs=8, batch=16),
                  rhos=(0.0, 0.4), scr_rhos=(0.0,), variant_rhos=()),
    # about 75 CPU-seconds per seed: classifier 24 epochs, 13 localisers of 12 epochs on 320 images
    "default": Plan(seeds=3, n_train=320, n_held=160, n_test=240, classifier_epochs=24, recipe=Recipe(epochs=12),
                    rhos=(0.0, 0.2, 0.4), scr_rhos=(0.0,), variant_rhos=(0.4,)),
    # one GPU (or a long CPU run): more data, epochs, seeds, a finer rho grid, every variant and SCR at every rho
    "full": Plan(seeds=10, n_train=2000, n_held=500, n_test=1000, classifier_epochs=40,
                 recipe=Recipe(epochs=30, width=64), rhos=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5),
                 scr_rhos=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5), variant_rhos=(0.0, 0.1, 0.2, 0.3, 0.4, 0.5)),
}


@dataclass
class Prepared:
    """One seed's stage-1 output: what every localiser of that seed trains and is scored on."""

    seed: int
    train: Split
    held: Split
    test: Split
    test_correct: np.ndarray  # classifier top-1 right, per test image
    classifier_accuracy: float
    ddt_threshold: float
    cam_threshold: float
    split_threshold: float
    clean_pseudo: list[np.ndarray]
    cam_train: list[np.ndarray]
    noisy: dict[float, list[np.ndarray]] = field(default_factory=dict)
    reliable: dict[float, np.ndarray] = field(default_factory=dict)
    logs: dict[float, noise.NoiseLog] = field(default_factory=dict)
    baselines: list[dict] = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def _relative(maps: torch.Tensor) -> torch.Tensor:
    return maps / maps.flatten(1).max(1).values.clamp(min=1e-8)[:, None, None]


def _f1(preds, gts) -> float:
    tp = sum(int(metrics.match(p, np.ones(len(p)), g).sum()) for p, g in zip(preds, gts))
    return 2 * tp / max(sum(len(p) for p in preds) + sum(len(g) for g in gts), 1)


def score(preds, scores, split: Split, correct: np.ndarray, min_score: float = -np.inf) -> dict:
    """Every metric of one localiser on a split: threshold-free ones on all boxes, recall at ``min_score``."""
    counts = split.counts
    out = {"gt_known_loc": metrics.gt_known_loc(preds, scores, split.boxes),
           "top1_loc": metrics.top1_loc(preds, scores, split.boxes, correct)}
    for name, sel in (("all", counts > 0), ("single", counts == 1), ("multi", counts > 1)):
        idx = np.nonzero(sel)[0]
        p, s, g = [preds[i] for i in idx], [scores[i] for i in idx], [split.boxes[i] for i in idx]
        out[f"recall_{name}"] = metrics.instance_recall(p, s, g, min_score)
        out[f"ap50_{name}"] = metrics.ap50(p, s, g)
    for k in (1, 2, 3):
        idx = np.nonzero(counts == k)[0]
        out[f"recall_n{k}"] = metrics.instance_recall([preds[i] for i in idx], [scores[i] for i in idx],
                                                      [split.boxes[i] for i in idx], min_score)
    return out


def prepare(args: tuple[int, Plan]) -> Prepared:
    seed, plan = args
    t0 = time.process_time()
    tr, held, te = (make_split(seed, n, stream) for stream, n in enumerate((plan.n_train, plan.n_held, plan.n_test)))
    clf = train.train_classifier(tr.images, tr.labels, seed, plan.classifier_epochs, plan.recipe)
    predicted = train.classify(clf, te.images)
    correct = predicted == te.labels.numpy()
    # DDT on the training images' mid-level features; its threshold (relative to each map's max) on held-out
    ddt = pseudo.fit_ddt(pseudo.features(clf, tr.images))
    maps = {name: _relative(ddt.maps(pseudo.features(clf, s.images))) for name, s in
            (("train", tr), ("held", held), ("test", te))}
    f1s = [_f1(pseudo.boxes_from_maps(maps["held"], a)[0], held.boxes) for a in DDT_THRESHOLDS]
    ddt_t = DDT_THRESHOLDS[int(np.argmax(f1s))]
    clean, _ = pseudo.boxes_from_maps(maps["train"], ddt_t)
    held_pseudo, _ = pseudo.boxes_from_maps(maps["held"], ddt_t)
    # CAM: threshold by MaxBoxAcc on held-out (Choe et al. 2020); its boxes are the second generator for the split
    cams = {name: pseudo.cam_maps(clf, s.images, s.labels) for name, s in (("train", tr), ("held", held))}
    _, cam_t = metrics.max_box_acc(cams["held"], held.boxes)
    cam_boxes = {k: [metrics.map_boxes(m, cam_t, pseudo.MIN_AREA)[0] for m in v] for k, v in cams.items()}
    # the D_L / D_U threshold: held-out pseudo boxes with noise at SPLIT_RHO, "right" judged against held-out boxes
    held_noisy, _ = noise.corrupt(held_pseudo, SPLIT_RHO, np.random.default_rng([seed, 7, 1]))
    held_scores = [pseudo.agreement(p, c) for p, c in zip(held_noisy, cam_boxes["held"])]
    split_t = pseudo.split_threshold(held_scores, [pseudo.correct(p, g) for p, g in zip(held_noisy, held.boxes)])
    prep = Prepared(seed, tr, held, te, correct, 100.0 * float(correct.mean()), ddt_t, cam_t, split_t, clean,
                    cam_boxes["train"])
    for rho in plan.rhos:
        noisy, log = noise.corrupt(clean, rho, np.random.default_rng([seed, int(round(rho * 100)), 2]))
        prep.noisy[rho], prep.logs[rho] = noisy, log
        prep.reliable[rho] = np.array([pseudo.agreement(p, c) >= split_t for p, c in zip(noisy, cam_boxes["train"])])
    # pseudo-box quality against the (evaluation-only) training boxes, and the chance baseline
    ones = [np.ones(len(b)) for b in clean]
    rand = pseudo.random_boxes_like(clean, np.random.default_rng([seed, 3]))
    prep.stats = {"pseudo_recall": metrics.instance_recall(clean, ones, tr.boxes),
                  "random_recall": metrics.instance_recall(rand, ones, tr.boxes),
                  "pseudo_right": 100.0 * float(np.mean([pseudo.correct(p, g) for p, g in zip(clean, tr.boxes)]))}
    # baselines on the test split: CAM thresholding (no pseudo boxes) and DDT's own boxes
    test_cams = pseudo.cam_maps(clf, te.images, torch.as_tensor(predicted))
    cam_b, cam_s = zip(*[metrics.map_boxes(m, cam_t, pseudo.MIN_AREA) for m in test_cams])
    ddt_b, ddt_s = pseudo.boxes_from_maps(maps["test"], ddt_t)
    max_acc, _ = metrics.max_box_acc(test_cams, te.boxes)
    for method, b, s, extra in (("cam", list(cam_b), list(cam_s), {"max_box_acc": max_acc}),
                                ("ddt", ddt_b, ddt_s, {"max_box_acc": metrics.max_box_acc(
                                    list(maps["test"].numpy()), te.boxes)[0]})):
        prep.baselines.append({"seed": seed, "method": method, "rho": np.nan, "variant": "", **score(b, s, te, correct),
                               **extra, "examples": (b[:EXAMPLES], s[:EXAMPLES])})
    prep.stats["cpu_s"] = time.process_time() - t0
    return prep


@dataclass(frozen=True)
class Job:
    method: str  # "oracle", "bcd", "bcd_dl", "bcd_we", "scr"
    rho: float
    variant: str = ""
    seed: int = 0


METHODS = {"scr": "SCR (PSOL regressor)", "bcd": "BCD", "bcd_dl": "BCD on D_L only", "bcd_we": "BCD + WE",
           "oracle": "BCD on true boxes (oracle)", "cam": "CAM thresholding", "ddt": "DDT boxes"}


def jobs(plan: Plan, seed: int, variant: str, variants: tuple[str, ...]) -> list[Job]:
    """The localisers of one seed: BCD, BCD on D_L and BCD + WE (the chapter's variant) at every rho, the other WE
    variants at ``plan.variant_rhos``, SCR at ``plan.scr_rhos`` and the oracle once."""
    out = [Job("oracle", 0.0, seed=seed)]
    out += [Job("scr", r, seed=seed) for r in plan.scr_rhos]
    for r in plan.rhos:
        out += [Job("bcd", r, seed=seed), Job("bcd_dl", r, seed=seed), Job("bcd_we", r, variant, seed)]
        if r in plan.variant_rhos:
            out += [Job("bcd_we", r, v, seed) for v in variants if v != variant]
    return out


def run_job(args: tuple[Job, Prepared, Recipe]) -> dict:
    job, prep, recipe = args
    t0 = time.process_time()
    tr = prep.train
    if job.method == "scr":
        model = train.train_scr(tr.images, prep.noisy[job.rho], job.seed, recipe)
        predict = lambda images: train.predict_scr(model, images)  # noqa: E731
    else:
        boxes = tr.boxes if job.method == "oracle" else prep.noisy[job.rho]
        mode = {"oracle": "all", "bcd": "all", "bcd_dl": "dl", "bcd_we": "we"}[job.method]
        model = train.train_bcd(tr.images, boxes, job.seed, mode, prep.reliable.get(job.rho),
                                job.variant or "balanced", recipe)
        predict = lambda images: train.predict_bcd(model, images, recipe.top_k)  # noqa: E731
    held_b, held_s = predict(prep.held.images)
    tau = metrics.f1_threshold(held_b, held_s, prep.held.boxes) if job.method != "scr" else -np.inf
    b, s = predict(prep.test.images)
    return {"seed": job.seed, "method": job.method, "rho": job.rho, "variant": job.variant,
            **score(b, s, prep.test, prep.test_correct, tau), "tau": tau, "cpu_s": time.process_time() - t0,
            "examples": (b[:EXAMPLES], s[:EXAMPLES])}


def run(plan: Plan, seed: int, variant: str, variants: tuple[str, ...], workers: int | None = None,
        progress: bool = True) -> tuple[list[Prepared], pd.DataFrame]:
    """Both stages for seeds ``seed .. seed + plan.seeds - 1``; returns the prepared seeds and one row per run."""
    preps = pool_map(prepare, [(s, plan) for s in range(seed, seed + plan.seeds)], workers, progress, "seeds")
    by_seed = {p.seed: p for p in preps}
    todo = [j for p in preps for j in jobs(plan, p.seed, variant, variants)]
    rows = pool_map(run_job, [(j, by_seed[j.seed], plan.recipe) for j in todo], workers, progress, "localisers")
    rows += [r for p in preps for r in p.baselines]
    return preps, pd.DataFrame(rows)


def rerun(job_row: dict, prep: Prepared, recipe: Recipe) -> dict:
    """The same run again, for the determinism check: single-threaded, as in the worker processes."""
    job = Job(job_row["method"], job_row["rho"], job_row["variant"], job_row["seed"])
    return pool_map(run_job, [(job, prep, recipe)], workers=1, progress=False)[0]


def label(method: str, variant: str = "") -> str:
    return METHODS[method] + (f" [{variant}]" if variant else "")


def summary(results: pd.DataFrame, columns=("gt_known_loc", "top1_loc", "recall_single", "recall_multi",
                                            "ap50_single", "ap50_multi", "ap50_all")) -> pd.DataFrame:
    """method x rho table of "mean ± std" over seeds."""
    df = results.assign(name=[label(m, v) for m, v in zip(results.method, results.variant)],
                        rho=results.rho.fillna(-1))
    g = df.groupby(["name", "rho"])[list(columns)].agg(["mean", "std"])
    out = pd.DataFrame({c: [f"{m:.1f} ± {s:.1f}" if not np.isnan(s) else f"{m:.1f}" for m, s in
                            zip(g[(c, "mean")], g[(c, "std")])] for c in columns}, index=g.index)
    out.index = out.index.set_levels([out.index.levels[0], [("—" if r < 0 else f"{r:g}") for r in
                                                            out.index.levels[1]]])
    return out


def seed_stats(preps: list[Prepared]) -> pd.DataFrame:
    """One row per seed: classifier accuracy, thresholds, pseudo-box quality, the D_L share at each rho, and (at the
    largest rho) the share of noise-touched images in D_L and in D_U."""
    rows = []
    for p in preps:
        high = max(p.noisy)
        touched = np.array(p.logs[high].corrupted_images)
        rel = p.reliable[high]
        row = {"seed": p.seed, "classifier_accuracy": p.classifier_accuracy, "ddt_threshold": p.ddt_threshold,
               "cam_threshold": p.cam_threshold, "split_threshold": p.split_threshold, **p.stats,
               "noisy_share_dl": 100.0 * float(touched[rel].mean()) if rel.any() else np.nan,
               "noisy_share_du": 100.0 * float(touched[~rel].mean()) if (~rel).any() else np.nan}
        for rho, r in p.reliable.items():
            row[f"dl_share_rho{rho:g}"] = 100.0 * float(r.mean())
            row[f"noise_rate_rho{rho:g}"] = p.logs[rho].rate
        rows.append(row)
    return pd.DataFrame(rows)


def pooled_noise_rate(preps: list[Prepared], rho: float) -> tuple[float, int]:
    """The realised share of corrupted pseudo boxes at ``rho`` over all seeds, and the number of boxes."""
    boxes = sum(p.logs[rho].boxes for p in preps)
    return sum(sum(p.logs[rho].kinds.values()) for p in preps) / max(boxes, 1), boxes
