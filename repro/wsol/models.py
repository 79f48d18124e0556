"""Tiny CNNs: the image classifier (for Top-1 Loc, CAM and the DDT features), and one localiser backbone shared by
the binary-class detector (BCD) and the single-box regressor (SCR).

All convolutions start with a 4x4 stride-4 patch embedding, so that the whole chapter runs on two CPU cores.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

STRIDE = 8  # the detector's output stride: a 64x64 image gives an 8x8 heat map


def _block(i: int, o: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    pad = 1 if kernel == 3 else 0
    return nn.Sequential(nn.Conv2d(i, o, kernel, stride, pad, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float images -> zero-centred floats."""
    x = images.float()
    if images.dtype == torch.uint8:
        x = x / 255.0
    return x - 0.5


class Classifier(nn.Module):
    """patch embed (16x16) -> conv -> conv -> GAP -> linear. ``features`` is the mid-level 16x16 map DDT uses;
    ``cam`` the class activation maps of the last conv layer (Zhou et al. 2016)."""

    def __init__(self, classes: int = 10, width: int = 32):
        super().__init__()
        self.embed = _block(3, 24, 4, 4)
        self.mid = _block(24, width)
        self.top = _block(width, width)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        mid = self.mid(self.embed(normalise(x)))
        top = self.top(mid)
        return {"logits": self.fc(top.mean((2, 3))), "features": mid, "top": top}

    def cam(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CAM of class ``labels`` per image, (N, 16, 16)."""
        top = self(x)["top"]
        w = self.fc.weight[labels]  # (N, C)
        return torch.einsum("nc,nchw->nhw", w, top)


class Backbone(nn.Module):
    """64x64 -> 8x8 feature map (stride 8)."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(_block(3, 24, 4, 4), _block(24, width), _block(width, width, 2), _block(width, width))
        self.width = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(normalise(x))


class BCD(nn.Module):
    """The binary-class detector, CenterNet-style (a one-stage deviation from the paper's two-stage family): per
    stride-8 cell a foreground logit, a sub-cell centre offset and a log box size."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.backbone = Backbone(width)
        self.neck = _block(width, width)
        self.heat = nn.Conv2d(width, 1, 1)
        self.reg = nn.Conv2d(width, 4, 1)  # dx, dy in cells (sigmoid), log(w / 64), log(h / 64)
        nn.init.constant_(self.heat.bias, -2.19)  # prior foreground probability 0.1 (CenterNet)
        with torch.no_grad():  # start from centred 16x16 boxes instead of whole-image ones
            self.reg.bias.copy_(torch.tensor([0.0, 0.0, -1.386, -1.386]))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.neck(self.backbone(x))
        return {"heat": self.heat(f)[:, 0], "reg": self.reg(f)}


class SCR(nn.Module):
    """Single-class regression (PSOL): the same backbone and one box (cx, cy, w, h) in [0, 1]. The head flattens the
    8x8 map (through a 1x1 reduction) instead of pooling it: global pooling would discard where the object is."""

    def __init__(self, width: int = 32, reduced: int = 8):
        super().__init__()
        self.backbone = Backbone(width)
        self.neck = _block(width, width)
        self.reduce = _block(width, reduced, kernel=1)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(reduced * 64, 64), nn.ReLU(inplace=True), nn.Linear(64, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.reduce(self.neck(self.backbone(x)))))


def decode(out: dict[str, torch.Tensor], top_k: int = 10, nms_iou: float = 0.5, size: int = 64):
    """BCD outputs -> per image (boxes (k, 4) numpy xyxy, scores (k,)): 3x3 peak picking on the sigmoid heat map,
    the ``top_k`` peaks, their boxes from offset and size, then torch NMS."""
    from repro.wsol.boxes import nms

    heat = torch.sigmoid(out["heat"])
    peaks = heat * (F.max_pool2d(heat[:, None], 3, 1, 1)[:, 0] == heat)
    n, h, w = heat.shape
    results = []
    for i in range(n):
        scores, idx = peaks[i].flatten().topk(min(top_k, h * w))
        gy, gx = (idx // w).float(), (idx % w).float()
        reg = out["reg"][i].flatten(1)[:, idx]
        cx = (gx + torch.sigmoid(reg[0])) * STRIDE
        cy = (gy + torch.sigmoid(reg[1])) * STRIDE
        bw, bh = reg[2].exp() * size, reg[3].exp() * size
        boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).clamp(0, size)
        keep = nms(boxes, scores, nms_iou)
        results.append((boxes[keep].numpy(), scores[keep].numpy()))
    return results
