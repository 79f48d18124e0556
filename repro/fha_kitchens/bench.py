"""The three-track benchmark harness: SL-D (detection), SL-AR (clip recognition), DG (unseen verbs).

It reads frames as arrays and boxes from :class:`~repro.fha_kitchens.annotations.Frame` records, so it runs on the
synthetic mini-dataset and on real frames loaded the same way. Everything is small enough for a CPU: a CenterNet-style
one-stage detector, a frame CNN with average consensus (TSN-style) and the same CNN with a temporal 1-D convolution.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from repro.fha_kitchens.annotations import BOX_TYPES, OBJECT_BOX_TYPES, REGION_BOX_TYPES
from repro.fha_kitchens.synthetic import SynthData, parent_verb

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 2)


# ------------------------------------------------------------------------------------------------ AP
def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between xyxy boxes a (n, 4) and b (m, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-12)


def _matched_ap(order_ious: list[np.ndarray], images: list[int], truths: dict[int, np.ndarray], n_truth: int,
                iou: float) -> float:
    used = {k: np.zeros(len(v), bool) for k, v in truths.items()}
    tp = np.zeros(len(order_ious))
    for rank, (image, ious) in enumerate(zip(images, order_ious)):
        if len(ious) == 0:
            continue
        ious = np.where(used[image], -1.0, ious)
        j = int(np.argmax(ious))
        if ious[j] >= iou:
            used[image][j] = True
            tp[rank] = 1
    if len(tp) == 0:
        return 0.0
    ctp = np.cumsum(tp)
    recall = ctp / n_truth
    precision = np.maximum.accumulate((ctp / np.arange(1, len(tp) + 1))[::-1])[::-1]
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    return float(np.mean([precision[i] if i < len(precision) else 0.0 for i in idx]))


def average_precisions(detections: list[tuple[int, float, np.ndarray]], truths: dict[int, np.ndarray],
                       thresholds=IOU_THRESHOLDS) -> list[float]:
    """COCO-style AP of one category at each IoU threshold: detections (image, score, xyxy) sorted by score, each
    matched greedily to the unmatched truth of its image with the highest IoU >= the threshold; the precision
    envelope is sampled at 101 recall points. NaN when there is no truth."""
    n_truth = sum(len(t) for t in truths.values())
    if n_truth == 0:
        return [float("nan")] * len(thresholds)
    order = sorted(range(len(detections)), key=lambda i: -detections[i][1])
    images = [detections[i][0] for i in order]
    ious = [iou_matrix(detections[i][2][None], truths.get(detections[i][0], np.zeros((0, 4))))[0] for i in order]
    return [_matched_ap(ious, images, truths, n_truth, t) for t in thresholds]


def average_precision(detections, truths, iou: float) -> float:
    """:func:`average_precisions` at one IoU threshold."""
    return average_precisions(detections, truths, (iou,))[0]


def evaluate_detections(dets: dict[str, list], truths: dict[str, dict[int, np.ndarray]]) -> dict[str, dict]:
    """AP50 and AP@[.5:.95] per category (percent)."""
    out = {}
    for cat, gt in truths.items():
        aps = average_precisions(dets.get(cat, []), gt)
        out[cat] = {"AP50": 100 * aps[0], "AP": 100 * float(np.mean(aps))}
    return out


# ------------------------------------------------------------------------------------------------ detector
class TinyCenterNet(nn.Module):
    """A one-stage detector at stride 4: a class heat map, box size and centre offset per cell."""

    def __init__(self, classes: int, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=2, dilation=2), nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=4, dilation=4), nn.ReLU(),
        )
        self.heat = nn.Conv2d(2 * width, classes, 1)
        self.box = nn.Conv2d(2 * width, 4, 1)  # w, h (cells), dx, dy
        nn.init.constant_(self.heat.bias, -2.2)

    def forward(self, x):
        z = self.body(x)
        return self.heat(z), self.box(z)


STRIDE = 4


def frame_boxes(record, size: int, width: float, height: float, types) -> list[tuple[int, np.ndarray]]:
    """(category index, xyxy in frame pixels of side ``size``) for the record's boxes of ``types``."""
    out = []
    for b in record.boxes:
        if b.type in types:
            sx, sy = size / width, size / height
            out.append((types.index(b.type), np.array([b.x * sx, b.y * sy, (b.x + b.w) * sx, (b.y + b.h) * sy])))
    return out


def _targets(boxes, classes: int, grid: int):
    heat = np.zeros((classes, grid, grid), np.float32)
    reg = np.zeros((4, grid, grid), np.float32)
    mask = np.zeros((grid, grid), np.float32)
    yy, xx = np.mgrid[0:grid, 0:grid]
    for c, (x0, y0, x1, y1) in boxes:
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        w, h = (x1 - x0) / STRIDE, (y1 - y0) / STRIDE
        ix, iy = min(int(cx), grid - 1), min(int(cy), grid - 1)
        sigma = max(0.6, (w * h) ** 0.5 / 6)
        heat[c] = np.maximum(heat[c], np.exp(-((xx - ix) ** 2 + (yy - iy) ** 2) / (2 * sigma**2)))
        reg[:, iy, ix] = (w, h, cx - ix, cy - iy)
        mask[iy, ix] = 1
    return heat, reg, mask


def _focal(pred, gt):
    p = pred.sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = gt.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = -(torch.log(1 - p) * p**2 * (1 - gt) ** 4 * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1)


def train_detector(images: np.ndarray, boxes: list, classes: int, steps: int, seed: int, batch: int = 32,
                   lr: float = 2e-3) -> TinyCenterNet:
    """Train on images (N, 3, S, S) with per-image [(class, xyxy)]."""
    torch.manual_seed(seed)
    grid = images.shape[-1] // STRIDE
    targets = [_targets(b, classes, grid) for b in boxes]
    heat = torch.from_numpy(np.stack([t[0] for t in targets]))
    reg = torch.from_numpy(np.stack([t[1] for t in targets]))
    mask = torch.from_numpy(np.stack([t[2] for t in targets]))
    x_all = torch.from_numpy(images)
    model = TinyCenterNet(classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        idx = torch.randint(len(x_all), (batch,), generator=gen)
        x = x_all[idx]
        if step % 2:  # horizontal flips would swap left and right hands: only brightness jitter
            x = (x * (0.9 + 0.2 * torch.rand(len(x), 1, 1, 1, generator=gen))).clamp(0, 1)
        ph, pr = model(x)
        m = mask[idx][:, None]
        loss = _focal(ph, heat[idx]) + (F.l1_loss(pr * m, reg[idx] * m, reduction="sum") / m.sum().clamp(min=1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def detect(model: TinyCenterNet, images: np.ndarray, top: int = 5, min_score: float = 0.05) -> list[list[tuple]]:
    """Per image: (class, score, xyxy) of the ``top`` peaks per class scoring at least ``min_score``."""
    out = []
    for start in range(0, len(images), 128):
        heat, reg = model(torch.from_numpy(images[start:start + 128]))
        heat = heat.sigmoid()
        peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat)
        b, c, g, _ = heat.shape
        scores, idx = peaks.view(b, c, -1).topk(min(top, g * g), dim=-1)
        for i in range(b):
            dets = []
            for k in range(c):
                for s, j in zip(scores[i, k].tolist(), idx[i, k].tolist()):
                    if s < min_score:
                        break
                    iy, ix = divmod(j, g)
                    w, h, dx, dy = reg[i, :, iy, ix].tolist()
                    cx, cy = (ix + dx) * STRIDE, (iy + dy) * STRIDE
                    w, h = max(w, 0.1) * STRIDE, max(h, 0.1) * STRIDE
                    dets.append((k, s, np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])))
            out.append(dets)
    return out


# ------------------------------------------------------------------------------------------------ splits
def split_clips(data: SynthData, how: str, seed: int, train_share: float = 0.7) -> tuple[list[int], list[int]]:
    """Train and test clip indices. ``how="video"``: whole videos on one side (the protocol we recommend);
    ``how="clip"``: clips at random, so a video's clips sit on both sides (the paper's protocol)."""
    rng = np.random.default_rng([seed, 3])
    if how == "video":
        videos = sorted({c.video for c in data.clips})
        rng.shuffle(videos)
        keep = set(videos[: round(train_share * len(videos))])
        train = [i for i, c in enumerate(data.clips) if c.video in keep]
    elif how == "clip":
        order = rng.permutation(len(data.clips))
        train = sorted(order[: round(train_share * len(order))].tolist())
    else:
        raise ValueError(f"unknown split {how!r}: 'video' or 'clip'")
    chosen = set(train)
    return train, [i for i in range(len(data.clips)) if i not in chosen]


def _frames_of(data: SynthData, clip_ids, types, keep=lambda record: True):
    cfg = data.config
    images, boxes, records = [], [], []
    for i in clip_ids:
        c = data.clips[i]
        for img, rec in zip(c.frames, c.records):
            if keep(rec):
                images.append(img)
                boxes.append(frame_boxes(rec, cfg.size, cfg.width, cfg.height, types))
                records.append(rec)
    return np.stack(images) if images else np.zeros((0, 3, cfg.size, cfg.size), np.float32), boxes, records


def _collect(dets, boxes, types, images_subset=None):
    """Detections and truths per category name, over the images (indices) of ``images_subset``."""
    subset = range(len(boxes)) if images_subset is None else images_subset
    d = {t: [] for t in types}
    g = {t: {} for t in types}
    for i in subset:
        for k, s, box in dets[i]:
            d[types[k]].append((i, s, box))
        for k, box in boxes[i]:
            g[types[k]].setdefault(i, []).append(box)
    truths = {t: {i: np.stack(v) for i, v in g[t].items()} for t in types}
    return d, {t: v for t, v in truths.items() if v}


# ------------------------------------------------------------------------------------------------ SL-D
def sl_detection(data: SynthData, steps: int, seed: int) -> dict:
    """Train on the video-disjoint train split, AP50 and AP@[.5:.95] per box type on the test split; the mean over
    region types and over object types."""
    train, test = split_clips(data, "video", seed)
    types = list(BOX_TYPES)
    x, b, _ = _frames_of(data, train, types)
    model = train_detector(x, b, len(types), steps, seed)
    xt, bt, _ = _frames_of(data, test, types)
    d, g = _collect(detect(model, xt), bt, types)
    per_type = evaluate_detections(d, g)
    mean = lambda group, key: float(np.nanmean([per_type[t][key] for t in group if t in per_type]))  # noqa: E731
    return {"per_type": per_type, "regions_AP": mean(REGION_BOX_TYPES, "AP"),
            "objects_AP": mean(OBJECT_BOX_TYPES, "AP"), "regions_AP50": mean(REGION_BOX_TYPES, "AP50"),
            "objects_AP50": mean(OBJECT_BOX_TYPES, "AP50"), "train_frames": len(x), "test_frames": len(xt)}


# ------------------------------------------------------------------------------------------------ DG
def holdouts(data: SynthData) -> dict[str, set[str]]:
    """Verbs held out of training, chosen from the clip counts. Intra-class: the parent verb with at least two
    sub-verbs and the most clips keeps its most frequent sub-verb and loses the others. Inter-class: the most
    frequent other parent loses all its sub-verbs."""
    clips_of: dict[str, int] = {}
    for c in data.clips:
        verb = data.classes[c.label][1]
        clips_of[verb] = clips_of.get(verb, 0) + 1
    by_parent: dict[str, list[str]] = {}
    for verb in sorted(clips_of, key=lambda v: (-clips_of[v], v)):
        by_parent.setdefault(parent_verb(verb), []).append(verb)
    total = {p: sum(clips_of[v] for v in verbs) for p, verbs in by_parent.items()}
    ranked = sorted(by_parent, key=lambda p: (-total[p], p))
    intra_parent = next((p for p in ranked if len(by_parent[p]) >= 2), None)
    inter_parent = next((p for p in ranked if p != intra_parent), None)
    return {"intra": set(by_parent[intra_parent][1:]) if intra_parent else set(),
            "inter": set(by_parent[inter_parent]) if inter_parent else set(),
            "intra_parent": {intra_parent} - {None}, "inter_parent": {inter_parent} - {None}}


def domain_generalisation(data: SynthData, steps: int, seed: int) -> dict:
    """A class-agnostic interaction-region detector trained without the held-out verbs; AP50 on test frames of
    seen verbs, of intra-class unseen sub-verbs and of inter-class unseen parents."""
    held = holdouts(data)
    unseen = held["intra"] | held["inter"]
    verb_of = lambda rec: rec.verbs[0][2]  # noqa: E731
    train, test = split_clips(data, "video", seed)
    types = ["region"]
    region = lambda rec: rec  # noqa: E731

    def boxes_as_region(clips, keep):
        x, b, recs = _frames_of(data, clips, list(REGION_BOX_TYPES), keep)
        return x, [[(0, box) for _, box in bb] for bb in b], recs

    x, b, _ = boxes_as_region(train, lambda rec: verb_of(region(rec)) not in unseen)
    model = train_detector(x, b, 1, steps, seed)
    xt, bt, recs = boxes_as_region(test, lambda rec: True)
    dets = detect(model, xt)
    groups = {"seen": [i for i, r in enumerate(recs) if verb_of(r) not in unseen],
              "intra-class unseen": [i for i, r in enumerate(recs) if verb_of(r) in held["intra"]],
              "inter-class unseen": [i for i, r in enumerate(recs) if verb_of(r) in held["inter"]]}
    out = {}
    for name, idx in groups.items():
        d, g = _collect(dets, bt, types, idx)
        out[name] = evaluate_detections(d, g)["region"]["AP50"] if g else float("nan")
    out["frames"] = {k: len(v) for k, v in groups.items()}
    out["held_out"] = {k: sorted(v) for k, v in held.items()}
    return out


# ------------------------------------------------------------------------------------------------ SL-AR
class FrameEncoder(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(3))
        self.proj = nn.Linear(32 * 9, dim)

    def forward(self, x):  # (B, T, 3, S, S) -> (B, T, dim)
        b, t = x.shape[:2]
        return F.relu(self.proj(self.conv(x.flatten(0, 1)).flatten(1))).view(b, t, -1)


class Recogniser(nn.Module):
    """``kind="tsn"``: class scores from the average of per-frame features (TSN's average consensus);
    ``kind="temporal"``: a 1-D convolution over time on the frame features before pooling."""

    def __init__(self, classes: int, kind: str, dim: int = 64):
        super().__init__()
        self.kind = kind
        self.encoder = FrameEncoder(dim)
        self.temporal = nn.Conv1d(dim, dim, 3, padding=1) if kind == "temporal" else None
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        z = self.encoder(x)
        if self.temporal is not None:
            z = F.relu(self.temporal(z.transpose(1, 2))).transpose(1, 2)
        return self.head(z.mean(1))


def clip_tensor(frames: np.ndarray, length: int) -> np.ndarray:
    """``length`` frames sampled evenly over a clip (3-8 frames)."""
    idx = np.round(np.linspace(0, len(frames) - 1, length)).astype(int)
    return frames[idx]


def tail_bins(data: SynthData) -> dict[int, str]:
    """Class index -> head/mid/tail: thirds of the classes by their real frequency rank."""
    k = len(data.classes)
    return {i: ("head" if i < k / 3 else "mid" if i < 2 * k / 3 else "tail") for i in range(k)}


def sl_recognition(data: SynthData, split: str, kind: str, epochs: int, seed: int, length: int = 4) -> dict:
    """Train a recogniser on one split; Top-1/Top-5 on the test clips and accuracy per head/mid/tail bin."""
    train, test = split_clips(data, split, seed)
    x = torch.from_numpy(np.stack([clip_tensor(data.clips[i].frames, length) for i in train]))
    y = torch.tensor([data.clips[i].label for i in train])
    xt = torch.from_numpy(np.stack([clip_tensor(data.clips[i].frames, length) for i in test]))
    yt = torch.tensor([data.clips[i].label for i in test])
    torch.manual_seed(seed)
    model = Recogniser(len(data.classes), kind)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(32):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        logits = model(xt)
    top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
    correct = (top5[:, 0] == yt).numpy()
    bins = tail_bins(data)
    per_bin = {}
    for name in ("head", "mid", "tail"):
        m = np.array([bins[int(c)] == name for c in yt])
        per_bin[name] = 100 * float(correct[m].mean()) if m.any() else float("nan")
    return {"top1": 100 * float(correct.mean()), "top5": 100 * float((top5 == yt[:, None]).any(1).float().mean()),
            **per_bin, "test_clips": len(test), "train_clips": len(train),
            "test_per_bin": {n: int(sum(bins[int(c)] == n for c in yt)) for n in ("head", "mid", "tail")}}


@dataclass(frozen=True)
class Job:
    task: str  # "sl-d", "dg", "ar-video", "ar-clip"
    seed: int
    config: object  # SynthConfig
    steps: int
    epochs: int
    triplets: tuple


def run_job(job: Job) -> dict:
    """One (task, seed) run, for :func:`repro.utils.pool_map`: generates the seed's mini-dataset, then runs."""
    from repro.fha_kitchens.synthetic import generate

    data = generate(list(job.triplets), job.config, job.seed)
    if job.task == "sl-d":
        return sl_detection(data, job.steps, job.seed)
    if job.task == "dg":
        return domain_generalisation(data, job.steps, job.seed)
    split = job.task.split("-")[1]
    return {kind: sl_recognition(data, split, kind, job.epochs, job.seed) for kind in ("tsn", "temporal")}
