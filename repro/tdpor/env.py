"""The 2-D environment: a ring Gaussian mixture, its pretrained eps-network, gold / proxy / out-of-domain rewards and
the frozen feature map that stands in for CLIP.

Nothing is downloaded. Everything is built from one seed, so the same seed gives the same environment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from repro.tdpor.diffusion import Schedule, sample

N_MODES = 8
RADIUS = 2.0
MODE_STD = 0.15
N_PROMPTS = 4
GOLD_WIDTH = 0.6  # s of the gold reward exp(-|x - mu*|^2 / 2 s^2)


def ring_modes() -> torch.Tensor:
    angles = torch.arange(N_MODES) * 2 * math.pi / N_MODES
    return RADIUS * torch.stack([angles.cos(), angles.sin()], 1)


def sample_ring(n: int, generator=None) -> torch.Tensor:
    idx = torch.randint(N_MODES, (n,), generator=generator)
    return ring_modes()[idx] + MODE_STD * torch.randn(n, 2, generator=generator)


def targets() -> torch.Tensor:
    """mu*_c: the middle of the gap between modes 2c and 2c+1, on the ring (a low-density region)."""
    angles = (2 * torch.arange(N_PROMPTS) + 0.5) * 2 * math.pi / N_MODES
    return RADIUS * torch.stack([angles.cos(), angles.sin()], 1)


def gold(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The bounded gold reward r*(x, c) in (0, 1]: overshooting mu*_c lowers it."""
    return torch.exp(-((x - targets()[c]) ** 2).sum(-1) / (2 * GOLD_WIDTH ** 2))


def time_embedding(t: torch.Tensor, n_train: int, dim: int = 16) -> torch.Tensor:
    freqs = torch.exp(torch.arange(dim // 2) * (-math.log(1000.0) / (dim // 2)))
    arg = (t.float() / n_train * 1000.0).unsqueeze(-1) * freqs
    return torch.cat([arg.sin(), arg.cos()], -1)


class EpsNet(nn.Module):
    """eps_theta(x_t, t, c): an MLP on (x, a sinusoidal timestep embedding, the prompt's one-hot)."""

    def __init__(self, n_train: int, hidden: int = 128, layers: int = 3, n_prompts: int = N_PROMPTS):
        super().__init__()
        self.n_train, self.n_prompts = n_train, n_prompts
        dims = [2 + 16 + n_prompts] + [hidden] * layers
        mods = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*mods, nn.Linear(hidden, 2))

    def forward(self, x, t, c):
        onehot = nn.functional.one_hot(c, self.n_prompts).float()
        return self.net(torch.cat([x, time_embedding(t, self.n_train), onehot], -1))


def pretrain(schedule: Schedule, steps: int, seed: int, batch: int = 256, lr: float = 2e-3) -> EpsNet:
    """Fit the base eps-network on the ring (DDPM loss, uniform timesteps). The prompt is drawn at random, independent
    of the data, so the base model is unconditional in effect: fine-tuning has to make it prompt-dependent."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = EpsNet(schedule.n_train)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    ac = schedule.alphas_cumprod
    for _ in range(steps):
        x0 = sample_ring(batch, gen)
        t = torch.randint(schedule.n_train, (batch,), generator=gen)
        c = torch.randint(N_PROMPTS, (batch,), generator=gen)
        noise = torch.randn(batch, 2, generator=gen)
        a = ac[t].unsqueeze(-1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = ((model(xt, t, c) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


class MLPReward(nn.Module):
    """A small regressor r(x, c) on (x, one-hot c)."""

    def __init__(self, width: int, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 + N_PROMPTS, width), act(), nn.Linear(width, width), act(),
                                 nn.Linear(width, 1))

    def forward(self, x, c):
        return self.net(torch.cat([x, nn.functional.one_hot(c, N_PROMPTS).float()], -1)).squeeze(-1)


class KernelRidgeReward(nn.Module):
    """RBF kernel ridge regression, one fit per prompt; it falls back to the prompt's mean label off-support."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, c: torch.Tensor, lengthscale: float, ridge: float):
        super().__init__()
        self.lengthscale = lengthscale
        self.xs, self.alphas, self.means = [], [], []
        for k in range(N_PROMPTS):
            xk, yk = x[c == k], y[c == k]
            mean = yk.mean()
            kmat = self._kernel(xk, xk)
            alpha = torch.linalg.solve(kmat + ridge * torch.eye(len(xk)), yk - mean)
            self.xs.append(xk)
            self.alphas.append(alpha)
            self.means.append(mean)

    def _kernel(self, a, b):
        return torch.exp(-torch.cdist(a, b) ** 2 / (2 * self.lengthscale ** 2))

    def forward(self, x, c):
        out = torch.empty(len(x))
        for k in range(N_PROMPTS):
            m = c == k
            out[m] = self._kernel(x[m], self.xs[k]) @ self.alphas[k] + self.means[k]
        return out


def _fit_mlp(x, y, c, width: int, seed: int, act=nn.ReLU, steps: int = 1500, lr: float = 3e-3) -> MLPReward:
    torch.manual_seed(seed)
    model = MLPReward(width, act)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        loss = ((model(x, c) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


@dataclass
class Rewards:
    """The training reward (proxy) and the out-of-domain ones, all fitted to noisy gold labels of base samples."""

    proxy: nn.Module
    ood: dict[str, nn.Module]

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, c: torch.Tensor) -> dict[str, float]:
        out = {"proxy": float(self.proxy(x, c).mean()), "gold": float(gold(x, c).mean())}
        for name, r in self.ood.items():
            out[name] = float(r(x, c).mean())
        out["ood"] = sum(out[n] for n in self.ood) / len(self.ood)
        return out


def fit_rewards(base: EpsNet, schedule: Schedule, seed: int, n: int = 200, noise: float = 0.05,
                steps: int = 800) -> Rewards:
    """Draw ``n`` samples of the base model per prompt and fit: the proxy (ReLU MLP, width 32, ``n`` points per
    prompt), two MLP OOD rewards with other seeds, widths, activations and data subsets, and an RBF kernel ridge."""
    gen = torch.Generator().manual_seed(seed + 17)
    c = torch.arange(N_PROMPTS).repeat_interleave(n)
    states, _, _ = sample(base, schedule, c, gen)
    x = states[:, -1]
    y = gold(x, c) + noise * torch.randn(len(x), generator=gen)
    half = torch.randperm(len(x), generator=gen)
    a, b = half[: len(x) // 2], half[len(x) // 2:]
    proxy = _fit_mlp(x, y, c, 32, seed + 1, steps=steps)
    ood = {
        "ood_mlp_wide": _fit_mlp(x[a], y[a], c[a], 64, seed + 2, steps=steps),
        "ood_mlp_tanh": _fit_mlp(x[b], y[b], c[b], 16, seed + 3, act=nn.Tanh, steps=steps),
        "ood_kernel_ridge": KernelRidgeReward(x, y, c, lengthscale=0.4, ridge=0.1),
    }
    return Rewards(proxy, ood)


class FourierFeatures(nn.Module):
    """The frozen "CLIP" of this chapter: random Fourier features of x_t plus a shared direction, L2-normalised.

    The shared direction makes many critic neurons sign-consistent over inputs, as CLIP embeddings (which share a
    large mean component) do, so that dormancy is not trivially zero."""

    def __init__(self, dim: int = 64, lengthscale: float = 1.0, shared: float = 1.0, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed + 31)
        self.register_buffer("w", torch.randn(2, dim, generator=g) / lengthscale)
        self.register_buffer("b", 2 * math.pi * torch.rand(dim, generator=g))
        m = torch.randn(dim, generator=g)
        self.register_buffer("m", shared * m / m.norm())
        self.scale = math.sqrt(2.0 / dim)

    @torch.no_grad()
    def forward(self, x):
        e = self.scale * torch.cos(x @ self.w + self.b) + self.m
        return e / e.norm(dim=-1, keepdim=True)
