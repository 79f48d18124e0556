"""Statistics of the released files: the long tail of the triplets, label counts, region co-occurrence, boxes and
clips. Everything is computed from records that :mod:`repro.fha_kitchens.annotations` returns."""
from __future__ import annotations

import statistics
from collections import Counter

import numpy as np

from repro.fha_kitchens.annotations import BOX_TYPES, REGIONS, Frame, TripletCount

# head / mid / tail bins of the notes (instances per triplet)
HEAD_MIN, TAIL_MAX = 101, 10
PAPER_CLIPS = 2377  # [secondary] the paper's clip count
SPLIT = (0.7, 0.1, 0.2)  # the paper's clip-level train/val/test split [secondary]


def gini(counts) -> float:
    """The Gini coefficient of non-negative counts: sum_i (2i - n - 1) x_(i) / (n sum x), x sorted ascending, i from
    1 (0 when all are equal, (n-1)/n when one holds everything)."""
    x = np.sort(np.asarray(counts, dtype=float))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * x.sum()))


def tail_bin(instances: int) -> str:
    return "head" if instances >= HEAD_MIN else ("tail" if instances <= TAIL_MAX else "mid")


def cover(counts, share: float) -> int:
    """How many of the most frequent items together hold at least ``share`` of all instances."""
    x = np.sort(np.asarray(counts, dtype=float))[::-1]
    return int(np.searchsorted(np.cumsum(x) / x.sum(), share - 1e-12) + 1)


def long_tail(triplets: list[TripletCount]) -> dict:
    """The long-tail statistics of ``action_triplet.csv`` (raw labels as the notes counted them, and normalised)."""
    counts = [t.instances for t in triplets]
    top = max(triplets, key=lambda t: t.instances)
    bins = Counter(tail_bin(c) for c in counts)
    merged = Counter()
    for t in triplets:
        merged[t.triplet] += t.instances
    return {
        "triplets": len(triplets), "instances": sum(counts), "max": top.instances, "max_triplet": top.triplet,
        "median": float(statistics.median(counts)), "singletons": sum(c == 1 for c in counts),
        "at_most_10": sum(c <= 10 for c in counts), "head": bins["head"], "mid": bins["mid"], "tail": bins["tail"],
        "head_share": 100 * sum(c for c in counts if tail_bin(c) == "head") / sum(counts),
        "cover50": cover(counts, 0.5), "cover80": cover(counts, 0.8), "gini": gini(counts),
        "subjects_raw": len({t.raw[0] for t in triplets}), "verbs_raw": len({t.raw[1] for t in triplets}),
        "objects_raw": len({t.raw[2] for t in triplets}),
        "subjects": len({t.triplet[0] for t in triplets}), "verbs": len({t.triplet[1] for t in triplets}),
        "objects": len({t.triplet[2] for t in triplets}), "triplets_normalised": len(merged),
        "typo_instances": {raw: sum(t.instances for t in triplets if raw in t.raw)
                           for raw in ("hanf-left", "hand-rigth", "utilityknife-body", "eggshell")},
    }


def rank_counts(triplets: list[TripletCount]) -> np.ndarray:
    """Instances per triplet, most frequent first (for the log-rank vs log-count plot)."""
    return np.sort(np.array([t.instances for t in triplets]))[::-1]


def cooccurrence(frames: list[Frame]) -> Counter:
    """Frames per combination of present regions (a region is present when its per-region triplet is)."""
    out = Counter()
    for f in frames:
        present = f.regions()
        out["+".join(r for r in REGIONS if r in present) or "none"] += 1
    return out


def cooccurrence_matrix(frames: list[Frame]) -> np.ndarray:
    """3x3 counts of frames in which regions i and j are both present (the diagonal: frames with region i)."""
    m = np.zeros((3, 3), dtype=int)
    for f in frames:
        present = [i for i, r in enumerate(REGIONS) if r in f.regions()]
        for i in present:
            for j in present:
                m[i, j] += 1
    return m


def clips(frames: list[Frame]) -> dict[str, list[Frame]]:
    out: dict[str, list[Frame]] = {}
    for f in frames:
        out.setdefault(f.clip_name, []).append(f)
    return {k: sorted(v, key=lambda f: f.frame_index) for k, v in out.items()}


def box_table(frames: list[Frame]):
    """One row per box: type, area (px^2), aspect ratio (width / height)."""
    import pandas as pd

    rows = [(b.type, b.area, b.w / b.h if b.h > 0 else np.nan) for f in frames for b in f.boxes]
    return pd.DataFrame(rows, columns=["type", "area", "aspect"])


def val_stats(frames: list[Frame]) -> dict:
    """The statistics of the per-frame file that the notes list."""
    by_clip = clips(frames)
    lengths = [len(v) for v in by_clip.values()]
    gaps = [b.frame_index - a.frame_index for v in by_clip.values() for a, b in zip(v, v[1:])]
    boxes = box_table(frames)
    per_type = boxes.groupby("type")
    verb_constant = sum(len({f.verb_triplet_id for f in v}) == 1 for v in by_clip.values())
    triplet_constant = sum(len({f.triplets for f in v}) == 1 for v in by_clip.values())
    # O1/O2 classes that disagree with the object of their region's triplet
    disagree = 0
    for f in frames:
        triplet = dict(f.region_triplets)
        for region, box_type in (("L-O", "O1"), ("R-O", "O2")):
            box = next((b for b in f.boxes if b.type == box_type), None)
            if box is not None and region in triplet and box.label != triplet[region][2]:
                disagree += 1
    return {
        "frames": len(frames), "videos": len({f.video_id for f in frames}), "clips": len(by_clip),
        "boxes": len(boxes), "per_type": {t: int((boxes["type"] == t).sum()) for t in BOX_TYPES},
        "cooccurrence": dict(cooccurrence(frames)),
        "triplets": len({t for f in frames for _, t in f.region_triplets}),
        "verbs": len({v for f in frames for _, _, v in f.verbs}),
        "verb_triplet_ids": len({f.verb_triplet_id for f in frames}),
        "multi_triplet_rows": sum(any(c > 1 for c in Counter(r for r, _ in f.triplets).values()) for f in frames),
        "gap1_pairs": sum(g == 1 for g in gaps), "pairs": len(gaps),
        "clip_len_median": float(statistics.median(lengths)), "clip_len_mean": float(np.mean(lengths)),
        "clip_len_max": max(lengths), "clip_lengths": lengths,
        "verb_label_constant_clips": verb_constant, "triplet_constant_clips": triplet_constant,
        "median_area": per_type["area"].median().to_dict(), "median_aspect": per_type["aspect"].median().to_dict(),
        "class_disagreements": disagree,
        "val_clip_share": 100 * len(by_clip) / PAPER_CLIPS,
    }


def raw_packing(path) -> dict[str, int]:
    """How the per-frame file packs several triplets into one region: rows whose ``action_triplet`` cell holds
    ``"),("`` (comma-separated) and rows that hold ``")("`` only (written without the comma)."""
    import csv

    comma = bare = 0
    with open(path, encoding="utf-8-sig", newline="") as f:
        for row in csv.reader(f):
            cell = row[4] if len(row) > 4 else ""
            if "),(" in cell:
                comma += 1
            elif ")(" in cell:
                bare += 1
    return {"comma": comma, "no_comma": bare}
