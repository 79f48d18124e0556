"""A synthetic job trace calibrated to AcmeTrace's published marginals, for when the real traces are not cached.

Calibrated from ``cluster_summary.csv`` (real, shipped): the GPU-job completed/canceled/failed rates, the medians
and means of GPU-job run time and queueing delay (log-normal fits: median = e^mu, mean = e^(mu + sigma^2/2)), and
the mean GPU count. Job-type shares follow the paper's Fig. 4 as quoted by a secondary source (pretraining 0.9 %
of Seren's GPU jobs, 3.2 % of Kalos's; evaluation the majority); they are not checked against the PDF here. Every
figure built on this trace is labelled synthetic.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from repro.acme.trace import COMMON_COLUMNS

TYPE_SHARE = {  # share of GPU jobs by count [secondary: paper Fig. 4 via review notes]
    "Seren": {"Pretrain": 0.009, "Eval": 0.60, "SFT": 0.06, "MLLM": 0.03, "Debug": 0.20, "Other": 0.101},
    "Kalos": {"Pretrain": 0.032, "Eval": 0.80, "Debug": 0.10, "Other": 0.068},
}
PRETRAIN_GPUS = {"Seren": (64, 1024), "Kalos": (256, 1024)}  # large-scale jobs: the paper's ">= 256 GPUs on Kalos"


def lognormal_from(median: float, mean: float) -> tuple[float, float]:
    """(mu, sigma) of the log-normal with this median and mean."""
    mu = np.log(max(median, 1e-9))
    sigma = np.sqrt(max(2 * (np.log(mean) - mu), 1e-6))
    return mu, sigma


def generate(summary: pd.DataFrame, cluster: str, jobs: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """GPU jobs of ``cluster`` in AcmeTrace's schema (common columns), calibrated to ``summary``'s row."""
    row = summary.loc[cluster]
    rng = np.random.default_rng(seed)
    types = rng.choice(list(TYPE_SHARE[cluster]), size=jobs, p=np.array(list(TYPE_SHARE[cluster].values())))
    pretrain = types == "Pretrain"
    # GPU counts: mostly 1-8, pretraining 64-1024 in powers of two; scale the small jobs so the mean matches
    lo, hi = PRETRAIN_GPUS[cluster]
    gpus = np.where(pretrain, 2 ** rng.integers(int(np.log2(lo)), int(np.log2(hi)) + 1, jobs),
                    rng.choice([1, 1, 1, 1, 2, 4, 8, 8], jobs))
    # run time: a log-normal fit to the GPU-job median and mean; pretraining runs long (the top of the distribution)
    mu, sigma = lognormal_from(row["med_run_time_gpu"], row["avg_run_time_gpu"])
    duration = np.exp(rng.normal(mu, sigma, jobs))
    duration[pretrain] = np.sort(duration)[-pretrain.sum():] if pretrain.any() else duration[pretrain]
    duration = np.clip(np.round(duration), 1, row["max_run_time_gpu"])
    qmu, qsigma = lognormal_from(max(row["med_que_time_gpu"], 1.0), row["avg_que_time_gpu"])
    queue = np.round(np.exp(rng.normal(qmu, qsigma, jobs)))
    rates = np.array([row["complete_rate_gpu"], row["cancel_rate_gpu"], row["fail_rate_gpu"]])
    state = rng.choice(["COMPLETED", "CANCELLED", "FAILED"], size=jobs, p=rates / rates.sum())
    submit = pd.Timestamp("2023-06-01") + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 86400, jobs)), unit="s")
    start = submit + pd.to_timedelta(queue, unit="s")
    end = start + pd.to_timedelta(duration, unit="s")
    frame = pd.DataFrame({
        "job_id": [f"syn{i:07d}" for i in range(jobs)], "user": rng.integers(0, 300, jobs).astype(str),
        "node_num": np.ceil(gpus / 8).astype(int), "gpu_num": gpus, "cpu_num": gpus * 16, "type": types,
        "state": state, "submit_time": submit, "start_time": start, "end_time": end, "duration": duration,
        "queue": queue, "gpu_time": duration * gpus,
    })
    return frame[list(COMMON_COLUMNS)]


def marginals(frame: pd.DataFrame) -> dict[str, float]:
    """The statistics of ``cluster_summary.csv`` recomputed from a trace, for comparison with the real row."""
    gpu = frame[frame["gpu_num"] > 0]
    return {"med_run_time_gpu": float(gpu["duration"].median()), "avg_run_time_gpu": float(gpu["duration"].mean()),
            "med_que_time_gpu": float(gpu["queue"].median()), "avg_que_time_gpu": float(gpu["queue"].mean()),
            "avg_gpu_num": float(gpu["gpu_num"].mean()),
            "complete_rate_gpu": float((gpu["state"] == "COMPLETED").mean()),
            "fail_rate_gpu": float((gpu["state"] == "FAILED").mean())}
