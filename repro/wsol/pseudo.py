"""Pseudo boxes without box labels (DDT, as PSOL uses it), CAM maps and boxes, and the D_L / D_U split.

DDT (Wei et al. 2017). Take the classifier's mid-level descriptors f_{i,p} (16x16 per image) over all training
images, their mean mu and the first principal direction u_1 of their covariance. The indicator map is
m_{i,p} = u_1^T (f_{i,p} - mu), upsampled to 64x64; m > 0 is "object". u_1's sign is arbitrary: we orient it so that
the positive side is the minority of training pixels (objects cover less than half of an image). Every 8-connected
component of at least ``min_area`` pixels gives a box (PSOL keeps only the largest one; a BCD keeps them all).

Split. An image's pseudo boxes are *reliable* when they agree with a second, independent generator: the boxes of
its thresholded CAM. Agreement = sum of greedy-matched IoUs / max(#pseudo, #CAM). The threshold on agreement is
fixed on the held-out split (which has boxes, as Choe et al. 2020 prescribe for such choices): the value that best
separates held-out images whose (noisy) pseudo boxes are right from the others (balanced accuracy).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from repro.wsol.boxes import component_boxes, iou
from repro.wsol.data import SIZE
from repro.wsol.metrics import match
from repro.wsol.models import Classifier

MIN_AREA = 24


@dataclass
class DDT:
    mean: torch.Tensor
    direction: torch.Tensor

    def maps(self, features: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> indicator maps upsampled to (N, 64, 64)."""
        m = torch.einsum("nchw,c->nhw", features - self.mean[None, :, None, None], self.direction)
        return F.interpolate(m[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]


@torch.no_grad()
def features(model: Classifier, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([model(images[i:i + batch])["features"] for i in range(0, len(images), batch)])


def fit_ddt(feats: torch.Tensor) -> DDT:
    x = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1]).double()
    mu = x.mean(0)
    cov = (x - mu).T @ (x - mu) / (len(x) - 1)
    _, vecs = torch.linalg.eigh(cov)
    u = vecs[:, -1]
    if ((x - mu) @ u > 0).double().mean() > 0.5:
        u = -u
    return DDT(mu.float(), u.float())


def boxes_from_maps(maps: torch.Tensor, threshold: float = 0.0, min_area: int = MIN_AREA):
    """Per image: every component of ``map > threshold`` with at least ``min_area`` pixels, scored by its peak."""
    out_b, out_s = [], []
    for m in maps.numpy():
        b, s = component_boxes(m > threshold, min_area=min_area, score_map=m)
        out_b.append(b)
        out_s.append(s)
    return out_b, out_s


@torch.no_grad()
def cam_maps(model: Classifier, images: torch.Tensor, labels: torch.Tensor, batch: int = 256) -> list[np.ndarray]:
    """CAM of ``labels``, upsampled to 64x64, negative part clipped and each map scaled to max 1."""
    out = []
    for i in range(0, len(images), batch):
        c = model.cam(images[i:i + batch], labels[i:i + batch])
        c = F.interpolate(c[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0].clamp(min=0)
        c = c / c.flatten(1).max(1).values.clamp(min=1e-8)[:, None, None]
        out += list(c.numpy())
    return out


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of greedy one-to-one matched IoUs between box sets a and b, over max(|a|, |b|); 0 if either is empty."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    o = iou(a, b).numpy()
    total, used_a, used_b = 0.0, set(), set()
    for flat in np.argsort(-o, axis=None, kind="stable"):
        i, j = divmod(int(flat), o.shape[1])
        if i in used_a or j in used_b or o[i, j] <= 0:
            continue
        used_a.add(i)
        used_b.add(j)
        total += float(o[i, j])
    return total / max(len(a), len(b))


def correct(pseudo: np.ndarray, gt: np.ndarray) -> bool:
    """Pseudo boxes are right when they match every ground-truth box one-to-one at IoU >= 0.5, with none left over."""
    return len(pseudo) == len(gt) and int(match(pseudo, np.ones(len(pseudo)), gt).sum()) == len(gt)


def split_threshold(scores: np.ndarray, right: np.ndarray) -> float:
    """The agreement threshold with the best balanced accuracy of "score >= t" for "pseudo boxes are right"."""
    scores, right = np.asarray(scores), np.asarray(right, bool)
    if right.all() or (~right).all():
        return float(np.median(scores))
    best, best_t = -1.0, 0.0
    for t in np.unique(scores):
        pred = scores >= t
        bacc = (pred[right].mean() + (~pred[~right]).mean()) / 2
        if bacc > best:
            best, best_t = bacc, float(t)
    return best_t


def random_boxes_like(boxes: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """The chance baseline of a pseudo-box set: the same boxes (count and sizes) at uniformly random places."""
    out = []
    for b in boxes:
        b = np.asarray(b, np.float32).reshape(-1, 4)
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
        out.append(np.stack([x, y, x + w, y + h], 1).astype(np.float32))
    return out
