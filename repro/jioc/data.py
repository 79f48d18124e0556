"""The class-incremental stream: scikit-learn's digits, split into tasks of classes, balanced or long-tailed.

Labels are re-indexed by the seed's class order, so task t always owns labels [t*C, (t+1)*C). That keeps the
"old heads" and "new heads" of the output layer contiguous slices.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass
class Stream:
    """A seeded task stream. ``x_*`` are float tensors (N, 64) in [0, 1]; ``y_*`` are re-indexed labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_order: np.ndarray  # class_order[label] = the digit it stands for
    classes_per_task: int
    tasks: int
    regime: str
    tail_classes: tuple[int, ...]  # labels whose training data was cut the most (the last rank of each task)

    def task_classes(self, t: int) -> range:
        return range(t * self.classes_per_task, (t + 1) * self.classes_per_task)

    def task_train(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        lo, hi = t * self.classes_per_task, (t + 1) * self.classes_per_task
        mask = (self.y_train >= lo) & (self.y_train < hi)
        return self.x_train[mask], self.y_train[mask]

    def seen_test(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Test data of every class seen up to and including task t."""
        mask = self.y_test < (t + 1) * self.classes_per_task
        return self.x_test[mask], self.y_test[mask]

    def train_counts(self) -> np.ndarray:
        return np.bincount(self.y_train.numpy(), minlength=self.tasks * self.classes_per_task)


def long_tail_counts(n_max: int, classes: int, rho: float) -> list[int]:
    """Per-class counts n_max * rho^(-rank/(C-1)) for ranks 0..C-1 (rank 0 is the head class)."""
    if classes == 1:
        return [n_max]
    return [max(1, int(n_max * rho ** (-rank / (classes - 1)))) for rank in range(classes)]


def make_stream(seed: int, regime: str = "balanced", tasks: int = 5, rho: float = 10.0, test_size: float = 0.3,
                validation: bool = False) -> Stream:
    """Build the stream for ``seed``: shuffle the class order, split 70/30 stratified, then (long-tailed regime)
    cut each task's training classes to ``long_tail_counts``. The test split stays balanced.

    ``validation=True`` returns a stream whose "test" part is a stratified 20 % of the training split, for
    choosing hyper-parameters without touching the test set.
    """
    if regime not in ("balanced", "longtail"):
        raise ValueError(f"regime must be 'balanced' or 'longtail', got {regime!r}")
    digits = load_digits()
    n_classes = len(np.unique(digits.target))
    if n_classes % tasks:
        raise ValueError(f"{n_classes} classes do not split into {tasks} equal tasks")
    per_task = n_classes // tasks
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_classes)
    relabel = np.empty(n_classes, dtype=np.int64)
    relabel[order] = np.arange(n_classes)
    x = digits.data.astype(np.float32) / 16.0
    y = relabel[digits.target]
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=y, random_state=seed)
    if validation:
        x_tr, x_te, y_tr, y_te = train_test_split(x_tr, y_tr, test_size=0.2, stratify=y_tr, random_state=seed)
    tail: list[int] = []
    if regime == "longtail":
        keep = []
        for t in range(tasks):
            labels = list(range(t * per_task, (t + 1) * per_task))
            n_max = min(int((y_tr == c).sum()) for c in labels)
            for c, n in zip(labels, long_tail_counts(n_max, per_task, rho)):
                idx = np.flatnonzero(y_tr == c)
                keep.append(rng.choice(idx, size=n, replace=False))
            tail.append(labels[-1])
        keep = np.sort(np.concatenate(keep))
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    else:
        tail = [(t + 1) * per_task - 1 for t in range(tasks)]
    return Stream(torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te), torch.from_numpy(y_te),
                  order, per_task, tasks, regime, tuple(tail))
