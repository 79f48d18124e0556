"""Box geometry in plain torch (torchvision does not import beside this torch): IoU, NMS, and boxes from a map's
connected components. Boxes are ``xyxy`` floats, ``x1``/``y1`` exclusive, so a box's area is (x1-x0)(y1-y0)."""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def as_tensor(boxes) -> torch.Tensor:
    return torch.as_tensor(np.asarray(boxes, np.float32) if not torch.is_tensor(boxes) else boxes,
                           dtype=torch.float32).reshape(-1, 4)


def area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def iou(a, b) -> torch.Tensor:
    """Pairwise IoU, shape (len(a), len(b)); 0 where the union is empty."""
    a, b = as_tensor(a), as_tensor(b)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes, scores, threshold: float = 0.5) -> torch.Tensor:
    """Indices of the boxes kept by greedy non-maximum suppression, highest score first: a box is dropped when its
    IoU with a kept, higher-scoring box exceeds ``threshold``. Ties keep the lower index (stable sort)."""
    boxes, scores = as_tensor(boxes), torch.as_tensor(scores, dtype=torch.float32).reshape(-1)
    order = torch.sort(scores, descending=True, stable=True).indices
    overlaps = iou(boxes[order], boxes[order])
    keep: list[int] = []
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= overlaps[i] > threshold
    return order[torch.as_tensor(keep, dtype=torch.long)]


def component_boxes(mask: np.ndarray, min_area: int = 1, score_map: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Tight boxes of the 8-connected components of a bool ``mask`` with at least ``min_area`` pixels, and a score per
    box (the component's maximum of ``score_map``, else its area); sorted by score, highest first."""
    labelled, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes, scores = [], []
    for k, sl in enumerate(ndimage.find_objects(labelled), start=1):
        comp = labelled[sl] == k
        size = int(comp.sum())
        if size < min_area:
            continue
        ys, xs = sl
        boxes.append([xs.start, ys.start, xs.stop, ys.stop])
        scores.append(float(score_map[sl][comp].max()) if score_map is not None else float(size))
    if not boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes, scores = np.array(boxes, np.float32), np.array(scores, np.float32)
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order]


def largest(boxes: np.ndarray) -> np.ndarray:
    """The box of largest area (PSOL keeps one box per image), shape (1, 4), or (0, 4) when there is none."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    return boxes[[int(np.argmax(area(as_tensor(boxes)).numpy()))]]
