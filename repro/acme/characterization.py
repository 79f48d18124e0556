"""Part 1 of the Acme chapter: the job-state mix and the telemetry CDFs, read from AcmeTrace's own files.

Every function here works on the real shipped data (``cluster_summary.csv`` and the telemetry CDFs, resolved
through ``repro.data``); nothing is synthetic. A CDF is a pair of arrays (x: metric value, y: cumulative percent,
0-100) of 1000 points, as the trace repository stores it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from repro import data

STATES = ("completed", "canceled", "failed")
_COLUMN_PREFIX = {"completed": "complete", "canceled": "cancel", "failed": "fail"}

# What each (x_i, y_i) pair of a telemetry file is, checked against the value ranges and the paper's Fig. 7-8.
CDF_PAIRS = {
    "util_gpu_seren": ("GPU utilisation (%)", "GPU memory used (%)"),
    "util_gpu_kalos": ("GPU utilisation (%)", "GPU memory used (%)"),
    "util_gpu_philly": ("GPU utilisation (%)",),
    "util_cpu_mem_seren": ("CPU utilisation (%)", "host memory used (%)"),
    "util_cpu_mem_kalos": ("CPU utilisation (%)", "host memory used (%)"),
    "ib_seren": ("InfiniBand send (MB/s)", "InfiniBand receive (MB/s)"),
    "gpu_power_seren": ("GPU power (W)",),
    "gpu_power_kalos": ("GPU power (W)",),
    "gpu_temp_seren": ("GPU temperature (C)", "GPU memory temperature (C)"),
    "gpu_temp_kalos": ("GPU temperature (C)", "GPU memory temperature (C)"),
}


@dataclass(frozen=True)
class CDF:
    """An empirical CDF: ``y[i]`` percent of the samples are <= ``x[i]``."""

    x: np.ndarray
    y: np.ndarray
    label: str = ""

    def share_at_most(self, value: float) -> float:
        """P(X <= value) in percent, read off the step function (0 below the first point)."""
        below = self.y[self.x <= value]
        return float(below.max()) if below.size else 0.0

    def share_above(self, value: float) -> float:
        return 100.0 - self.share_at_most(value)

    def quantile(self, percent: float) -> float:
        """The smallest x whose cumulative share reaches ``percent``."""
        index = int(np.searchsorted(self.y, percent, side="left"))
        return float(self.x[min(index, len(self.x) - 1)])

    @property
    def median(self) -> float:
        return self.quantile(50.0)


def cluster_summary() -> pd.DataFrame:
    """AcmeTrace's per-cluster statistics (Seren, Kalos, and Philly, Helios, PAI for comparison), indexed by name."""
    folder = data.resolve("acmetrace_summary")
    return pd.read_csv(folder / "cluster_summary.csv").set_index("id")


def job_state_mix(summary: pd.DataFrame, clusters=("Seren", "Kalos", "Philly", "Helios")) -> pd.DataFrame:
    """Share (%) of GPU jobs completed / canceled / failed, by job count and by GPU time, per cluster."""
    rows = []
    for cluster in clusters:
        row = summary.loc[cluster]
        for basis, suffix in (("jobs", "rate_gpu"), ("GPU time", "rate_gpu_time")):
            shares = [100 * row[f"{_COLUMN_PREFIX[state]}_{suffix}"] for state in STATES]
            rows.append({"cluster": cluster, "basis": basis, **dict(zip(STATES, shares))})
    return pd.DataFrame(rows).set_index(["cluster", "basis"])


def load_cdfs(name: str) -> list[CDF]:
    """The CDF pairs of one telemetry file (e.g. ``"util_gpu_seren"``), labelled when the pair is known."""
    folder = data.resolve("acmetrace_telemetry")
    frame = pd.read_csv(folder / f"{name}.csv")
    labels = CDF_PAIRS.get(name, ())
    out = []
    for i in range(len(frame.columns) // 2):
        x, y = frame[f"x{i}"].to_numpy(), frame[f"y{i}"].to_numpy()
        out.append(CDF(x, y, labels[i] if i < len(labels) else f"pair {i}"))
    return out


def headline_statistics() -> dict[str, float]:
    """The numbers of the paper's Sec. 3 that the shipped CDFs can check (percent or percent of samples)."""
    seren, kalos, philly = (load_cdfs(f"util_gpu_{c}")[0] for c in ("seren", "kalos", "philly"))
    ib_send = load_cdfs("ib_seren")[0]
    power_seren, power_kalos = load_cdfs("gpu_power_seren")[0], load_cdfs("gpu_power_kalos")[0]
    return {
        "median_gpu_util_seren": seren.median,
        "median_gpu_util_kalos": kalos.median,
        "median_gpu_util_philly": philly.median,
        "ib_send_idle_share": ib_send.share_at_most(0.0),
        "power_above_400w_kalos": power_kalos.share_above(400.0),
        "power_above_400w_seren": power_seren.share_above(400.0),
        "power_at_most_70w_kalos": power_kalos.share_at_most(70.0),
        "median_gpu_memory_kalos": load_cdfs("util_gpu_kalos")[1].median,
    }
