"""The synthetic WSOL set: 64x64 images on textured backgrounds, 10 shape x texture classes, 1-3 instances of one
class per image (half single, half multi), with exact ground-truth boxes.

Image labels are what training sees; the boxes are used for evaluation (and for the held-out split's choices, as
Choe et al. 2020 recommend) only. Boxes are ``xyxy`` in pixels, ``x1``/``y1`` exclusive: the tight box of the drawn
mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

SIZE = 64
SHAPES = ("square", "disc", "triangle", "cross", "ring")
TEXTURES = ("solid", "striped")
CLASSES = tuple(f"{s}/{t}" for t in TEXTURES for s in SHAPES)  # label = texture * 5 + shape
MIN_SIDE, MAX_SIDE = 12, 20


@dataclass
class Split:
    """``images`` (N, 3, 64, 64) uint8; ``labels`` (N,); ``boxes[i]`` (k_i, 4) float xyxy; ``masks`` the
    union of object pixels (N, 64, 64) bool, kept for tests and figures."""

    images: torch.Tensor
    labels: torch.Tensor
    boxes: list[np.ndarray]
    masks: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(b) for b in self.boxes])

    def subset(self, idx) -> Split:
        idx = np.asarray(idx)
        return Split(self.images[torch.as_tensor(idx)], self.labels[torch.as_tensor(idx)],
                     [self.boxes[i] for i in idx], self.masks[idx])


@lru_cache(maxsize=None)
def shape_mask(shape: str, side: int) -> np.ndarray:
    """A (side, side) bool mask of ``shape``, touching all four edges (so its tight box is the full patch)."""
    c = (side - 1) / 2
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    if shape == "square":
        m = np.ones((side, side), bool)
    elif shape == "disc":
        m = (xx - c) ** 2 + (yy - c) ** 2 <= (c + 0.5) ** 2
    elif shape == "triangle":  # apex at the top centre, base on the bottom row
        m = np.abs(xx - c) <= (yy + 1) / side * (c + 0.5)
    elif shape == "cross":
        arm = max(2, side // 3)
        lo = (side - arm) // 2
        m = np.zeros((side, side), bool)
        m[lo:lo + arm, :] = True
        m[:, lo:lo + arm] = True
    elif shape == "ring":
        r = (xx - c) ** 2 + (yy - c) ** 2
        m = (r <= (c + 0.5) ** 2) & (r >= (0.5 * c) ** 2)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return m


_GRID = 6
_UP = np.stack([np.interp(np.linspace(0, _GRID - 1, SIZE), np.arange(_GRID), np.eye(_GRID)[k]) for k in range(_GRID)],
               axis=1)  # (SIZE, _GRID) bilinear interpolation weights
_YY, _XX = np.mgrid[0:SIZE, 0:SIZE]


def _background(rng: np.random.Generator) -> np.ndarray:
    """A grey textured background: smooth blobs, a faint oriented grating and pixel noise."""
    coarse = rng.normal(0, 1, (_GRID, _GRID))
    smooth = _UP @ coarse @ _UP.T  # bilinear upsampling of a coarse random grid
    yy, xx = _YY, _XX
    theta, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.5)
    grating = np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 6.3))
    grey = 0.45 + 0.08 * smooth + 0.05 * grating + 0.04 * rng.normal(0, 1, (SIZE, SIZE))
    tint = rng.uniform(-0.04, 0.04, 3)
    return np.clip(grey[None] + tint[:, None, None], 0, 1)


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A saturated colour: one channel high, one low, one random."""
    c = np.empty(3)
    hi, lo = rng.choice(3, 2, replace=False)
    c[:] = rng.uniform(0.2, 0.8)
    c[hi], c[lo] = rng.uniform(0.85, 1.0), rng.uniform(0.0, 0.15)
    return c


def _place(rng: np.random.Generator, sides: list[int], gap: int = 6, tries: int = 200) -> list[tuple[int, int]] | None:
    """Top-left corners for patches of ``sides`` that keep ``gap`` pixels apart, or None."""
    corners: list[tuple[int, int]] = []
    for s in sides:
        for _ in range(tries):
            x, y = int(rng.integers(0, SIZE - s + 1)), int(rng.integers(0, SIZE - s + 1))
            if all(x + s + gap <= cx or cx + cs + gap <= x or y + s + gap <= cy or cy + cs + gap <= y
                   for (cx, cy), cs in zip(corners, sides)):
                corners.append((x, y))
                break
        else:
            return None
    return corners


_STRIPES = ((_XX + _YY) % 4) < 2


def draw(rng: np.random.Generator, label: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image of class ``label`` with ``count`` instances: (image (3, 64, 64), boxes (count, 4), mask)."""
    shape, texture = SHAPES[label % len(SHAPES)], TEXTURES[label // len(SHAPES)]
    img = _background(rng)
    while True:
        sides = [int(rng.integers(MIN_SIDE, MAX_SIDE + 1)) for _ in range(count)]
        corners = _place(rng, sides)
        if corners is not None:
            break
    mask = np.zeros((SIZE, SIZE), bool)
    boxes = []
    for (x, y), s in zip(corners, sides):
        m = shape_mask(shape, s)
        colour = _colour(rng)
        patch = np.broadcast_to(colour[:, None, None], (3, s, s)).copy()
        if texture == "striped":  # diagonal stripes of a darker shade, period 4 px
            patch[:, _STRIPES[:s, :s]] *= 0.35
        region = img[:, y:y + s, x:x + s]
        region[:, m] = patch[:, m]
        mask[y:y + s, x:x + s] |= m
        ys, xs = np.nonzero(m)
        boxes.append([x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1])
    return img.astype(np.float32), np.array(boxes, np.float32), mask


def make_split(seed: int, n: int, stream: int = 0, multi_fraction: float = 0.5) -> Split:
    """``n`` images from the seeded generator; ``stream`` separates train (0), held-out (1) and test (2) draws.

    Classes cycle so that every class is equally frequent; the first ``n * (1 - multi_fraction)`` images (in a
    seeded random order) hold one instance, the others 2 or 3."""
    rng = np.random.default_rng([seed, stream, 17])
    labels = rng.permutation(np.arange(n) % len(CLASSES))
    n_single = int(round(n * (1 - multi_fraction)))
    counts = np.where(rng.permutation(n) < n_single, 1, rng.integers(2, 4, n))
    imgs, boxes, masks = [], [], []
    for lab, k in zip(labels, counts):
        img, b, m = draw(rng, int(lab), int(k))
        imgs.append(img)
        boxes.append(b)
        masks.append(m)
    images = torch.from_numpy(np.round(np.stack(imgs) * 255).astype(np.uint8))
    return Split(images, torch.as_tensor(labels, dtype=torch.long), boxes, np.stack(masks))
