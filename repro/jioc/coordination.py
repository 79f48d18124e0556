"""Input coordination (IC) and output coordination (OC).

The paper's text fixes the ideas but not every formula, and no official code exists. What the paper states:
IC "assigns different weights to different categories of data according to the gradient of the output score";
OC extends SS-IL's task-wise distillation so that new-task data keep their old-head outputs and memory data's
outputs on the new heads are suppressed (Fig. 3). Everything below that goes beyond those sentences is our
reconstruction, and each open choice is a named option:

- ``IC_VARIANTS``: "class" (per-class weights from the accumulated true-class gradient, the default) or "sample"
  (per-sample weights from each sample's own true-class gradient).
- ``SUPPRESSION_VARIANTS``: "neglog" (-log of the probability mass memory data keep off the new heads, default) or
  "separated" (memory data classified by a softmax over the old heads only, SS-IL's separated softmax).
- ``KD_DATA``: distil the old heads on "all" the batch (SS-IL's memory term plus JIOC's new-data term, default) or
  on the "new" task's data only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IC_VARIANTS = ("class", "sample")
SUPPRESSION_VARIANTS = ("neglog", "separated")
KD_DATA = ("all", "new")


class InputCoordinator:
    """Per-class weights from the gradient each class's true-class output receives.

    With softmax cross-entropy, dl/dz_y = p_y - 1, so G_c accumulates sum_{i: y_i = c} |p_{i,c} - 1| over a batch,
    smoothed as an EMA over steps (a class absent from a batch adds 0). The weight w_c = mean_{c'} G_{c'} / (G_c + eps)
    over the classes in the current training data: a class that already gets much gradient (many or hard samples,
    e.g. a new-task head class) is down-weighted, a class that gets little (memory, tail) is up-weighted. Weights are
    clamped to [1/max_weight, max_weight] so that a class with almost no gradient cannot take over a batch.
    """

    def __init__(self, classes: int, momentum: float = 0.9, eps: float = 1e-6, max_weight: float = 10.0,
                 variant: str = "class"):
        if variant not in IC_VARIANTS:
            raise ValueError(f"IC variant must be one of {IC_VARIANTS}, got {variant!r}")
        self.variant, self.momentum, self.eps, self.max_weight = variant, momentum, eps, max_weight
        self.grad = torch.zeros(classes)
        self.active = torch.zeros(classes, dtype=torch.bool)
        self.steps = 0

    def reset(self, classes: int, active: torch.Tensor) -> None:
        """Start a task: ``active`` (labels) are the classes present in this task's training data."""
        self.grad = torch.zeros(classes)
        self.active = torch.zeros(classes, dtype=torch.bool)
        self.active[active] = True
        self.steps = 0

    @torch.no_grad()
    def update(self, logits: torch.Tensor, y: torch.Tensor) -> None:
        true_grad = (1.0 - logits.softmax(dim=1).gather(1, y[:, None]).squeeze(1)).abs()
        batch = torch.zeros_like(self.grad).index_add_(0, y, true_grad.float())
        m = 0.0 if self.steps == 0 else self.momentum
        self.grad = m * self.grad + (1 - m) * batch
        self.steps += 1

    def class_weights(self) -> torch.Tensor:
        g = self.grad[self.active]
        w = torch.ones_like(self.grad)
        w[self.active] = (g.mean() / (g + self.eps)).clamp(1 / self.max_weight, self.max_weight)
        return w

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Weighted CE, normalised by the weights' sum; updates the accumulator with this batch first."""
        ce = F.cross_entropy(logits, y, reduction="none")
        if self.variant == "sample":
            with torch.no_grad():
                g = (1.0 - logits.softmax(dim=1).gather(1, y[:, None]).squeeze(1)).abs()
                w = g / (g.mean() + self.eps)
        else:
            self.update(logits, y)
            w = self.class_weights().to(logits.device)[y]
        return (w * ce).sum() / w.sum()


def kd(student: torch.Tensor, teacher: torch.Tensor, tau: float = 2.0) -> torch.Tensor:
    """tau^2 * KL(softmax(teacher/tau) || softmax(student/tau)), averaged over rows."""
    if student.numel() == 0:
        return student.sum() * 0
    return F.kl_div(F.log_softmax(student / tau, 1), F.softmax(teacher / tau, 1), reduction="batchmean") * tau**2


def taskwise_kd(logits: torch.Tensor, old_logits: torch.Tensor, task_sizes: list[int], tau: float = 2.0):
    """SS-IL's task-wise KD: a separate softmax per old task's head, summed over the old tasks.

    ``logits`` (N, seen) are the current model's, ``old_logits`` (N, known) the previous model's; the old tasks'
    sizes ``task_sizes`` sum to ``known``.
    """
    total, start = logits.new_zeros(()), 0
    for size in task_sizes:
        total = total + kd(logits[:, start:start + size], old_logits[:, start:start + size], tau)
        start += size
    return total


def suppression(logits: torch.Tensor, y: torch.Tensor, known: int, variant: str = "neglog") -> torch.Tensor:
    """Push memory data's outputs off the new heads (labels >= ``known``). Zero for an empty batch.

    "neglog": mean of -log(1 - sum_{k new} softmax(z)_k) (0 when the new heads hold no mass).
    "separated": cross-entropy over the old heads only (the new heads take no part in the softmax).
    """
    if variant not in SUPPRESSION_VARIANTS:
        raise ValueError(f"suppression variant must be one of {SUPPRESSION_VARIANTS}, got {variant!r}")
    if logits.shape[0] == 0:
        return logits.sum() * 0
    if variant == "separated":
        return F.cross_entropy(logits[:, :known], y)
    log_p = F.log_softmax(logits, dim=1)
    # log(1 - P_new) = logsumexp over the old heads of log p: exact and safe when P_new -> 1
    return -torch.logsumexp(log_p[:, :known], dim=1).mean()


def output_coordination(logits, old_logits, y, is_memory, task_sizes, tau=2.0, lambda_kd=1.0, lambda_sup=1.0,
                        suppression_variant="neglog", kd_data="all"):
    """OC = lambda_kd * task-wise KD on the old heads + lambda_sup * suppression of memory data on the new heads.

    ``task_sizes`` are the old tasks' class counts; ``is_memory`` marks the batch rows that came from the memory.
    """
    if kd_data not in KD_DATA:
        raise ValueError(f"kd_data must be one of {KD_DATA}, got {kd_data!r}")
    known = sum(task_sizes)
    rows = torch.ones_like(is_memory) if kd_data == "all" else ~is_memory
    loss = lambda_kd * taskwise_kd(logits[rows], old_logits[rows], task_sizes, tau)
    if is_memory.any():
        loss = loss + lambda_sup * suppression(logits[is_memory], y[is_memory], known, suppression_variant)
    return loss
