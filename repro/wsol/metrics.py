"""Localisation metrics. Every prediction may match any ground-truth box of its image (PSOL issue #13); in the
multi-object metrics each ground-truth box is matched at most once, greedily by score (as in VOC/COCO).

- GT-known Loc: the top-scoring box has IoU >= 0.5 with some ground-truth box (class ignored);
- Top-1 Loc: GT-known and the classifier's top-1 class is right;
- MaxBoxAcc (Choe et al. 2020, v1): for a score map, the best over map thresholds of the share of images whose
  largest-component box reaches IoU >= 0.5 (with any ground-truth box here);
- per-instance recall: matched ground-truth boxes / all ground-truth boxes, at IoU >= 0.5;
- AP50: class-agnostic average precision at IoU 0.5, all-point interpolation (VOC 2010+).
"""
from __future__ import annotations

import numpy as np

from repro.wsol.boxes import component_boxes, iou, largest

IOU = 0.5


def match(pred: np.ndarray, scores: np.ndarray, gt: np.ndarray, threshold: float = IOU) -> np.ndarray:
    """For the predictions sorted by score (highest first), whether each matches a not-yet-matched ground-truth box
    at IoU >= ``threshold`` (its best such box). Returned in the predictions' original order."""
    tp = np.zeros(len(pred), bool)
    if len(pred) == 0 or len(gt) == 0:
        return tp
    overlaps = iou(pred, gt).numpy()
    taken = np.zeros(len(gt), bool)
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        cand = np.where(~taken & (overlaps[i] >= threshold), overlaps[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= threshold:
            taken[j] = tp[i] = True
    return tp


def top_box_hit(pred: np.ndarray, scores: np.ndarray, gt: np.ndarray, threshold: float = IOU) -> bool:
    """Whether the top-scoring prediction overlaps some ground-truth box at IoU >= ``threshold``."""
    if len(pred) == 0 or len(gt) == 0:
        return False
    top = pred[[int(np.argmax(scores))]]
    return bool(iou(top, gt).max() >= threshold)


def gt_known_loc(preds, scores, gts) -> float:
    """Percentage of images whose top box hits a ground-truth box."""
    return 100.0 * float(np.mean([top_box_hit(p, s, g) for p, s, g in zip(preds, scores, gts)]))


def top1_loc(preds, scores, gts, correct) -> float:
    """Percentage of images whose top box hits and whose class is predicted right."""
    return 100.0 * float(np.mean([top_box_hit(p, s, g) and bool(c) for p, s, g, c in zip(preds, scores, gts, correct)]))


def instance_recall(preds, scores, gts, min_score: float = -np.inf) -> float:
    """Percentage of ground-truth boxes matched by a prediction with score >= ``min_score``."""
    hit = total = 0
    for p, s, g in zip(preds, scores, gts):
        keep = np.asarray(s) >= min_score
        hit += int(match(np.asarray(p)[keep], np.asarray(s)[keep], g).sum())
        total += len(g)
    return 100.0 * hit / max(total, 1)


def ap50(preds, scores, gts, threshold: float = IOU) -> float:
    """Class-agnostic AP (percent) at IoU ``threshold`` over a set of images, all-point interpolated."""
    flags, all_scores = [], []
    for p, s, g in zip(preds, scores, gts):
        flags.append(match(np.asarray(p), np.asarray(s), g, threshold))
        all_scores.append(np.asarray(s, np.float64))
    n_gt = sum(len(g) for g in gts)
    if n_gt == 0:
        return float("nan")
    tp = np.concatenate(flags) if flags else np.zeros(0, bool)
    sc = np.concatenate(all_scores) if all_scores else np.zeros(0)
    if len(tp) == 0:
        return 0.0
    order = np.argsort(-sc, kind="stable")
    tp = tp[order]
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(tp) + 1)
    # all-point interpolation: precision made monotone from the right, integrated over recall steps
    mrec = np.concatenate([[0.0], recall, [recall[-1]]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return 100.0 * float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def f1_threshold(preds, scores, gts, candidates=None) -> float:
    """The score threshold with the best instance-level F1 at IoU 0.5 (chosen on the held-out split)."""
    all_scores = np.concatenate([np.asarray(s) for s in scores]) if scores else np.zeros(0)
    if candidates is None:
        candidates = np.unique(np.round(all_scores, 4)) if len(all_scores) else np.array([0.0])
    n_gt = sum(len(g) for g in gts)
    flags = [match(np.asarray(p), np.asarray(s), g) for p, s, g in zip(preds, scores, gts)]
    tp_all = np.concatenate(flags) if flags else np.zeros(0, bool)
    best, best_t = -1.0, float(candidates[0]) if len(candidates) else 0.0
    for t in candidates:
        # greedy matching by score is unchanged by dropping low scores, so the flags stay valid
        keep = all_scores >= t
        tp = int(tp_all[keep].sum())
        f1 = 2 * tp / max(int(keep.sum()) + n_gt, 1)
        if f1 > best:
            best, best_t = f1, float(t)
    return best_t


def map_boxes(score_map: np.ndarray, threshold: float, min_area: int = 4):
    """All component boxes of ``score_map >= threshold`` (a map normalised to [0, 1]), scored by their peak."""
    return component_boxes(score_map >= threshold, min_area=min_area, score_map=score_map)


MAP_THRESHOLDS = np.linspace(0.05, 0.95, 19)


def max_box_acc(maps: list[np.ndarray], gts, thresholds=MAP_THRESHOLDS) -> tuple[float, float]:
    """(MaxBoxAcc in percent, the best threshold): the largest component's box at each map threshold."""
    accs = []
    for t in thresholds:
        hits = []
        for m, g in zip(maps, gts):
            b, _ = component_boxes(m >= t)
            b = largest(b)
            hits.append(len(b) > 0 and bool(iou(b, g).max() >= IOU))
        accs.append(100.0 * float(np.mean(hits)))
    k = int(np.argmax(accs))
    return accs[k], float(thresholds[k])
