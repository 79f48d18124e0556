"""AcmeTrace job traces: the exact upstream schema, and a loader that checks it.

The full traces (``data/job_trace/trace_seren.csv``, about 99 MB, and ``trace_kalos.csv``, about 9 MB, in
github.com/InternLM/AcmeTrace) are too large to carry here. They are read from the data cache when present:
``$REPRO_DATA/acmetrace/job_trace/trace_{seren,kalos}.csv``. Their checksums could not be pinned without the files,
so instead of a checksum the loader validates the schema and the derived columns, and it never downloads them.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from repro import data
from repro.data import DataNotFoundError

COMMON_COLUMNS = ("job_id", "user", "node_num", "gpu_num", "cpu_num", "type", "state", "submit_time", "start_time",
                  "end_time", "duration", "queue", "gpu_time")
EXTRA_COLUMNS = {"seren": (), "kalos": ("mem_per_pod_GB", "shared_mem_per_pod", "fail_time", "stop_time")}
JOB_TYPES = {"seren": {"Eval", "Pretrain", "SFT", "MLLM", "Debug", "Other"},
             "kalos": {"Eval", "Pretrain", "Debug", "Other"}}
STATES = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL"}
FAILED_STATES = {"FAILED", "TIMEOUT", "NODE_FAIL"}  # the paper counts these as failed
TIMEZONES = {"seren": "Asia/Shanghai", "kalos": "UTC"}  # Seren stamps are +08:00, Kalos UTC


class TraceSchemaError(ValueError):
    """A trace file does not have AcmeTrace's columns or values."""


def trace_path(cluster: str) -> Path:
    """The trace of ``cluster`` from the cache (copied there from a mirror if one holds it); stops with a message
    naming the file and where to put it if neither has it."""
    if cluster not in EXTRA_COLUMNS:
        raise ValueError(f"cluster must be one of {sorted(EXTRA_COLUMNS)}, got {cluster!r}")
    try:
        return data.resolve(f"acmetrace_trace_{cluster}") / f"trace_{cluster}.csv"
    except DataNotFoundError as exc:
        raise DataNotFoundError(f"{exc}\nWithout it the chapter uses the synthetic trace calibrated to "
                                "cluster_summary.csv.") from None


def load_trace(path: Path | str, cluster: str) -> pd.DataFrame:
    """Read one trace in the upstream format and check its schema. Times become timezone-aware timestamps;
    ``failed`` marks the states the paper counts as failures."""
    frame = pd.read_csv(path)
    expected = COMMON_COLUMNS + EXTRA_COLUMNS[cluster]
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise TraceSchemaError(f"{path}: missing columns {missing}; expected AcmeTrace's {list(expected)}")
    unknown_types = set(frame["type"].dropna()) - JOB_TYPES[cluster]
    unknown_states = set(frame["state"].dropna()) - STATES
    if unknown_types or unknown_states:
        raise TraceSchemaError(f"{path}: unknown job types {sorted(unknown_types)} or states {sorted(unknown_states)}")
    for column in ("submit_time", "start_time", "end_time"):
        stamps = pd.to_datetime(frame[column])
        frame[column] = stamps.dt.tz_localize(TIMEZONES[cluster]) if stamps.dt.tz is None else stamps
    duration = (frame["end_time"] - frame["start_time"]).dt.total_seconds()
    queue = (frame["start_time"] - frame["submit_time"]).dt.total_seconds()
    if not (duration.sub(frame["duration"]).abs() <= 1).all() or not (queue.sub(frame["queue"]).abs() <= 1).all():
        raise TraceSchemaError(f"{path}: duration or queue disagrees with the timestamps")
    if not (frame["gpu_time"].sub(frame["duration"] * frame["gpu_num"]).abs() <= 1).all():
        raise TraceSchemaError(f"{path}: gpu_time is not duration x gpu_num")
    frame["failed"] = frame["state"].isin(FAILED_STATES)
    return frame


def share_by_type(frame: pd.DataFrame) -> pd.DataFrame:
    """Share (%) of GPU jobs and of GPU time per job type: the paper's Fig. 4 view."""
    gpu = frame[frame["gpu_num"] > 0]
    out = pd.DataFrame({"jobs (%)": gpu.groupby("type").size() / len(gpu) * 100,
                        "GPU time (%)": gpu.groupby("type")["gpu_time"].sum() / gpu["gpu_time"].sum() * 100})
    return out.sort_values("GPU time (%)", ascending=False)


def job_trace(cluster: str, choice: str, summary: pd.DataFrame, synthetic_jobs: int, seed: int
              ) -> tuple[pd.DataFrame, str]:
    """The job trace of ``cluster`` ("Seren" or "Kalos") and whether it is "real" or "synthetic".

    ``choice``: "real" (the cached CSV, or stop with a message), "synthetic" (calibrated to ``summary``), or "auto"
    (real when cached, else synthetic)."""
    from repro.acme import synthetic

    if choice != "synthetic":
        try:
            return load_trace(trace_path(cluster.lower()), cluster.lower()), "real"
        except DataNotFoundError:
            if choice == "real":
                raise
    return synthetic.generate(summary, cluster, synthetic_jobs, seed), "synthetic"
