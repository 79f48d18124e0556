"""The diffusion policy as an MDP (DDPO): a DDIM schedule, one eta = 1 step as a Gaussian action, its log-probability.

The base model is trained as a DDPM on ``N_TRAIN`` discrete timesteps; the policy samples with ``T`` DDIM steps of
eta = 1 on the "leading" spacing with ``steps_offset = 1`` (as Stable Diffusion's scheduler does), and the final step
goes to alpha-bar_0 (``set_alpha_to_one = False``), so every step keeps a positive variance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Schedule:
    n_train: int = 100
    steps: int = 20
    beta_start: float = 1e-3
    beta_end: float = 0.2

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        betas = torch.linspace(self.beta_start, self.beta_end, self.n_train, dtype=torch.float64)
        return torch.cumprod(1 - betas, 0).float()

    def timesteps(self) -> torch.Tensor:
        """The T sampling timesteps, first (noisiest) to last."""
        ratio = self.n_train // self.steps
        return (torch.arange(self.steps) * ratio).flip(0) + 1

    def prev_alpha(self, t: torch.Tensor) -> torch.Tensor:
        ac = self.alphas_cumprod
        prev = t - self.n_train // self.steps
        return torch.where(prev >= 0, ac[prev.clamp(min=0)], ac[0])

    def sigma(self, t: torch.Tensor, eta: float = 1.0) -> torch.Tensor:
        """DDIM's sigma_t: eta * sqrt((1 - a_prev)/(1 - a_t) * (1 - a_t/a_prev))."""
        a_t, a_prev = self.alphas_cumprod[t], self.prev_alpha(t)
        return eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()


def ddim_mean(schedule: Schedule, eps: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
              eta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, sigma) of the DDIM step x_t -> x_{t-1} given the predicted noise ``eps`` (no clipping of x0)."""
    a_t = schedule.alphas_cumprod[t].unsqueeze(-1)
    a_prev = schedule.prev_alpha(t).unsqueeze(-1)
    sigma = schedule.sigma(t, eta).unsqueeze(-1)
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    direction = (1 - a_prev - sigma ** 2).clamp(min=0).sqrt() * eps
    return a_prev.sqrt() * x0 + direction, sigma


def gaussian_logprob(x: torch.Tensor, mean: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, sigma^2 I) **averaged** over the last dimension (DDPO's convention)."""
    lp = -((x - mean) ** 2) / (2 * sigma ** 2) - torch.log(sigma) - 0.5 * math.log(2 * math.pi)
    return lp.mean(-1)


def policy_step(model, schedule: Schedule, x_t, t, cond, prev_sample=None, generator=None, eta: float = 1.0):
    """One eta = 1 DDIM step of ``model``: (x_{t-1}, log pi(x_{t-1} | x_t), mean, sigma).

    With ``prev_sample`` given, its log-probability under the current model is returned (the PPO ratio's numerator).
    """
    eps = model(x_t, t, cond)
    mean, sigma = ddim_mean(schedule, eps, x_t, t, eta)
    if prev_sample is None:
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        prev_sample = mean + sigma * noise
    return prev_sample, gaussian_logprob(prev_sample.detach(), mean, sigma), mean, sigma


@torch.no_grad()
def sample(model, schedule: Schedule, cond: torch.Tensor, generator=None, dim: int = 2):
    """Trajectories of ``model``: states (B, T+1, dim) from x_T to x_0, log-probs (B, T) and the timesteps (T,)."""
    ts = schedule.timesteps()
    x = torch.randn(len(cond), dim, generator=generator)
    states, logps = [x], []
    for t in ts:
        tt = t.expand(len(cond))
        x, lp, _, _ = policy_step(model, schedule, x, tt, cond, generator=generator)
        states.append(x)
        logps.append(lp)
    return torch.stack(states, 1), torch.stack(logps, 1), ts


def sample_with_grad(model, schedule: Schedule, cond: torch.Tensor, generator=None, truncate: int = 5,
                     dim: int = 2) -> torch.Tensor:
    """x_0 with gradients through the last ``truncate`` steps only (AlignProp's truncated backpropagation)."""
    ts = schedule.timesteps()
    x = torch.randn(len(cond), dim, generator=generator)
    for k, t in enumerate(ts):
        tt = t.expand(len(cond))
        if k < len(ts) - truncate:
            with torch.no_grad():
                x, _, _, _ = policy_step(model, schedule, x, tt, cond, generator=generator)
        else:
            eps = model(x, tt, cond)
            mean, sigma = ddim_mean(schedule, eps, x, tt)
            x = mean + sigma * torch.randn(mean.shape, generator=generator)
    return x
