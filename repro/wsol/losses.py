"""The detector's losses: CenterNet targets and focal loss for the foreground heat map, L1 on offsets and log sizes,
the SCR regression loss, and the weighted-entropy (WE) loss on unreliable images.

WE (a reconstruction: the paper's exact weighting could not be verified). On an unreliable image, for every cell i
with foreground probability p_i, H(p_i) = -p log p - (1-p) log(1-p), and the weights w_i are stop-gradient:

- ``uniform``: L = mean_i H(p_i) (plain entropy minimisation; can collapse to "all background");
- ``fgprob``: L = mean_i p_i H(p_i) (w_i proportional to the foreground probability);
- ``balanced``: L = (mean over cells with p > 0.5 of H + mean over cells with p <= 0.5 of H) / 2, i.e.
  w_i = 1 / (2 n_fg) or 1 / (2 n_bg): foreground and background count equally, against the imbalance (a group
  with no cell contributes 0).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from repro.wsol.models import STRIDE

WE_VARIANTS = ("balanced", "fgprob", "uniform")
GRID = 8


def targets(boxes: list[np.ndarray], grid: int = GRID, sigma: float = 0.8) -> dict[str, torch.Tensor]:
    """CenterNet targets per image from xyxy pixel boxes: a Gaussian heat map peaking at 1 on each centre cell,
    and at those cells the offset in the cell (in [0, 1)) and log(w/64), log(h/64). ``mask`` marks centre cells."""
    n = len(boxes)
    heat = torch.zeros(n, grid, grid)
    reg = torch.zeros(n, 4, grid, grid)
    mask = torch.zeros(n, grid, grid, dtype=torch.bool)
    yy, xx = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    size = grid * STRIDE
    for i, bs in enumerate(boxes):
        for b in np.asarray(bs, np.float32).reshape(-1, 4):
            cx, cy = (b[0] + b[2]) / 2 / STRIDE, (b[1] + b[3]) / 2 / STRIDE
            gx, gy = min(int(cx), grid - 1), min(int(cy), grid - 1)
            g = torch.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * sigma**2))
            heat[i] = torch.maximum(heat[i], g)
            mask[i, gy, gx] = True
            w, h = max(b[2] - b[0], 1.0), max(b[3] - b[1], 1.0)
            reg[i, :, gy, gx] = torch.tensor([min(cx - gx, 0.999), min(cy - gy, 0.999),
                                              np.log(w / size), np.log(h / size)])
    return {"heat": heat, "reg": reg, "mask": mask}


def focal_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), normalised by the number of centre cells."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = -((1 - p) ** 2) * torch.log(p) * mask
    neg = -((1 - target) ** 4) * p**2 * torch.log(1 - p) * (~mask)
    return (pos.sum() + neg.sum()) / mask.sum().clamp(min=1)


def box_loss(reg: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """L1 on (sigmoid offsets, log sizes) at centre cells."""
    if not mask.any():
        return reg.sum() * 0
    pred = torch.cat([torch.sigmoid(reg[:, :2]), reg[:, 2:]], 1).permute(0, 2, 3, 1)[mask]
    return F.l1_loss(pred, target.permute(0, 2, 3, 1)[mask])


def detection_loss(out: dict[str, torch.Tensor], t: dict[str, torch.Tensor], box_weight: float = 1.0):
    return focal_loss(out["heat"], t["heat"], t["mask"]) + box_weight * box_loss(out["reg"], t["reg"], t["mask"])


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * torch.log(p) + (1 - p) * torch.log(1 - p))


def we_loss(logits: torch.Tensor, variant: str = "balanced") -> torch.Tensor:
    """The weighted entropy of the foreground probabilities of all cells of a batch (see the module docstring)."""
    if variant not in WE_VARIANTS:
        raise ValueError(f"WE variant must be one of {', '.join(WE_VARIANTS)}, got {variant!r}")
    p = torch.sigmoid(logits).flatten()
    h = binary_entropy(p)
    if variant == "uniform":
        return h.mean()
    if variant == "fgprob":
        return (p.detach() * h).mean()
    fg = p.detach() > 0.5
    parts = [h[m].mean() if m.any() else h.sum() * 0 for m in (fg, ~fg)]
    return (parts[0] + parts[1]) / 2


def scr_target(boxes: list[np.ndarray], size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """PSOL's target: the largest box per image as normalised (cx, cy, w, h), and which images have one."""
    from repro.wsol.boxes import largest

    out = torch.zeros(len(boxes), 4)
    has = torch.zeros(len(boxes), dtype=torch.bool)
    for i, bs in enumerate(boxes):
        b = largest(np.asarray(bs, np.float32).reshape(-1, 4))
        if len(b):
            b = b[0]
            out[i] = torch.tensor([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]]) / size
            has[i] = True
    return out, has


def scr_boxes(pred: torch.Tensor, size: int = 64) -> np.ndarray:
    """(N, 4) normalised (cx, cy, w, h) -> (N, 4) pixel xyxy."""
    cx, cy, w, h = (pred * size).unbind(1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).clamp(0, size).detach().numpy()
