"""The learners' networks: an MLP with an expanding linear head, and DER's expandable representation."""
from __future__ import annotations

import copy

import torch
from torch import nn


def mlp(inputs: int, hidden: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inputs if i == 0 else hidden, hidden), nn.ReLU()]
    return nn.Sequential(*mods)


class ConvBackbone(nn.Module):
    """Digits (N, 64) -> 8x8 images upsampled to 16x16 -> two conv blocks -> (N, hidden). The full scale's backbone."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                 nn.Linear(64 * 4 * 4, hidden), nn.ReLU())

    def forward(self, x):
        img = torch.nn.functional.interpolate(x.view(-1, 1, 8, 8), size=16, mode="bilinear", align_corners=False)
        return self.net(img)


def make_backbone(kind: str, inputs: int, hidden: int) -> nn.Module:
    if kind == "conv":
        return ConvBackbone(hidden)
    if kind != "mlp":
        raise ValueError(f"backbone must be 'mlp' or 'conv', got {kind!r}")
    return mlp(inputs, hidden)


class IncrementalNet(nn.Module):
    """Backbone (N, 64) -> (N, H) and one linear head per task; logits (N, classes seen) are the heads concatenated.

    ``heads[t]`` owns the task-t labels, so "old heads" are ``heads[:-1]`` and "new heads" ``heads[-1]``.
    """

    def __init__(self, inputs: int = 64, hidden: int = 128, backbone: str = "mlp"):
        super().__init__()
        self.backbone = make_backbone(backbone, inputs, hidden)
        self.feature_dim = hidden
        self.heads = nn.ModuleList()

    def add_task(self, classes: int) -> None:
        self.heads.append(nn.Linear(self.feature_dim, classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {"logits": torch.cat([h(f) for h in self.heads], dim=1), "features": f}

    def head_weight(self) -> torch.Tensor:
        """(classes seen, H): the rows of every head, in label order."""
        return torch.cat([h.weight for h in self.heads], dim=0)


class DERNet(nn.Module):
    """DER (Yan et al., CVPR 2021): one feature branch per task, old branches frozen, a classifier over the
    concatenated features, and an auxiliary head that tells the new classes apart from "any old class".

    Shapes: x (N, 64) -> features (N, B*H) for B branches -> logits (N, classes seen); aux_logits (N, new + 1).
    """

    def __init__(self, inputs: int = 64, hidden: int = 64, backbone: str = "mlp"):
        super().__init__()
        self.inputs, self.hidden, self.kind = inputs, hidden, backbone
        self.branches = nn.ModuleList()
        self.fc: nn.Linear | None = None
        self.aux_fc: nn.Linear | None = None
        self.task_sizes: list[int] = []

    @property
    def feature_dim(self) -> int:
        return self.hidden * len(self.branches)

    def add_task(self, classes: int) -> None:
        for branch in self.branches:  # the old representation is kept as it is
            branch.requires_grad_(False)
        branch = make_backbone(self.kind, self.inputs, self.hidden)
        if self.branches:  # start the new branch from the last one, as DER does
            branch.load_state_dict(self.branches[-1].state_dict())
        self.branches.append(branch)
        seen = sum(self.task_sizes)
        fc = nn.Linear(self.feature_dim, seen + classes)
        if self.fc is not None:  # keep the old classifier's weights on the old features
            with torch.no_grad():
                fc.weight.zero_()
                fc.weight[:seen, : self.fc.in_features] = self.fc.weight
                fc.bias[:seen] = self.fc.bias
        self.fc = fc
        self.aux_fc = nn.Linear(self.hidden, classes + 1)
        self.task_sizes.append(classes)

    def train(self, mode: bool = True):
        super().train(mode)
        for branch in self.branches[:-1]:
            branch.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {"logits": self.fc(f), "features": f, "aux_logits": self.aux_fc(f[:, -self.hidden:])}

    def head_weight(self) -> torch.Tensor:
        return self.fc.weight


class FosterTeacher(nn.Module):
    """FOSTER's boosting stage (Wang et al., ECCV 2022): the old model's backbone, frozen, beside a new backbone started
    from it; a classifier over both features whose old-class rows start from the old heads, and an auxiliary head
    ("fe_fc") on the new features alone. Shapes: x (N, 64) -> logits (N, seen), features (N, 2H), aux_logits (N, seen).
    """

    def __init__(self, student: IncrementalNet):
        super().__init__()
        h = student.feature_dim
        self.old = copy.deepcopy(student.backbone).requires_grad_(False)
        self.new = copy.deepcopy(student.backbone)
        old_w = student.head_weight().detach()
        old_b = torch.cat([hd.bias for hd in student.heads]).detach()
        seen, known = old_w.shape[0], old_w.shape[0] - student.heads[-1].out_features
        self.fc = nn.Linear(2 * h, seen)
        self.fe_fc = nn.Linear(h, seen)
        with torch.no_grad():
            self.fc.weight.zero_()
            self.fc.weight[:known, :h] = old_w[:known]
            self.fc.bias[:known] = old_b[:known]

    def train(self, mode: bool = True):
        super().train(mode)
        self.old.eval()
        return self

    def forward(self, x):
        f_old, f_new = self.old(x), self.new(x)
        f = torch.cat([f_old, f_new], dim=1)
        return {"logits": self.fc(f), "features": f, "aux_logits": self.fe_fc(f_new)}

    def head_weight(self) -> torch.Tensor:
        return self.fc.weight
