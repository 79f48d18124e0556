"""What each scale runs: the environment (pretrained base, fitted rewards), every method on every seed under one
sample budget, and the matched-proxy analysis.

Runs are independent, so they go to single-threaded worker processes (``repro.utils.pool_map``); each run seeds
itself, so the numbers do not depend on the pool size.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch

from repro.tdpor import critic as critic_mod
from repro.tdpor import env, train
from repro.tdpor.diffusion import Schedule
from repro.utils import pool_map


@dataclass(frozen=True)
class Plan:
    seeds: int
    epochs: int
    batch: int
    minibatch: int
    pretrain_steps: int
    reward_steps: int
    reset_period: int
    sweeps: bool = False  # tau and reset-period sweeps of TDPO-R


PLANS = {
    "smoke": Plan(seeds=2, epochs=4, batch=32, minibatch=32, pretrain_steps=300, reward_steps=200, reset_period=2),
    # 3 seeds x 7 methods; the paper's 100 epochs / reset every 10 scaled to 25 / every 5
    "default": Plan(seeds=3, epochs=25, batch=128, minibatch=64, pretrain_steps=1200, reward_steps=800,
                    reset_period=5),
    # one GPU or a long CPU run: the paper's 100 epochs and reset period, 10 seeds, the tau / period sweeps
    "full": Plan(seeds=10, epochs=100, batch=256, minibatch=64, pretrain_steps=5000, reward_steps=2000,
                 reset_period=10, sweeps=True),
}

# display name -> Config changes; the first three are the baselines, the rest TDPO and its reset strategies
VARIANTS = {
    "DDPO": dict(method="ddpo"),
    "DPOK (KL)": dict(method="dpok"),
    "AlignProp": dict(method="alignprop"),
    "TDPO": dict(method="tdpo", reset="none"),
    "TDPO-R": dict(method="tdpo", reset="active"),
    "TDPO + ReDo": dict(method="tdpo", reset="dormant"),
    "TDPO + full reset": dict(method="tdpo", reset="all"),
}
CRITIC_VARIANTS = ("TDPO", "TDPO-R", "TDPO + ReDo", "TDPO + full reset")


def sweep_variants(period: int) -> dict[str, dict]:
    out = {f"TDPO-R tau={tau:g}": dict(method="tdpo", reset="active", tau=tau) for tau in (0.025, 0.1)}
    for p in (period // 2, period * 2):
        out[f"TDPO-R every {p}"] = dict(method="tdpo", reset="active", reset_period=p)
    return out


@dataclass
class Environment:
    schedule: Schedule
    base: torch.nn.Module
    rewards: env.Rewards
    features: env.FourierFeatures


def _build(args) -> Environment:
    seed, pretrain_steps, reward_steps = args
    schedule = Schedule()
    base = env.pretrain(schedule, pretrain_steps, seed)
    rewards = env.fit_rewards(base, schedule, seed, steps=reward_steps)
    return Environment(schedule, base, rewards, env.FourierFeatures(seed=seed))


def build_environment(plan: Plan, seed: int) -> Environment:
    """Pretrain the base and fit the rewards in one single-threaded worker, so the environment is the same bit for
    bit whatever the machine's core count."""
    return pool_map(_build, [(seed, plan.pretrain_steps, plan.reward_steps)], workers=1, progress=False)[0]


@dataclass(frozen=True)
class Job:
    name: str
    config: train.Config
    seed: int
    environment: Environment


def run_job(job: Job) -> dict:
    e = job.environment
    out = train.run(job.config, e.base, e.rewards, e.schedule, job.seed, e.features)
    out["variant"] = job.name
    return out


def configs(plan: Plan, kl_coef: float = 0.1, tau: float = 0.0, reset_period: int | None = None
            ) -> dict[str, train.Config]:
    template = train.Config(epochs=plan.epochs, batch=plan.batch, minibatch=plan.minibatch,
                            reset_period=reset_period or plan.reset_period, tau=tau, kl_coef=kl_coef)
    variants = dict(VARIANTS)
    if plan.sweeps:
        variants.update(sweep_variants(template.reset_period))
    return {name: replace(template, label=name, **changes) for name, changes in variants.items()}


def jobs(plan: Plan, seed: int, environment: Environment, **knobs) -> list[Job]:
    return [Job(name, cfg, s, environment) for s in range(seed, seed + plan.seeds)
            for name, cfg in configs(plan, **knobs).items()]


def run_jobs(job_list: list[Job], workers: int | None = None, progress: bool = True) -> list[dict]:
    return pool_map(run_job, job_list, workers, progress, desc="fine-tuning runs")


# ---- analysis ------------------------------------------------------------------------------------------------

def smooth(curve: np.ndarray, width: int = 3) -> np.ndarray:
    """Centred moving average (shorter at the ends), applied to every curve before interpolation."""
    return pd.Series(curve).rolling(width, center=True, min_periods=1).mean().to_numpy()


def first_crossing(x: np.ndarray, level: float) -> float:
    """The (fractional) index at which ``x`` first reaches ``level``, linearly interpolated; nan if never."""
    above = np.nonzero(x >= level)[0]
    if len(above) == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return 0.0
    return i - 1 + (level - x[i - 1]) / (x[i] - x[i - 1])


def at_index(y: np.ndarray, pos: float) -> float:
    if np.isnan(pos):
        return float("nan")
    return float(np.interp(pos, np.arange(len(y)), y))


def matched_levels(runs: list[dict], n: int = 8) -> np.ndarray:
    """The proxy levels at which one seed's runs are compared: from the base proxy (epoch 1) up to the lower of 1.0
    (the gold ceiling: what an honest reward could give) and the lowest peak any compared run reached; n levels above
    the base."""
    base = float(np.mean([r["curves"]["proxy"][0] for r in runs]))
    top = min(1.0, min(float(smooth(r["curves"]["proxy"]).max()) for r in runs))
    return np.linspace(base, top, n + 1)[1:]


def at_matched_proxy(run: dict, levels: np.ndarray, metric: str) -> float:
    """Mean of ``metric`` (smoothed) at the first crossing of each matched proxy level: the average height of the
    run's proxy-vs-metric frontier over those levels."""
    proxy = smooth(run["curves"]["proxy"])
    y = smooth(run["curves"][metric])
    return float(np.nanmean([at_index(y, first_crossing(proxy, q)) for q in levels]))


def queries_to_reach(run: dict, level: float) -> float:
    pos = first_crossing(smooth(run["curves"]["proxy"]), level)
    return float("nan") if np.isnan(pos) else float(np.interp(pos, np.arange(len(run["curves"]["queries"])),
                                                              run["curves"]["queries"]))


def by_seed(results: list[dict]) -> dict[int, dict[str, dict]]:
    out: dict[int, dict[str, dict]] = {}
    for r in results:
        out.setdefault(r["seed"], {})[r["variant"]] = r
    return dict(sorted(out.items()))


def matched_table(results: list[dict], compared=tuple(VARIANTS)) -> pd.DataFrame:
    """Per seed and variant: gold and mean OOD reward at matched proxy, final values, peak and final gold, final
    dormant share."""
    rows = []
    for seed, runs in by_seed(results).items():
        present = [runs[v] for v in compared if v in runs]
        levels = matched_levels(present)
        for name, r in runs.items():
            c = r["curves"]
            tail = slice(-3, None)
            rows.append({
                "seed": seed, "variant": name,
                "gold_at_proxy": at_matched_proxy(r, levels, "gold"),
                "ood_at_proxy": at_matched_proxy(r, levels, "ood"),
                "proxy_final": float(c["proxy"][tail].mean()), "gold_final": float(c["gold"][tail].mean()),
                "ood_final": float(c["ood"][tail].mean()),
                "gold_peak": float(smooth(c["gold"]).max()),
                "gap_final": float(c["proxy"][tail].mean() - c["gold"][tail].mean()),
                "dormant_final": float(c["dormant"][tail].mean()) if "dormant" in c else float("nan"),
                "matched_top": float(levels[-1]), "steps_per_epoch": r["steps_per_epoch"],
            })
    return pd.DataFrame(rows)


def efficiency(results: list[dict], a: str = "TDPO", b: str = "DDPO") -> pd.DataFrame:
    """Per seed: reward queries for ``a`` and ``b`` to reach the level halfway from the base proxy to the lower of
    their two peaks (both reach it by construction)."""
    rows = []
    for seed, runs in by_seed(results).items():
        ra, rb = runs[a], runs[b]
        base = 0.5 * (ra["curves"]["proxy"][0] + rb["curves"]["proxy"][0])
        top = min(smooth(ra["curves"]["proxy"]).max(), smooth(rb["curves"]["proxy"]).max())
        level = base + 0.5 * (top - base)
        rows.append({"seed": seed, "level": level, f"queries {a}": queries_to_reach(ra, level),
                     f"queries {b}": queries_to_reach(rb, level)})
    return pd.DataFrame(rows)


def dormancy_correlation(results: list[dict], variants=CRITIC_VARIANTS) -> pd.Series:
    """Per seed: Spearman's rho, across that seed's critic runs, between the final dormant share and the final
    proxy - gold gap."""
    from scipy.stats import spearmanr

    table = matched_table(results)
    out = {}
    for seed, part in table[table.variant.isin(variants) | table.variant.str.startswith("TDPO-R ")].groupby("seed"):
        rho = spearmanr(part.dormant_final, part.gap_final).statistic
        out[seed] = float(rho)
    return pd.Series(out, name="spearman rho")


def paired(table: pd.DataFrame, metric: str, a: str, b: str) -> list[float]:
    """Per seed: metric(a) - metric(b), sorted by seed (nan seeds dropped by the claim)."""
    wide = table.pivot_table(index="seed", columns="variant", values=metric, dropna=False)
    return [float(v) for v in (wide[a] - wide[b]).sort_index().to_numpy()]


# ---- checks ---------------------------------------------------------------------------------------------------

def logprob_check(seed: int = 0) -> float:
    """Largest |ours - closed form| of the DDIM step's log-probability (mean over dimensions) on random inputs."""
    from repro.tdpor.diffusion import ddim_mean, gaussian_logprob

    g = torch.Generator().manual_seed(seed)
    s = Schedule()
    t = s.timesteps()[torch.randint(s.steps, (256,), generator=g)]
    x_t, eps = torch.randn(256, 2, generator=g), torch.randn(256, 2, generator=g)
    mean, sigma = ddim_mean(s, eps, x_t, t)
    x_prev = mean + sigma * torch.randn(256, 2, generator=g)
    ours = gaussian_logprob(x_prev, mean, sigma)
    ref = torch.distributions.Normal(mean.double(), sigma.double().expand_as(mean)).log_prob(x_prev.double())
    return float((ours.double() - ref.mean(-1)).abs().max())


def reset_check(seed: int = 0, tau: float = 0.0) -> dict[str, float]:
    """Train a critic a few steps, reset its active neurons, and count: neurons whose incoming row changed but were
    not active + active neurons whose row did not change, and the largest Adam moment left on a reset row/column."""
    torch.manual_seed(seed)
    feats = env.FourierFeatures(seed=seed)
    crit = critic_mod.Critic(feats.w.shape[1])
    opt = torch.optim.AdamW(crit.parameters(), lr=1e-3)
    e = feats(torch.randn(256, 2) * 2)
    for _ in range(20):
        loss = ((crit(e) - e[:, 0]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    before = [lin.bias.detach().clone() for lin in crit.linears]  # trained biases: non-zero, a reset zeroes them
    scores = critic_mod.neuron_scores(crit, e[:64])
    masks = critic_mod.reset(crit, opt, e[:64], "active", tau, seed)
    wrong, moment, n_active = 0, 0.0, 0
    for k, (s, m) in enumerate(zip(scores, masks)):
        active = s > tau
        n_active += int(active.sum())
        changed = crit.linears[k].bias != before[k]
        wrong += int((changed != active).sum() + (m != active).sum())
        st_in, st_out = opt.state[crit.linears[k].weight], opt.state[crit.linears[k + 1].weight]
        for key in ("exp_avg", "exp_avg_sq"):
            if active.any():
                moment = max(moment, float(st_in[key][active].abs().max()), float(st_out[key][:, active].abs().max()))
    return {"wrong_neurons": wrong, "max_moment": moment, "active": n_active,
            "neurons": sum(len(s) for s in scores)}
