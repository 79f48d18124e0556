"""Training loops: the classifier on image labels, the BCD (pseudo boxes on all images, on D_L only, or on D_L plus
the WE term on D_U) and the SCR regressor; and their predictions on a split.

Every loop seeds its own generator, so a run depends on its seed only (not on what ran before in the process).
Horizontal flips are the only augmentation; the detector's targets are precomputed for both orientations.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from repro.wsol import losses
from repro.wsol.data import SIZE
from repro.wsol.models import BCD, SCR, Classifier, decode

MODES = ("all", "dl", "we")


@dataclass(frozen=True)
class Recipe:
    epochs: int = 12
    batch: int = 32
    lr: float = 3e-3
    width: int = 32
    we_beta: float = 1.0  # weight of the WE term
    we_warmup: float = 0.25  # share of the steps before the WE term starts
    top_k: int = 10


def _flip_boxes(boxes: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for b in boxes:
        b = np.asarray(b, np.float32).reshape(-1, 4).copy()
        b[:, [0, 2]] = SIZE - b[:, [2, 0]]
        out.append(b)
    return out


def _batches(n: int, batch: int, steps: int, gen: torch.Generator):
    """``steps`` index batches cycling over seeded permutations of range(n)."""
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        yield perm[pos:pos + min(batch, n)]
        pos += batch


def _flip(images: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    return torch.where(flags[:, None, None, None], images.flip(-1), images)


def train_classifier(images: torch.Tensor, labels: torch.Tensor, seed: int, epochs: int = 10,
                     recipe: Recipe = Recipe(), device: str = "cpu") -> Classifier:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = Classifier(width=recipe.width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps = epochs * -(-len(images) // recipe.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=steps)
    model.train()
    for idx in _batches(len(images), recipe.batch, steps, gen):
        flags = torch.rand(len(idx), generator=gen) < 0.5
        x = _flip(images[idx], flags).to(device)
        loss = F.cross_entropy(model(x)["logits"], labels[idx].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def train_bcd(images: torch.Tensor, boxes: list[np.ndarray], seed: int, mode: str = "all",
              reliable: np.ndarray | None = None, variant: str = "balanced", recipe: Recipe = Recipe(),
              device: str = "cpu") -> BCD:
    """``mode``: "all" = detection loss on every image's pseudo boxes; "dl" = on the reliable set D_L only; "we" =
    on D_L, plus ``we_beta`` x the WE loss (``variant``) on D_U after the warm-up. The number of steps is the same
    for every mode (``epochs`` passes over all images), so the modes differ by data and loss only."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = BCD(recipe.width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps = recipe.epochs * -(-len(images) // recipe.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=steps)
    t = [losses.targets(boxes), losses.targets(_flip_boxes(boxes))]
    everyone = np.arange(len(images))
    if mode == "all" or reliable is None:
        labelled, unlabelled = everyone, np.zeros(0, int)
    else:
        labelled, unlabelled = everyone[reliable], everyone[~reliable]
    use_we = mode == "we" and len(unlabelled) > 0
    u_batches = _batches(len(unlabelled), recipe.batch, steps, gen) if use_we else None
    model.train()
    for step, b in enumerate(_batches(len(labelled), recipe.batch, steps, gen)):
        idx = torch.as_tensor(labelled)[b]
        flags = torch.rand(len(idx), generator=gen) < 0.5
        x = _flip(images[idx], flags).to(device)
        tg = {k: torch.where(flags.view(-1, *[1] * (v.dim() - 1)), t[1][k][idx], t[0][k][idx]).to(device)
              for k, v in t[0].items()}
        loss = losses.detection_loss(model(x), tg)
        ub = next(u_batches) if use_we else None
        if use_we and step >= recipe.we_warmup * steps:
            uidx = torch.as_tensor(unlabelled)[ub]
            uflags = torch.rand(len(uidx), generator=gen) < 0.5
            xu = _flip(images[uidx], uflags).to(device)
            loss = loss + recipe.we_beta * losses.we_loss(model(xu)["heat"], variant)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def train_scr(images: torch.Tensor, boxes: list[np.ndarray], seed: int, recipe: Recipe = Recipe(),
              device: str = "cpu") -> SCR:
    """PSOL's regressor: MSE to the largest pseudo box of each image that has one."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SCR(recipe.width).to(device)
    target, has = losses.scr_target(boxes)
    target_flip, _ = losses.scr_target(_flip_boxes(boxes))
    keep = np.nonzero(has.numpy())[0]
    opt = torch.optim.Adam(model.parameters(), lr=recipe.lr)
    steps = recipe.epochs * -(-len(images) // recipe.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, recipe.lr, total_steps=steps)
    model.train()
    for b in _batches(len(keep), recipe.batch, steps, gen):
        idx = torch.as_tensor(keep)[b]
        flags = torch.rand(len(idx), generator=gen) < 0.5
        x = _flip(images[idx], flags).to(device)
        y = torch.where(flags[:, None], target_flip[idx], target[idx]).to(device)
        loss = F.smooth_l1_loss(model(x), y, beta=0.02)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def predict_bcd(model: BCD, images: torch.Tensor, top_k: int = 10, batch: int = 256, device: str = "cpu"):
    out = []
    for i in range(0, len(images), batch):
        o = model(images[i:i + batch].to(device))
        out += decode({k: v.cpu() for k, v in o.items()}, top_k=top_k)
    return [b for b, _ in out], [s for _, s in out]


@torch.no_grad()
def predict_scr(model: SCR, images: torch.Tensor, batch: int = 256, device: str = "cpu"):
    boxes = np.concatenate([losses.scr_boxes(model(images[i:i + batch].to(device)).cpu())
                            for i in range(0, len(images), batch)])
    return [b[None] for b in boxes], [np.ones(1, np.float32) for _ in boxes]


@torch.no_grad()
def classify(model: Classifier, images: torch.Tensor, batch: int = 256, device: str = "cpu") -> np.ndarray:
    return np.concatenate([model(images[i:i + batch].to(device))["logits"].argmax(1).cpu().numpy()
                           for i in range(0, len(images), batch)])
