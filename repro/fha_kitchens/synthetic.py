"""A synthetic mini FHA-Kitchens, written in the identical 31-column CSV format.

The frames were never released, so the benchmark harness runs on rendered frames: a hand blob (skin-coloured
ellipse) or a tool, and a food/tool object (a coloured rectangle whose colour and size come from its name), on a
per-video background. Each clip carries one triplet drawn from the real long-tailed triplet distribution
(``action_triplet.csv``, normalised) and restricted to its video's "dish" (a video-specific subset of triplets).

The verb is encoded by **relative pose and motion** over 3-8 frames: the parent verb (cut, hold, press...) sets
where the active part sits relative to the object (one of eight directions) and how far it overlaps; the sub-verb
(hold-in vs hold-around) sets the motion (static, approaching, oscillating) and the active part's size. The region
box is the union of the active part's and the object's boxes, as in the real annotations.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from repro.fha_kitchens.annotations import Box, Frame, TripletCount

# the notes' parent-verb exceptions; otherwise the parent is the prefix before "-"
PARENT_EXCEPTIONS = {"grab": "take", "pick-up": "take", "chop": "cut", "dice": "cut", "julienne": "cut",
                     "halve": "cut", "churn": "mix", "stir": "mix"}
SKIN = np.array([0.85, 0.62, 0.50])


def parent_verb(verb: str) -> str:
    return PARENT_EXCEPTIONS.get(verb, verb.split("-")[0])


def _hash(text: str, salt: str = "") -> int:
    return int.from_bytes(hashlib.sha256(f"{salt}:{text}".encode()).digest()[:8], "little")


@dataclass(frozen=True)
class SynthConfig:
    videos: int = 16
    clips_per_video: int = 16
    classes: int = 24  # the most frequent real triplets; sampled in proportion to their real instances
    dish: int = 8  # triplets per video
    # sampling weights = real instances ** temper: 1 is the real distribution; below 1 keeps the order of the real
    # long tail but flattens it, so that a mini-dataset of a few hundred clips has more than one clip of most triplets
    temper: float = 0.5
    size: int = 48  # frame side (pixels)
    min_frames: int = 3
    max_frames: int = 8
    width: int = 1280  # the coordinates written to the CSV are scaled to a 1280x720-like frame, as the real ones
    height: int = 720


@dataclass
class Clip:
    video: int
    clip_id: int
    label: int  # index into the class list
    frames: np.ndarray  # (T, 3, size, size) float32 in [0, 1]
    records: list[Frame]


@dataclass
class SynthData:
    config: SynthConfig
    classes: list[tuple[str, str, str]]  # the triplets, by class index
    weights: np.ndarray  # their real instances (the sampling weights)
    clips: list[Clip]

    def frames(self) -> list[Frame]:
        return [r for c in self.clips for r in c.records]


def class_list(triplets: list[TripletCount], k: int) -> tuple[list[tuple[str, str, str]], np.ndarray]:
    """The ``k`` most frequent normalised triplets and their instances (ties broken by name, for determinism)."""
    merged: dict[tuple, int] = {}
    for t in triplets:
        merged[t.triplet] = merged.get(t.triplet, 0) + t.instances
    top = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [t for t, _ in top], np.array([n for _, n in top], dtype=float)


def verb_code(verb: str) -> tuple[float, float, int, float]:
    """(direction in radians, overlap in [0.1, 0.5], motion 0/1/2, active-part scale) for a verb: the parent sets
    the direction and overlap, the sub-verb the motion and scale."""
    parent = parent_verb(verb)
    h = _hash(parent, "parent")
    direction = (h % 8) * math.pi / 4
    overlap = 0.1 + 0.4 * ((h // 8) % 3) / 2
    s = _hash(verb, "sub")
    return direction, overlap, s % 3, 0.8 + 0.4 * ((s // 3) % 3) / 2


def object_look(name: str) -> tuple[np.ndarray, float, float]:
    """Colour, relative width and aspect of an object, from its name."""
    h = _hash(name, "object")
    rng = np.random.default_rng(h % 2**32)
    colour = rng.uniform(0.1, 0.95, 3)
    return colour, 0.18 + 0.10 * rng.random(), 0.6 + 0.9 * rng.random()


def _background(size: int, video: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, video, 7])
    base = rng.uniform(0.2, 0.8, 3)
    freq = rng.uniform(0.15, 0.6)
    angle = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = 0.12 * np.sin(freq * (xx * math.cos(angle) + yy * math.sin(angle)))
    return np.clip(base[:, None, None] + stripes[None] + 0.03 * rng.standard_normal((3, size, size)), 0, 1)


def _draw_rect(img, box, colour):
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0 = max(x0, 0), max(y0, 0)
    img[:, y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)] = colour[:, None, None]


def _draw_ellipse(img, box, colour):
    x0, y0, x1, y1 = box
    size = img.shape[-1]
    yy, xx = np.mgrid[0:size, 0:size]
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, max((x1 - x0) / 2, 0.5), max((y1 - y0) / 2, 0.5)
    mask = ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1
    img[:, mask] = colour[:, None]


def _clip_box(b, size):
    x0, y0, x1, y1 = b
    return max(0.0, x0), max(0.0, y0), min(float(size), x1), min(float(size), y1)


def render_clip(triplet, video: int, clip_id: int, label: int, cfg: SynthConfig, rng: np.random.Generator,
                seed: int) -> Clip:
    """One clip of 3-8 frames with its records (boxes in CSV pixel coordinates)."""
    subject, verb, obj = triplet
    region = {"hand-left": "L-O", "hand-right": "R-O"}.get(subject, "O-O")
    direction, overlap, motion, scale = verb_code(verb)
    s = cfg.size
    colour, rel_w, aspect = object_look(obj)
    hue = np.random.default_rng([seed, video, 11]).uniform(-0.08, 0.08, 3)  # per-video lighting
    ow = rel_w * s
    oh = min(ow * aspect, 0.45 * s)
    cx, cy = rng.uniform(0.35 * s, 0.65 * s), rng.uniform(0.35 * s, 0.65 * s)
    hw = hh = 0.2 * s * scale
    if region == "O-O":
        subj_colour, _, _ = object_look(subject)
        hh = hw * 0.6
    else:
        subj_colour = SKIN
    n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
    start = int(rng.integers(0, 5000))
    frames, records = [], []
    background = _background(s, video, seed)
    for t in range(n):
        dist = (ow + hw) / 2 * (1 - overlap)
        if motion == 1:
            dist *= 1.4 - 0.4 * t / max(n - 1, 1)  # approaching
        wobble = 0.08 * s * math.sin(math.pi * t / 1.5) if motion == 2 else 0.0
        jx, jy = rng.normal(0, 0.01 * s, 2)
        ocx, ocy = cx + jx, cy + jy
        hcx = ocx + dist * math.cos(direction) - wobble * math.sin(direction)
        hcy = ocy + dist * math.sin(direction) + wobble * math.cos(direction)
        ob = _clip_box((ocx - ow / 2, ocy - oh / 2, ocx + ow / 2, ocy + oh / 2), s)
        hb = _clip_box((hcx - hw / 2, hcy - hh / 2, hcx + hw / 2, hcy + hh / 2), s)
        img = background.copy()
        _draw_rect(img, ob, np.clip(colour + hue, 0, 1))
        (_draw_ellipse if region != "O-O" else _draw_rect)(img, hb, np.clip(subj_colour + hue, 0, 1))
        img = np.clip(img + 0.02 * rng.standard_normal(img.shape), 0, 1).astype(np.float32)
        frames.append(img)
        rb = (min(ob[0], hb[0]), min(ob[1], hb[1]), max(ob[2], hb[2]), max(ob[3], hb[3]))
        sx, sy = cfg.width / s, cfg.height / s

        def box(kind, b, lab, sx=sx, sy=sy):
            return Box(kind, lab, *(float(round(v, 3)) for v in (b[0] * sx, b[1] * sy, (b[2] - b[0]) * sx,
                                                                (b[3] - b[1]) * sy)))

        region_type, active_type, passive_type = {"L-O": ("L-O", "left_hand", "O1"),
                                                  "R-O": ("R-O", "right_hand", "O2"),
                                                  "O-O": ("O-O", "subject", "object")}[region]
        active_label = subject
        boxes = (box(region_type, rb, verb), box(active_type, hb, active_label), box(passive_type, ob, obj))
        verbs3 = tuple(verb if r == region else None for r in ("L-O", "R-O", "O-O"))
        frame_no = start + t
        records.append(Frame(
            video_id=video, video_name=f"syn_{video}", frame_name=f"img_{frame_no:06d}.jpg",
            timestamp=round(frame_no / 30, 3), clip_id=clip_id, clip_name=f"syn_{video}_{clip_id}",
            verb_triplet=verbs3, verb_triplet_id=label, triplets=((region, tuple(triplet)),),
            region_triplets=((region, tuple(triplet)),), verbs=((region, _hash(verb, "id") % 400, verb),),
            boxes=boxes))
    return Clip(video, clip_id, label, np.stack(frames), records)


def generate(triplets: list[TripletCount], cfg: SynthConfig, seed: int) -> SynthData:
    """The mini-dataset: ``cfg.videos`` videos of ``cfg.clips_per_video`` clips. Each video draws a dish of
    ``cfg.dish`` triplets, then its clips from the dish, both by the tempered real frequency (``cfg.temper``)."""
    classes, weights = class_list(triplets, cfg.classes)
    tempered = weights ** cfg.temper
    p = tempered / tempered.sum()
    rng = np.random.default_rng([seed, 1])
    clips = []
    for v in range(cfg.videos):
        dish = rng.choice(len(classes), size=min(cfg.dish, len(classes)), replace=False, p=p)
        q = tempered[dish] / tempered[dish].sum()
        for c in range(cfg.clips_per_video):
            label = int(dish[rng.choice(len(dish), p=q)])
            clips.append(render_clip(classes[label], v, c, label, cfg, rng, seed))
    return SynthData(cfg, classes, weights, clips)
