"""What each scale runs: the base x coordination grid in both regimes, the memory sweep and the lambda sweep.

Runs are independent, so they go to a pool of single-threaded worker processes; each run seeds itself, and one
thread per run keeps the numbers identical whatever the pool size.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from repro.jioc import data, learners
from repro.jioc.learners import BASES, COORDINATIONS, Config
from repro.utils import pool_map

REGIMES = ("balanced", "longtail")
DEFAULT = Config()
LAMBDAS = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Plan:
    seeds: int
    epochs: int
    memory: int  # the main grid's memory
    extra_memories: tuple[int, ...]  # base vs +JIOC only
    lambda_sweep: bool  # choose lambda on a validation split (else lambda = 1)
    variants: bool  # run the named alternatives of the unverified formulas side by side
    bases: tuple[str, ...] = ("finetune", "er", "icarl", "der")
    backbone: str = "mlp"
    augment: bool = False


PLANS = {
    "smoke": Plan(seeds=2, epochs=4, memory=20, extra_memories=(), lambda_sweep=False, variants=False),
    # 96 grid runs + 48 memory runs + 24 validation runs, about 1 s each on one core
    "default": Plan(seeds=3, epochs=15, memory=20, extra_memories=(50,), lambda_sweep=True,
                    variants=True),
    # one GPU or a long CPU run: FOSTER joins, a convolutional backbone on upsampled, shifted digits
    "full": Plan(seeds=10, epochs=30, memory=20, extra_memories=(50, 100), lambda_sweep=True,
                 variants=True, bases=BASES, backbone="conv", augment=True),
}


@dataclass(frozen=True)
class Job:
    config: Config
    seed: int
    regime: str
    validation: bool = False


def run_job(job: Job) -> dict:
    """One run; returns a flat record for the results table."""
    stream = data.make_stream(job.seed, job.regime, validation=job.validation)
    result = learners.run(stream, job.config, job.seed)
    c = job.config
    return {"base": c.base, "coordination": c.coordination, "regime": job.regime, "memory": c.memory,
            "variant": variant_name(c), "lambda": c.lambda_, "seed": job.seed, "validation": job.validation,
            "average_accuracy": result.average_accuracy, "last_accuracy": result.accuracy[-1],
            "average_accuracy_linear": float(np.mean(result.accuracy_linear)),
            "old_to_new": float(np.mean(result.old_to_new)), "tail_recall": result.tail_recall,
            "head_recall": result.head_recall, "norm_ratio": result.norm_ratio,
            "accuracy_per_task": result.accuracy}


def run_jobs(jobs: list[Job], workers: int | None = None, progress: bool = True, desc: str = "runs") -> pd.DataFrame:
    """Run ``jobs`` on single-threaded worker processes (``repro.utils.pool_map``)."""
    return pd.DataFrame(pool_map(run_job, jobs, workers, progress, desc))


def grid_jobs(plan: Plan, seed: int, lambda_: float, template: Config = DEFAULT) -> list[Job]:
    jobs = []
    for regime in REGIMES:
        for s in range(seed, seed + plan.seeds):
            for base in plan.bases:
                for coord in COORDINATIONS:
                    cfg = replace(template, base=base, coordination=coord, memory=plan.memory, epochs=plan.epochs,
                                  lambda_=lambda_, backbone=plan.backbone, augment=plan.augment)
                    jobs.append(Job(cfg, s, regime))
            for memory in plan.extra_memories:
                for base in plan.bases[1:]:  # Finetune keeps no memory
                    for coord in ("none", "jioc"):
                        cfg = replace(template, base=base, coordination=coord, memory=memory, epochs=plan.epochs,
                                      lambda_=lambda_, backbone=plan.backbone, augment=plan.augment)
                        jobs.append(Job(cfg, s, regime))
    return jobs


def lambda_jobs(plan: Plan, seed: int, template: Config = DEFAULT) -> list[Job]:
    """+JIOC for every base at each lambda, on the validation split of one seed, in both regimes."""
    return [Job(replace(template, base=b, coordination="jioc", memory=plan.memory, epochs=plan.epochs, lambda_=lam,
                        backbone=plan.backbone, augment=plan.augment), seed, regime, validation=True)
            for regime in REGIMES for lam in LAMBDAS for b in plan.bases]


VARIANT_OPTIONS = {"ic_variant": "sample", "suppression_variant": "separated", "kd_data": "new"}


def variant_name(config: Config) -> str:
    """"default", or the named options where ``config`` departs from the defaults, e.g. "ic_variant=sample"."""
    changed = [f"{k}={getattr(config, k)}" for k in VARIANT_OPTIONS if getattr(config, k) != getattr(DEFAULT, k)]
    return ", ".join(changed) or "default"


def variant_jobs(plan: Plan, seed: int, lambda_: float, template: Config = DEFAULT,
                 bases: tuple[str, ...] = ("er", "icarl")) -> list[Job]:
    """+JIOC with each alternative formula swapped in (one at a time), against the chapter's choice ``template``."""
    jobs = []
    for name, alternative in VARIANT_OPTIONS.items():
        if getattr(template, name) == alternative:  # the chapter already runs this one; compare with the default
            alternative = getattr(DEFAULT, name)
        for regime in REGIMES:
            for s in range(seed, seed + plan.seeds):
                for base in bases:
                    cfg = replace(template, base=base, coordination="jioc", memory=plan.memory, epochs=plan.epochs,
                                  lambda_=lambda_, backbone=plan.backbone, augment=plan.augment,
                                  **{name: alternative})
                    jobs.append(Job(cfg, s, regime))
    return jobs


def choose_lambda(sweep: pd.DataFrame) -> float:
    """The lambda with the best validation average accuracy, averaged over bases and regimes."""
    return float(sweep.groupby("lambda")["average_accuracy"].mean().idxmax())


def summary(results: pd.DataFrame, metric: str = "average_accuracy", memory: int | None = None) -> pd.DataFrame:
    """base x coordination table of "mean ± std" over seeds, one block of columns per regime."""
    df = results if memory is None else results[results.memory == memory]
    g = df.groupby(["regime", "base", "coordination"])[metric].agg(["mean", "std"])
    text = g.apply(lambda r: f"{r['mean']:.1f} ± {r['std']:.1f}", axis=1).unstack("coordination")
    return text.reindex(columns=[c for c in COORDINATIONS if c in text.columns])


def paired(results: pd.DataFrame, metric: str, a: str, b: str, regime: str, memory: int,
           bases=BASES) -> pd.DataFrame:
    """Per seed and base: metric(coordination a) - metric(coordination b), same seed, regime and memory."""
    df = results[(results.regime == regime) & (results.memory == memory) & results.base.isin(bases)]
    wide = df.pivot_table(index=["base", "seed"], columns="coordination", values=metric)
    return (wide[a] - wide[b]).rename(f"{metric}: {a} - {b}").reset_index()
