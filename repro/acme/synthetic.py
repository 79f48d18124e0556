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
    """``jobs`` jobs of ``cluster`` in AcmeTrace's schema (common columns), calibrated to ``summary``'s row: the
    CPU/GPU job mix, then each kind's run time, queueing delay and final states. CPU jobs get type "Other" (the
    summary does not break them down by type)."""
    row = summary.loc[cluster]
    rng = np.random.default_rng(seed)
    cpu_jobs = int(round(jobs * row["cpu_job_num"] / row["job_num"]))
    gpu = _gpu_jobs(row, cluster, jobs - cpu_jobs, rng)
    cpu = _cpu_jobs(row, cpu_jobs, rng)
    frame = pd.concat([gpu, cpu]).sort_values("submit_time", kind="stable").reset_index(drop=True)
    frame["job_id"] = [f"syn{i:07d}" for i in range(len(frame))]
    return frame[list(COMMON_COLUMNS)]


def _timing(rng, jobs: int, run: tuple[float, float], queue: tuple[float, float], max_run: float):
    mu, sigma = lognormal_from(*run)
    duration = np.clip(np.round(np.exp(rng.normal(mu, sigma, jobs))), 1, max_run)
    qmu, qsigma = lognormal_from(max(queue[0], 1.0), max(queue[1], 1.0))
    return duration, np.round(np.exp(rng.normal(qmu, qsigma, jobs)))


def _frame(rng, types, gpus, duration, queue, state) -> pd.DataFrame:
    jobs = len(types)
    submit = pd.Timestamp("2023-06-01") + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 86400, jobs)), unit="s")
    start = submit + pd.to_timedelta(queue, unit="s")
    return pd.DataFrame({
        "job_id": "", "user": rng.integers(0, 300, jobs).astype(str), "node_num": np.ceil(gpus / 8).astype(int),
        "gpu_num": gpus, "cpu_num": np.maximum(gpus * 16, 4), "type": types, "state": state, "submit_time": submit,
        "start_time": start, "end_time": start + pd.to_timedelta(duration, unit="s"), "duration": duration,
        "queue": queue, "gpu_time": duration * gpus})


def _cpu_jobs(row: pd.Series, jobs: int, rng) -> pd.DataFrame:
    if jobs == 0 or pd.isna(row["med_run_time_cpu"]):
        return pd.DataFrame(columns=list(COMMON_COLUMNS))
    duration, queue = _timing(rng, jobs, (row["med_run_time_cpu"], row["avg_run_time_cpu"]),
                              (row["med_que_time_cpu"], row["avg_que_time_cpu"]), row["max_run_time_gpu"])
    rates = np.array([row["complete_rate_cpu"], row["cancel_rate_cpu"], row["fail_rate_cpu"]])
    state = rng.choice(["COMPLETED", "CANCELLED", "FAILED"], size=jobs, p=rates / rates.sum())
    return _frame(rng, np.full(jobs, "Other"), np.zeros(jobs, dtype=int), duration, queue, state)


def _gpu_jobs(row: pd.Series, cluster: str, jobs: int, rng) -> pd.DataFrame:
    types = rng.choice(list(TYPE_SHARE[cluster]), size=jobs, p=np.array(list(TYPE_SHARE[cluster].values())))
    pretrain = types == "Pretrain"
    # GPU counts: mostly 1-8, pretraining 64-1024 in powers of two
    lo, hi = PRETRAIN_GPUS[cluster]
    gpus = np.where(pretrain, 2 ** rng.integers(int(np.log2(lo)), int(np.log2(hi)) + 1, jobs),
                    rng.choice([1, 1, 1, 1, 2, 4, 8, 8], jobs))
    duration, queue = _timing(rng, jobs, (row["med_run_time_gpu"], row["avg_run_time_gpu"]),
                              (row["med_que_time_gpu"], row["avg_que_time_gpu"]), row["max_run_time_gpu"])
    if pretrain.any():  # pretraining runs long: give it the top of the run-time distribution
        duration[pretrain] = np.sort(duration)[-int(pretrain.sum()):]
    rates = np.array([row["complete_rate_gpu"], row["cancel_rate_gpu"], row["fail_rate_gpu"]])
    state = rng.choice(["COMPLETED", "CANCELLED", "FAILED"], size=jobs, p=rates / rates.sum())
    return _frame(rng, types, gpus, duration, queue, state)


def marginals(frame: pd.DataFrame) -> dict[str, float]:
    """The statistics of ``cluster_summary.csv`` recomputed from a trace, for comparison with the real row."""
    gpu = frame[frame["gpu_num"] > 0]
    return {"med_run_time_gpu": float(gpu["duration"].median()), "avg_run_time_gpu": float(gpu["duration"].mean()),
            "med_que_time_gpu": float(gpu["queue"].median()), "avg_que_time_gpu": float(gpu["queue"].mean()),
            "avg_gpu_num": float(gpu["gpu_num"].mean()),
            "complete_rate_gpu": float((gpu["state"] == "COMPLETED").mean()),
            "fail_rate_gpu": float((gpu["state"] == "FAILED").mean())}
