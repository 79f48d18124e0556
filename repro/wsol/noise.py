"""Controlled pseudo-box noise at rate rho, on top of the DDT boxes' own errors.

Each pseudo box is corrupted independently with probability rho, by one of four kinds drawn uniformly:

- ``shift``: moved by 20-50 % of its width and of its height, in a random direction per axis;
- ``scale``: width and height scaled by one factor in [0.5, 0.8] or [1.25, 2.0] (half each), about its centre;
- ``drop``: removed (an instance without a pseudo box);
- ``spurious``: kept, and a spurious box of similar size added at a random place of the image.

Boxes are clipped to the image. The realised kinds are returned, so the rates can be checked.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from repro.wsol.data import SIZE

KINDS = ("shift", "scale", "drop", "spurious")


@dataclass
class NoiseLog:
    boxes: int = 0
    kinds: dict[str, int] = field(default_factory=lambda: {k: 0 for k in KINDS})
    corrupted_images: list[bool] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return sum(self.kinds.values()) / max(self.boxes, 1)


def _clip(b: np.ndarray) -> np.ndarray:
    b = np.clip(b, 0, SIZE)
    b[2] = max(b[2], b[0] + 2)
    b[3] = max(b[3], b[1] + 2)
    if b[2] > SIZE:
        b[0], b[2] = SIZE - (b[2] - b[0]), SIZE
    if b[3] > SIZE:
        b[1], b[3] = SIZE - (b[3] - b[1]), SIZE
    return b


def corrupt(boxes: list[np.ndarray], rho: float, rng: np.random.Generator) -> tuple[list[np.ndarray], NoiseLog]:
    """Noisy copies of per-image pseudo boxes at rate ``rho``, and the log of what was done."""
    log = NoiseLog()
    out = []
    for img_boxes in boxes:
        new: list[np.ndarray] = []
        touched = False
        for b in np.asarray(img_boxes, np.float32).reshape(-1, 4):
            log.boxes += 1
            if rng.random() >= rho:
                new.append(b.copy())
                continue
            touched = True
            kind = KINDS[int(rng.integers(len(KINDS)))]
            log.kinds[kind] += 1
            w, h = b[2] - b[0], b[3] - b[1]
            if kind == "shift":
                dx = rng.uniform(0.2, 0.5) * w * rng.choice([-1, 1])
                dy = rng.uniform(0.2, 0.5) * h * rng.choice([-1, 1])
                new.append(_clip(b + np.array([dx, dy, dx, dy], np.float32)))
            elif kind == "scale":
                f = rng.uniform(0.5, 0.8) if rng.random() < 0.5 else rng.uniform(1.25, 2.0)
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                new.append(_clip(np.array([cx - f * w / 2, cy - f * h / 2, cx + f * w / 2, cy + f * h / 2],
                                          np.float32)))
            elif kind == "drop":
                pass
            else:
                new.append(b.copy())
                sw, sh = w * rng.uniform(0.8, 1.2), h * rng.uniform(0.8, 1.2)
                x, y = rng.uniform(0, SIZE - sw), rng.uniform(0, SIZE - sh)
                new.append(_clip(np.array([x, y, x + sw, y + sh], np.float32)))
        log.corrupted_images.append(touched)
        out.append(np.array(new, np.float32).reshape(-1, 4))
    return out, log
