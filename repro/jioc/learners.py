"""The base methods (Finetune, ER, iCaRL, DER), each with or without IC and OC, and one class-incremental run.

Every method trains with the same optimiser, epochs and batch size; the memory holds ``memory`` exemplars in total,
shared equally among the classes seen (herding for iCaRL, random for the others; Finetune keeps none).
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from repro.jioc.coordination import InputCoordinator, kd, output_coordination
from repro.jioc.data import Stream
from repro.jioc.models import DERNet, FosterTeacher, IncrementalNet

BASES = ("finetune", "er", "icarl", "der", "foster")  # FOSTER runs at full scale
COORDINATIONS = ("none", "ic", "oc", "jioc")


@dataclass(frozen=True)
class Config:
    """One run's recipe. ``lambda_`` scales both OC terms; the variants are the options in ``coordination``."""

    base: str = "er"
    coordination: str = "none"
    memory: int = 20
    epochs: int = 15
    batch_size: int = 32
    lr: float = 1e-3
    hidden: int = 128
    der_hidden: int = 64
    tau: float = 2.0
    lambda_: float = 1.0
    ic_variant: str = "class"
    suppression_variant: str = "neglog"
    kd_data: str = "all"
    backbone: str = "mlp"  # "conv": the full scale's convolutional backbone on upsampled digits
    augment: bool = False  # random +-1 pixel shifts of the 8x8 digits while training

    def __post_init__(self):
        if self.base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {self.base!r}")
        if self.coordination not in COORDINATIONS:
            raise ValueError(f"coordination must be one of {COORDINATIONS}, got {self.coordination!r}")

    @property
    def uses_ic(self) -> bool:
        return self.coordination in ("ic", "jioc")

    @property
    def uses_oc(self) -> bool:
        return self.coordination in ("oc", "jioc")

    @property
    def keeps_memory(self) -> bool:
        return self.base != "finetune"


@dataclass
class RunResult:
    config: dict
    seed: int
    regime: str
    accuracy: list[float]  # after each task, on the test data of every class seen (the method's own classifier)
    accuracy_linear: list[float]  # the same with the linear head (differs from ``accuracy`` for iCaRL's NME)
    old_to_new: list[float]  # per task >= 1: share of old-class test samples predicted as a new-task class
    tail_recall: float  # after the last task, mean recall over the tail classes
    head_recall: float
    norm_ratio: float  # after the last task: mean row norm of the newest head / of the old heads
    per_class_recall: list[float] = field(default_factory=list)

    @property
    def average_accuracy(self) -> float:
        return float(np.mean(self.accuracy))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["average_accuracy"] = self.average_accuracy
        return d


def herding(features: torch.Tensor, m: int) -> torch.Tensor:
    """iCaRL's herding: pick m rows (indices) whose running mean follows the class mean as closely as possible.

    ``features`` (N, H) are L2-normalised inside.
    """
    f = F.normalize(features, dim=1)
    mu = f.mean(0)
    chosen: list[int] = []
    running = torch.zeros_like(mu)
    available = torch.ones(len(f), dtype=torch.bool)
    for k in range(1, min(m, len(f)) + 1):
        gap = ((mu - (running + f) / k) ** 2).sum(1)
        gap[~available] = float("inf")
        i = int(gap.argmin())
        chosen.append(i)
        available[i] = False
        running += f[i]
    return torch.tensor(chosen, dtype=torch.long)


class Memory:
    """Exemplars of the classes seen so far, ``budget`` in total, split equally among classes."""

    def __init__(self, budget: int):
        self.budget = budget
        self.x = torch.empty(0, 64)
        self.y = torch.empty(0, dtype=torch.long)

    def rebuild(self, x: torch.Tensor, y: torch.Tensor, classes: int, selector, generator: torch.Generator) -> None:
        """Keep budget // classes exemplars per class from (x, y) (old memory plus the task's data)."""
        per_class = self.budget // classes
        xs, ys = [], []
        for c in range(classes):
            idx = torch.nonzero(y == c).squeeze(1)
            if len(idx) == 0:
                continue
            if selector is None:
                pick = idx[torch.randperm(len(idx), generator=generator)[:per_class]]
            else:
                pick = idx[selector(x[idx], per_class)]
            xs.append(x[pick])
            ys.append(y[pick])
        self.x, self.y = torch.cat(xs), torch.cat(ys)


def _predict(model, x: torch.Tensor, seen: int, class_means: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        out = model(x)
        linear = out["logits"][:, :seen].argmax(1)
        if class_means is None:
            return linear, linear
        f = F.normalize(out["features"], dim=1)
        nme = torch.cdist(f, class_means).argmin(1)
        return nme, linear


def _class_means(model, x: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        f = F.normalize(model(x)["features"], dim=1)
    return F.normalize(torch.stack([f[y == c].mean(0) for c in range(classes)]), dim=1)


def shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Augmentation: roll every 8x8 digit of the batch by the same random (dy, dx) in {-1, 0, 1}^2."""
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=gen))
    return x.view(-1, 8, 8).roll((dy, dx), dims=(1, 2)).reshape(-1, 64)


def balanced_kd(student_logits, teacher_logits, class_weights, tau: float = 2.0) -> torch.Tensor:
    """FOSTER's balanced KD: the teacher's softened probabilities re-weighted per class (rare classes up), then
    cross-entropy against the student's."""
    soft = F.softmax(teacher_logits / tau, 1) * class_weights
    soft = soft / soft.sum(1, keepdim=True)
    return -(soft * F.log_softmax(student_logits / tau, 1)).sum(1).mean()


def compress(teacher: FosterTeacher, student: IncrementalNet, x, y, config: Config, gen, seen: int):
    """FOSTER's compression stage: distil the boosted teacher into the single-backbone student (whose backbone is
    the old one), with class weights from the effective number of samples (beta = 0.97)."""
    counts = torch.bincount(y, minlength=seen).float().clamp_min(1)
    weights = (1 - 0.97) / (1 - 0.97 ** counts)
    weights = weights / weights.sum() * seen
    teacher.eval()
    opt = torch.optim.Adam(student.parameters(), lr=config.lr)
    for _ in range(config.epochs):
        student.train()
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), config.batch_size):
            b = perm[start:start + config.batch_size]
            xb = shift(x[b], gen) if config.augment else x[b]
            with torch.no_grad():
                target = teacher(xb)["logits"]
            loss = balanced_kd(student(xb)["logits"], target, weights, config.tau)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return student


def run(stream: Stream, config: Config, seed: int) -> RunResult:
    """Train on the stream's tasks in order and evaluate after each; deterministic for a given seed on CPU."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    C = stream.classes_per_task
    if config.base == "der":
        model = DERNet(hidden=config.der_hidden, backbone=config.backbone)
    else:
        model = IncrementalNet(hidden=config.hidden, backbone=config.backbone)
    memory = Memory(config.memory)
    coordinator = InputCoordinator(stream.tasks * C, variant=config.ic_variant) if config.uses_ic else None
    previous = None
    acc, acc_lin, old_new = [], [], []
    for t in range(stream.tasks):
        known, seen = t * C, (t + 1) * C
        model.add_task(C)
        x_new, y_new = stream.task_train(t)
        use_mem = config.keeps_memory and t > 0
        x = torch.cat([x_new, memory.x]) if use_mem else x_new
        y = torch.cat([y_new, memory.y]) if use_mem else y_new
        is_mem = torch.arange(len(x)) >= len(x_new)
        if coordinator is not None:
            coordinator.reset(stream.tasks * C, torch.unique(y))
        boosting = config.base == "foster" and t > 0
        net = FosterTeacher(model) if boosting else model
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=config.lr)
        for _ in range(config.epochs):
            net.train()
            perm = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), config.batch_size):
                b = perm[start:start + config.batch_size]
                xb, yb, mb = x[b], y[b], is_mem[b]
                if config.augment:
                    xb = shift(xb, gen)
                out = net(xb)
                logits = out["logits"]
                loss = coordinator.loss(logits, yb) if coordinator is not None else F.cross_entropy(logits, yb)
                if config.base == "der" and t > 0:
                    aux_y = torch.where(yb >= known, yb - known + 1, torch.zeros_like(yb))
                    loss = loss + F.cross_entropy(out["aux_logits"], aux_y)
                if boosting:  # FOSTER's auxiliary head on the new features
                    loss = loss + F.cross_entropy(out["aux_logits"], yb)
                if previous is not None and (config.base in ("icarl", "foster") or config.uses_oc):
                    with torch.no_grad():
                        old_logits = previous(xb)["logits"]
                    if config.base in ("icarl", "foster"):  # the base's own KD, on all old logits jointly
                        loss = loss + kd(logits[:, :known], old_logits, config.tau)
                    if config.uses_oc:
                        loss = loss + output_coordination(
                            logits, old_logits, yb, mb, [C] * t, config.tau, config.lambda_, config.lambda_,
                            config.suppression_variant, config.kd_data)
                opt.zero_grad()
                loss.backward()
                opt.step()
        if boosting:
            model = compress(net, model, x, y, config, gen, seen)
        if config.keeps_memory:
            selector = None
            if config.base == "icarl":
                def selector(xc, m, net=model):
                    net.eval()
                    with torch.no_grad():
                        return herding(net(xc)["features"], m)
            memory.rebuild(x, y, seen, selector, gen)
        means = _class_means(model, memory.x, memory.y, seen) if config.base == "icarl" else None
        x_te, y_te = stream.seen_test(t)
        pred, pred_lin = _predict(model, x_te, seen, means)
        acc.append(float((pred == y_te).float().mean() * 100))
        acc_lin.append(float((pred_lin == y_te).float().mean() * 100))
        if t > 0:
            old = y_te < known
            old_new.append(float((pred[old] >= known).float().mean() * 100))
        previous = copy.deepcopy(model).eval()
        previous.requires_grad_(False)
    recall = [float((pred[y_te == c] == c).float().mean() * 100) for c in range(seen)]
    tail = [recall[c] for c in stream.tail_classes if c < seen]
    head = [recall[c] for c in range(seen) if c not in stream.tail_classes]
    with torch.no_grad():
        norms = model.head_weight().norm(dim=1)
    ratio = float(norms[known:].mean() / norms[:known].mean())
    return RunResult(asdict(config), seed, stream.regime, acc, acc_lin, old_new, float(np.mean(tail)),
                     float(np.mean(head)), ratio, recall)
