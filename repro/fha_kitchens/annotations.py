"""The FHA-Kitchens annotation files: parse them into records, normalise the label typos, export COCO-style JSON.

The per-frame CSV has 31 columns (see ``COLUMNS``). Its quirks, all handled here:

- two header spellings (``L-O_action_verb class`` in the released validation file, ``L-O_action_verb_class`` in the
  ``k_86`` sample; a UTF-8 BOM in some files): columns are matched on a key with spaces read as underscores;
- boxes are Python-dict strings with single quotes (``ast.literal_eval``, not JSON), top-left xywh in pixels;
  ``none`` or an empty cell means no box;
- ``action_triplet`` is a JSON list of one dict whose values may pack several triplets, ``"(a,b,c),(d,e,f)"``,
  with ``_`` between object and contact area; the per-region columns keep only the first triplet;
- label typos (``hanf-left``, ``hand-rigth``, ``utilityknife-body``, ``eggshell``...) go through :data:`ALIASES`;
- blank rows (a trailing one in ``k_86_annotation.csv``) are dropped.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

REGIONS = ("L-O", "R-O", "O-O")
# the nine box types: per region, the region box, the active part (hand or subject) and the passive object
BOX_TYPES = ("L-O", "R-O", "O-O", "left_hand", "right_hand", "O1", "O2", "subject", "object")
REGION_BOX_TYPES = ("L-O", "R-O", "O-O")
HAND_BOX_TYPES = ("left_hand", "right_hand")
OBJECT_BOX_TYPES = ("O1", "O2", "subject", "object")
SUPERCATEGORY = {**{t: "region" for t in REGION_BOX_TYPES}, **{t: "hand" for t in HAND_BOX_TYPES},
                 **{t: "object" for t in OBJECT_BOX_TYPES}}
PACKED_KEYS = {"L-O": "L-O_triple1", "R-O": "R-O_triple2", "O-O": "O-O_triple3"}

# The header as the released validation file spells it; files are written with it.
COLUMNS = (
    "video_id", "video_name", "frame_name", "timestamp", "action_triplet",
    "L-O_triplet", "L-O_action_verb_id", "L-O_action_verb class", "L-O_action_bbox", "left_hand_bbox", "O1_class",
    "O1_bbox",
    "R-O_triplet", "R-O_action_verb id", "R-O_action_verb class", "R-O_action_bbox", "right_hand_bbox", "O2_class",
    "O2_bbox",
    "O-O_triplet", "O-O_action_verb id", "O-O_action_verb class", "O-O_action_bbox", "subject_class", "subject_bbox",
    "object_class", "object_bbox",
    "clip_id", "clip_name", "action_verb triplet", "action_verb triplet_id",
)
# per region: (triplet, verb id, verb class, region box, active box, active class, passive box, passive class)
REGION_COLUMNS = {
    "L-O": ("L-O_triplet", "L-O_action_verb_id", "L-O_action_verb_class", "L-O_action_bbox", "left_hand_bbox", None,
            "O1_bbox", "O1_class"),
    "R-O": ("R-O_triplet", "R-O_action_verb_id", "R-O_action_verb_class", "R-O_action_bbox", "right_hand_bbox", None,
            "O2_bbox", "O2_class"),
    "O-O": ("O-O_triplet", "O-O_action_verb_id", "O-O_action_verb_class", "O-O_action_bbox", "subject_bbox",
            "subject_class", "object_bbox", "object_class"),
}
REGION_TYPES = {"L-O": ("L-O", "left_hand", "O1"), "R-O": ("R-O", "right_hand", "O2"),
                "O-O": ("O-O", "subject", "object")}
HAND_LABEL = {"left_hand": "hand-left", "right_hand": "hand-right"}

# Whole-name typos, then prefix typos (applied to hyphenated names). "glastic-bottle-*" is left as it is: glass or
# plastic cannot be told from the files.
ALIASES = {
    "hanf-left": "hand-left",
    "hand-rigth": "hand-right",
    "utility-knife-handlee": "utility-knife-handle",
    "eggshell": "egg-shell-all",
    "egg-shell": "egg-shell-all",
}
PREFIX_ALIASES = (("utilityknife-", "utility-knife-"), ("eggshell-", "egg-shell-"))


def column_key(name: str) -> str:
    """The spelling-independent key of a header cell: BOM and outer spaces removed, inner spaces read as '_'."""
    return name.strip().lstrip("\ufeff").strip().replace(" ", "_")


KEYS = tuple(column_key(c) for c in COLUMNS)


class AnnotationFormatError(ValueError):
    """A file is not in the FHA-Kitchens per-frame format; the message says which columns are missing."""


def normalise_name(name: str | None) -> str | None:
    """One label, hyphenated, typos fixed. ``None``, ``''`` and ``'none'`` are None."""
    if name is None:
        return None
    name = name.strip().replace("_", "-")
    if name in ("", "none"):
        return None
    name = ALIASES.get(name, name)
    for bad, good in PREFIX_ALIASES:
        if name.startswith(bad):
            name = good + name[len(bad):]
    return ALIASES.get(name, name)


@dataclass(frozen=True)
class Box:
    type: str  # one of BOX_TYPES
    label: str | None  # the object's class for O1/O2/subject/object; "hand-left"/"hand-right"; the region's verb
    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x, self.y, self.x + self.w, self.y + self.h


Triplet = tuple[str, str, str]


@dataclass(frozen=True)
class Frame:
    """One annotated frame. ``triplets`` holds every triplet of a region (from the packed ``action_triplet``),
    ``region_triplets`` the one the per-region column keeps; ``verbs`` the (verb id, verb) per present region."""

    video_id: int
    video_name: str
    frame_name: str
    timestamp: float
    clip_id: int
    clip_name: str
    verb_triplet: tuple[str | None, str | None, str | None]
    verb_triplet_id: int
    triplets: tuple[tuple[str, Triplet], ...]  # (region, triplet), in region order
    region_triplets: tuple[tuple[str, Triplet], ...]
    verbs: tuple[tuple[str, int, str], ...]  # (region, verb id, verb)
    boxes: tuple[Box, ...]

    @property
    def frame_index(self) -> int:
        digits = re.findall(r"\d+", self.frame_name)
        return int(digits[-1]) if digits else -1

    def regions(self) -> frozenset[str]:
        return frozenset(r for r, _ in self.region_triplets)


_NUM = r"\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*"
_BOX = re.compile(r"^\{'x':" + _NUM + r",\s*'y':" + _NUM + r",\s*'width':" + _NUM + r",\s*'height':" + _NUM + r"\}$")
_LIST = re.compile(r"^\[\s*(?:'[^'\\]*'\s*,\s*)*(?:'[^'\\]*')?\s*\]$")
_QUOTED = re.compile(r"'([^']*)'")


def parse_box(cell: str | None) -> tuple[float, float, float, float] | None:
    """``"{'x': 1, 'y': 2, 'width': 3, 'height': 4}"`` -> (1.0, 2.0, 3.0, 4.0); ``none``/empty -> None."""
    if cell is None or cell.strip() in ("", "none"):
        return None
    match = _BOX.match(cell.strip())
    if match:  # the common spelling, read without literal_eval (10x faster)
        return tuple(float(v) for v in match.groups())
    d = ast.literal_eval(cell.strip())
    return float(d["x"]), float(d["y"]), float(d["width"]), float(d["height"])


def parse_list(cell: str | None) -> list[str] | None:
    """A Python-list string such as ``"['hand-left', 'hold-around', 'cup-body']"``; ``none``/empty -> None."""
    if cell is None or cell.strip() in ("", "none"):
        return None
    if _LIST.match(cell.strip()):
        return _QUOTED.findall(cell)
    value = ast.literal_eval(cell.strip())
    return [str(v) for v in value]


_PACKED = re.compile(r"\(([^()]*)\)")


def parse_packed(cell: str) -> dict[str, list[Triplet]]:
    """The ``action_triplet`` cell: a JSON list of one dict, each region's value ``"none"`` or one or more
    ``"(subject,verb,object_area)"`` joined by commas. Returns every normalised triplet per region."""
    out: dict[str, list[Triplet]] = {r: [] for r in REGIONS}
    if cell is None or cell.strip() in ("", "none"):
        return out
    items = json.loads(cell)
    for item in items:
        for key, value in item.items():
            region = key.split("_")[0]
            if region not in out or value is None:
                continue
            for inner in _PACKED.findall(value):
                parts = [normalise_name(p) for p in inner.split(",")]
                if len(parts) == 3 and all(parts):
                    out[region].append(tuple(parts))
    return out


def _triplet(cell: str | None) -> Triplet | None:
    values = parse_list(cell)
    if not values:
        return None
    parts = [normalise_name(v) for v in values]
    return tuple(parts) if len(parts) == 3 and all(parts) else None


def _int(cell: str | None) -> int | None:
    cell = (cell or "").strip()
    return None if cell in ("", "none") else int(float(cell))


def frame_from_row(row: dict[str, str]) -> Frame:
    """One CSV row (keyed by :func:`column_key`) as a :class:`Frame`."""
    packed = parse_packed(row["action_triplet"])
    region_triplets, verbs, boxes = [], [], []
    for region in REGIONS:
        tri_col, vid_col, verb_col, region_box, active_box, active_cls, passive_box, passive_cls = (
            column_key(c) if c else None for c in REGION_COLUMNS[region])
        triplet = _triplet(row[tri_col])
        if triplet is not None:
            region_triplets.append((region, triplet))
        verb = normalise_name(row[verb_col])
        verb_id = _int(row[vid_col])
        if verb is not None and verb_id is not None:
            verbs.append((region, verb_id, verb))
        region_type, active_type, passive_type = REGION_TYPES[region]
        labels = {region_type: verb,
                  active_type: normalise_name(row[active_cls]) if active_cls else HAND_LABEL[active_type],
                  passive_type: normalise_name(row[passive_cls])}
        for box_type, col in ((region_type, region_box), (active_type, active_box), (passive_type, passive_box)):
            xywh = parse_box(row[col])
            if xywh is not None:
                boxes.append(Box(box_type, labels[box_type], *xywh))
    verb_triplet = tuple(normalise_name(v) for v in (parse_list(row["action_verb_triplet"]) or [None] * 3))
    return Frame(
        video_id=int(row["video_id"]), video_name=row["video_name"].strip(), frame_name=row["frame_name"].strip(),
        timestamp=float(row["timestamp"]), clip_id=int(row["clip_id"]), clip_name=row["clip_name"].strip(),
        verb_triplet=verb_triplet, verb_triplet_id=int(row["action_verb_triplet_id"]),
        triplets=tuple((r, t) for r in REGIONS for t in packed[r]), region_triplets=tuple(region_triplets),
        verbs=tuple(verbs), boxes=tuple(boxes))


def read_rows(text: str) -> list[dict[str, str]]:
    """The non-blank rows of a per-frame CSV, keyed by :func:`column_key`. Raises AnnotationFormatError when a
    column is missing."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [column_key(h) for h in next(reader)]
    missing = [c for c, k in zip(COLUMNS, KEYS) if k not in header]
    if missing:
        raise AnnotationFormatError(f"not an FHA-Kitchens per-frame CSV: missing column(s) {', '.join(missing)}")
    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue  # blank row
        rows.append(dict(zip(header, cells)))
    return rows


def load_frames(path: str | Path) -> list[Frame]:
    """Read a per-frame CSV (either header spelling, BOM or not) into :class:`Frame` records."""
    text = Path(path).read_text(encoding="utf-8-sig")
    return [frame_from_row(r) for r in read_rows(text)]


@dataclass(frozen=True)
class TripletCount:
    id: int
    raw: Triplet  # as written in the file
    triplet: Triplet  # normalised
    instances: int


def load_triplets(path: str | Path) -> list[TripletCount]:
    """``action_triplet.csv``: id, action_triplet (Python-list string), instances."""
    text = Path(path).read_text(encoding="utf-8-sig")
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        if not any((v or "").strip() for v in row.values()):
            continue
        raw = tuple(parse_list(row["action_triplet"]))
        out.append(TripletCount(int(row["id"]), raw, tuple(normalise_name(v) for v in raw), int(row["instances"])))
    return out


def resolve_files() -> dict[str, Path]:
    """The two released files, resolved (and checksummed) through :mod:`repro.data`. Raises
    :class:`repro.data.DataNotFoundError` with instructions when no source holds them."""
    from repro import data

    folder = data.resolve("fha_kitchens")
    return {"val": folder / "val_data.csv", "triplets": folder / "action_triplet.csv"}


# ------------------------------------------------------------------------------------------------ writing
def _box_cell(box: Box | None) -> str:
    if box is None:
        return "none"
    return repr({"x": box.x, "y": box.y, "width": box.w, "height": box.h})


def _list_cell(values) -> str:
    return "none" if values is None else repr(list(values))


def row_from_frame(frame: Frame) -> list[str]:
    """The inverse of :func:`frame_from_row`, in the column order of :data:`COLUMNS` (names already normalised)."""
    by_type = {b.type: b for b in frame.boxes}
    region_triplets = dict(frame.region_triplets)
    verbs = {r: (i, v) for r, i, v in frame.verbs}
    packed = {}
    for region in REGIONS:
        triplets = [t for r, t in frame.triplets if r == region]
        packed[PACKED_KEYS[region]] = ",".join(
            "(" + ",".join(p.replace("-", "_") if p.startswith("hand-") else p for p in t) + ")" for t in triplets
        ) or "none"
    cells = {"video_id": str(frame.video_id), "video_name": frame.video_name, "frame_name": frame.frame_name,
             "timestamp": repr(frame.timestamp), "action_triplet": json.dumps([packed], separators=(",", ":")),
             "clip_id": str(frame.clip_id), "clip_name": frame.clip_name,
             "action_verb_triplet": repr([v or "none" for v in frame.verb_triplet]),
             "action_verb_triplet_id": str(frame.verb_triplet_id)}
    for region in REGIONS:
        tri_col, vid_col, verb_col, region_box, active_box, active_cls, passive_box, passive_cls = (
            column_key(c) if c else None for c in REGION_COLUMNS[region])
        region_type, active_type, passive_type = REGION_TYPES[region]
        cells[tri_col] = _list_cell(region_triplets.get(region))
        cells[vid_col] = str(verbs[region][0]) if region in verbs else "none"
        cells[verb_col] = verbs[region][1] if region in verbs else "none"
        cells[region_box] = _box_cell(by_type.get(region_type))
        cells[active_box] = _box_cell(by_type.get(active_type))
        if active_cls:
            cells[active_cls] = (by_type[active_type].label or "none") if active_type in by_type else "none"
        cells[passive_box] = _box_cell(by_type.get(passive_type))
        cells[passive_cls] = (by_type[passive_type].label or "none") if passive_type in by_type else "none"
    return [cells[k] for k in KEYS]


def write_frames(frames: list[Frame], path: str | Path) -> None:
    """Write frames as a 31-column per-frame CSV with the validation file's header."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for frame in frames:
            writer.writerow(row_from_frame(frame))


# ------------------------------------------------------------------------------------------------ COCO
CATEGORIES = [{"id": i + 1, "name": t, "supercategory": SUPERCATEGORY[t]} for i, t in enumerate(BOX_TYPES)]
CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}


def to_coco(frames: list[Frame]) -> dict:
    """COCO-style detection JSON: one image per frame (the frame's metadata and triplets kept as extra keys), one
    annotation per box, the nine box types as categories. The files give no image size: width/height are None."""
    images, annotations = [], []
    for image_id, f in enumerate(frames, start=1):
        images.append({
            "id": image_id, "file_name": f"{f.video_name}/{f.frame_name}", "width": None, "height": None,
            "video_id": f.video_id, "video_name": f.video_name, "frame_name": f.frame_name,
            "timestamp": f.timestamp, "clip_id": f.clip_id, "clip_name": f.clip_name,
            "verb_triplet": list(f.verb_triplet), "verb_triplet_id": f.verb_triplet_id,
            "triplets": [[r, *t] for r, t in f.triplets], "region_triplets": [[r, *t] for r, t in f.region_triplets],
            "verbs": [list(v) for v in f.verbs],
        })
        for b in f.boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": CATEGORY_ID[b.type],
                                "bbox": [b.x, b.y, b.w, b.h], "area": b.area, "iscrowd": 0, "label": b.label})
    return {"info": {"description": "FHA-Kitchens annotations (repro export)"}, "images": images,
            "annotations": annotations, "categories": CATEGORIES}


def from_coco(coco: dict) -> list[Frame]:
    """The inverse of :func:`to_coco`."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    boxes: dict[int, list[Box]] = {}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        boxes.setdefault(a["image_id"], []).append(Box(names[a["category_id"]], a.get("label"), x, y, w, h))
    frames = []
    for im in coco["images"]:
        frames.append(Frame(
            video_id=im["video_id"], video_name=im["video_name"], frame_name=im["frame_name"],
            timestamp=im["timestamp"], clip_id=im["clip_id"], clip_name=im["clip_name"],
            verb_triplet=tuple(im["verb_triplet"]), verb_triplet_id=im["verb_triplet_id"],
            triplets=tuple((r, tuple(t)) for r, *t in im["triplets"]),
            region_triplets=tuple((r, tuple(t)) for r, *t in im["region_triplets"]),
            verbs=tuple((r, i, v) for r, i, v in im["verbs"]), boxes=tuple(boxes.get(im["id"], ()))))
    return frames
