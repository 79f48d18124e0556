"""FHA-Kitchens: the loader on the real files, its quirks on a small k_86-style file, the statistics, the synthetic
generator through the same loader, the AP computation, and the data-error path."""
import csv
import json

import numpy as np
import pytest

from repro import data
from repro.fha_kitchens import annotations, bench, stats, synthetic


def _mirror_has_fha() -> bool:
    return any((m / "fha_kitchens" / "val_data.csv").exists() for m in data.mirrors())


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    if not _mirror_has_fha():
        pytest.skip("no FHA-Kitchens mirror on this machine")
    mp = pytest.MonkeyPatch()
    mp.setenv("REPRO_DATA", str(tmp_path_factory.mktemp("cache")))
    files = annotations.resolve_files()
    mp.undo()
    return files, annotations.load_frames(files["val"]), annotations.load_triplets(files["triplets"])


def test_real_file_counts_and_typos(real):
    files, frames, triplets = real
    assert len(frames) == 2948 and len({f.video_id for f in frames}) == 27
    assert len({f.clip_name for f in frames}) == 237 and sum(len(f.boxes) for f in frames) == 19742
    assert len(triplets) == 878 and sum(t.instances for t in triplets) == 67733
    names = {n for f in frames for _, t in f.triplets for n in t} | {n for t in triplets for n in t.triplet}
    assert not names & {"hanf-left", "hand-rigth", "utilityknife-body", "eggshell", "eggshell-edge"}
    assert "egg-shell-edge" in names and "hand-left" in names
    assert stats.raw_packing(files["val"]) == {"comma": 293, "no_comma": 3}
    assert stats.val_stats(frames)["multi_triplet_rows"] == 296


def test_real_file_round_trips_through_coco(real):
    _, frames, _ = real
    coco = json.loads(json.dumps(annotations.to_coco(frames)))
    assert len(coco["annotations"]) == 19742 and len(coco["categories"]) == 9
    assert annotations.from_coco(coco) == frames


def test_real_long_tail(real):
    tail = stats.long_tail(real[2])
    assert round(tail["gini"], 3) == 0.717 and (tail["cover50"], tail["cover80"]) == (51, 234)
    assert (tail["head"], tail["mid"], tail["tail"]) == (140, 502, 236)


K86_HEADER = [c.replace("L-O_action_verb class", "L-O_action_verb_class").replace("O-O_action_verb id",
              "O-O_action_verb_id").replace("O-O_action_verb class", "O-O_action_verb_class")
              for c in annotations.COLUMNS]

ROW = {
    "video_id": "86", "video_name": "k_86", "frame_name": "img_000012.jpg", "timestamp": "0.4",
    "action_triplet": json.dumps([{"L-O_triple1": "(hanf_left,hold-around,eggshell)", "O-O_triple3": "none",
                                   "R-O_triple2": "(hand_right,hold-in,utilityknife_handlee),"
                                                  "(hand_right,press-down,apple_head)"}]),
    "L-O_triplet": "['hanf-left', 'hold-around', 'eggshell']", "L-O_action_verb_id": "0",
    "L-O_action_verb_class": "hold-around", "L-O_action_bbox": "{'x': 1, 'y': 2, 'width': 30, 'height': 40}",
    "left_hand_bbox": "{'x': 1.5, 'y': 2, 'width': 10, 'height': 12}", "O1_class": "eggshell",
    "O1_bbox": "{'x': 5, 'y': 6, 'width': 7, 'height': 8}",
    "R-O_triplet": "['hand-rigth', 'hold-in', 'utility-knife-handlee']", "R-O_action_verb id": "5",
    "R-O_action_verb class": "hold-in", "R-O_action_bbox": "none", "right_hand_bbox": "",
    "O2_class": "utility-knife-handlee", "O2_bbox": "{'x': 9, 'y': 9, 'width': 9, 'height': 9}",
    "O-O_triplet": "none", "O-O_action_verb_id": "none", "O-O_action_verb_class": "none", "O-O_action_bbox": "none",
    "subject_class": "none", "subject_bbox": "none", "object_class": "none", "object_bbox": "none",
    "clip_id": "1", "clip_name": "k_86_1", "action_verb triplet": "['hold-around', 'hold-in', 'none']",
    "action_verb triplet_id": "7",
}


def test_k86_header_bom_blank_rows_packed_triplets_and_aliases(tmp_path):
    path = tmp_path / "k_86_annotation.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as f:  # BOM
        w = csv.writer(f)
        w.writerow(K86_HEADER)
        w.writerow([ROW[annotations.column_key(c)] if annotations.column_key(c) in ROW else ROW[c]
                    for c in K86_HEADER])
        w.writerow([""] * len(K86_HEADER))  # the blank trailing row
    (frame,) = annotations.load_frames(path)
    assert dict(frame.region_triplets) == {"L-O": ("hand-left", "hold-around", "egg-shell-all"),
                                           "R-O": ("hand-right", "hold-in", "utility-knife-handle")}
    assert [t for r, t in frame.triplets if r == "R-O"] == [("hand-right", "hold-in", "utility-knife-handle"),
                                                            ("hand-right", "press-down", "apple-head")]
    by_type = {b.type: b for b in frame.boxes}
    assert set(by_type) == {"L-O", "left_hand", "O1", "O2"}  # 'none' and empty cells are no box
    assert (by_type["left_hand"].x, by_type["O1"].label, by_type["O2"].label) == (1.5, "egg-shell-all",
                                                                                  "utility-knife-handle")
    assert frame.verb_triplet == ("hold-around", "hold-in", None) and frame.verb_triplet_id == 7
    # written back with the validation header, it reads the same
    annotations.write_frames([frame], tmp_path / "out.csv")
    assert annotations.load_frames(tmp_path / "out.csv") == [frame]


def test_missing_column_is_reported(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("video_id,video_name\n1,a\n")
    with pytest.raises(annotations.AnnotationFormatError, match="missing column"):
        annotations.load_frames(path)


def test_python_literal_boxes_and_lists():
    assert annotations.parse_box("{'x': 0, 'y': 1.5e2, 'width': 3.25, 'height': 4}") == (0.0, 150.0, 3.25, 4.0)
    assert annotations.parse_box("{'height': 4, 'width': 3, 'x': 1, 'y': 2}") == (1.0, 2.0, 3.0, 4.0)  # fallback
    assert annotations.parse_box("none") is None and annotations.parse_box("") is None
    assert annotations.parse_list("['a-b', 'c']") == ["a-b", "c"]


def test_gini_against_hand_computed_examples():
    assert stats.gini([1, 1, 1, 1]) == 0
    assert stats.gini([0, 0, 0, 1]) == pytest.approx(0.75)
    # sorted 1,2,3,4: ((-3)*1 + (-1)*2 + 1*3 + 3*4) / (4 * 10) = 10 / 40
    assert stats.gini([4, 1, 3, 2]) == pytest.approx(0.25)
    assert stats.cover([5, 3, 1, 1], 0.5) == 1 and stats.cover([5, 3, 1, 1], 0.8) == 2


def _triplets():
    names = [("hand-right", "hold-in", "knife-handle"), ("hand-left", "fix-on", "melon-all"),
             ("knife-body", "slice-along", "melon-all"), ("hand-right", "hold-around", "cup-body"),
             ("hand-left", "press-on", "bread-all"), ("hand-right", "cut-slice", "apple-all")]
    return [annotations.TripletCount(i, t, t, n) for i, (t, n) in enumerate(zip(names, (500, 200, 90, 40, 10, 3)))]


def test_synthetic_files_read_back_through_the_loader(tmp_path):
    cfg = synthetic.SynthConfig(videos=2, clips_per_video=3, classes=6, dish=4)
    d = synthetic.generate(_triplets(), cfg, seed=3)
    assert len(d.clips) == 6 and all(3 <= len(c.frames) <= 8 for c in d.clips)
    annotations.write_frames(d.frames(), tmp_path / "syn.csv")
    with open(tmp_path / "syn.csv", encoding="utf-8") as f:
        assert next(csv.reader(f)) == list(annotations.COLUMNS)  # the identical 31 columns
    assert annotations.load_frames(tmp_path / "syn.csv") == d.frames()
    again = synthetic.generate(_triplets(), cfg, seed=3)
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(d.clips, again.clips))  # same seed, same data


def test_splits_video_disjoint_and_clip_random():
    d = synthetic.generate(_triplets(), synthetic.SynthConfig(videos=4, clips_per_video=3, classes=6, dish=3), 0)
    train, test = bench.split_clips(d, "video", 0)
    assert not {d.clips[i].video for i in train} & {d.clips[i].video for i in test}
    train, test = bench.split_clips(d, "clip", 0)
    assert sorted(train + test) == list(range(len(d.clips)))
    held = bench.holdouts(d)
    assert held["intra"] and held["inter"] and not held["intra"] & held["inter"]


def test_average_precision_tiny_known_cases():
    gt = {0: np.array([[0, 0, 10, 10]], float)}
    hit, miss = np.array([0, 0, 10, 10], float), np.array([20, 20, 30, 30], float)
    assert bench.average_precision([(0, 0.9, hit)], gt, 0.5) == 1.0
    assert bench.average_precision([(0, 0.9, miss)], gt, 0.5) == 0.0
    # a false positive ranked first: precision 1/2 at recall 1 on every recall point
    assert bench.average_precision([(0, 0.9, miss), (0, 0.8, hit)], gt, 0.5) == pytest.approx(0.5)
    # IoU of a half-overlapping box is 1/3: a hit at 0.3, a miss at 0.5
    half = np.array([5, 0, 15, 10], float)
    assert bench.iou_matrix(half[None], gt[0])[0, 0] == pytest.approx(1 / 3)
    aps = bench.average_precisions([(0, 0.9, half)], gt, (0.3, 0.5))
    assert aps == [1.0, 0.0]
    assert np.isnan(bench.average_precision([(0, 0.9, hit)], {}, 0.5))


def test_missing_files_raise_a_data_error_that_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("REPRO_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("REPRO_OFFLINE", "1")
    monkeypatch.setattr(data, "mirrors", lambda: [])
    with pytest.raises(data.DataNotFoundError) as err:
        annotations.resolve_files()
    message = str(err.value)
    assert "fha_kitchens" in message and "val_data.csv" in message and "action_triplet.csv" in message
    assert "REPRO_DATA" in message
