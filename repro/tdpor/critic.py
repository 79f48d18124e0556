"""The temporal critic V(e_t) of TDPO, neuron scores, and the reset strategies compared in the chapter.

As in the official head (``critic_model.py``): a stack of Linear layers with dropout and **no nonlinearity**, no
timestep input, every weight drawn from N(0, std = 1/(d + 1)) with d the *input* width (the official code uses 768
for every layer; here d = the feature width for every layer), biases 0. Hidden neurons are scored as in ReDo /
``neuron_recycler.py``: a_i = mean_x |ReLU(h_i(x))| on a probe batch, s_i = a_i / (mean_k a_k + 1e-9); a neuron is
dormant when s_i <= tau.
"""
from __future__ import annotations

import torch
from torch import nn

RESETS = ("none", "active", "dormant", "all")  # no reset, TDPO-R, ReDo, full critic reset


class Critic(nn.Module):
    def __init__(self, dim: int = 64, widths=(64, 32, 16, 8), dropout=(0.2, 0.2, 0.1, 0.0)):
        super().__init__()
        sizes = [dim, *widths, 1]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropouts = nn.ModuleList(nn.Dropout(p) for p in dropout)
        self.std = 1.0 / (dim + 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in self.linears:
            nn.init.normal_(lin.weight, std=self.std)
            nn.init.zeros_(lin.bias)

    def forward(self, e: torch.Tensor, return_hidden: bool = False):
        hidden = []
        h = e
        for k, lin in enumerate(self.linears):
            h = lin(h)
            if k < len(self.linears) - 1:
                hidden.append(h)
                h = self.dropouts[k](h)
        v = h.squeeze(-1)
        return (v, hidden) if return_hidden else v


@torch.no_grad()
def neuron_scores(critic: Critic, probe: torch.Tensor) -> list[torch.Tensor]:
    """s_i per hidden layer (the output layer excluded), in eval mode (no dropout)."""
    was = critic.training
    critic.eval()
    _, hidden = critic(probe, return_hidden=True)
    critic.train(was)
    scores = []
    for h in hidden:
        a = h.relu().abs().mean(0)
        scores.append(a / (a.mean() + 1e-9))
    return scores


def dormant_share(scores: list[torch.Tensor], tau: float) -> float:
    """Share of hidden neurons with s_i <= tau, over all hooked layers."""
    flat = torch.cat(scores)
    return float((flat <= tau).float().mean())


def _zero_moments(opt: torch.optim.Optimizer, param: torch.Tensor, index, dim: int) -> None:
    state = opt.state.get(param)
    if not state:
        return
    for key in ("exp_avg", "exp_avg_sq"):
        if key in state:
            if dim == 0:
                state[key][index] = 0.0
            else:
                state[key][:, index] = 0.0


@torch.no_grad()
def reset(critic: Critic, opt: torch.optim.Optimizer, probe: torch.Tensor, strategy: str, tau: float,
          seed: int) -> list[torch.Tensor]:
    """Reset critic neurons after an epoch's training pass; returns the masks of neurons reset, per hidden layer.

    - ``active`` (TDPO-R): s_i > tau. Incoming row and bias re-drawn (bias 0), outgoing column **re-drawn**, and
      those rows' and columns' Adam moments zeroed.
    - ``dormant`` (ReDo): s_i <= tau. Incoming row re-drawn, bias 0, outgoing column **zeroed**, moments zeroed.
    - ``all``: every parameter re-drawn, the critic optimiser's state cleared.

    The draws use a generator seeded with ``seed`` (the official code reseeds the global RNG with the config seed
    and restores it afterwards; a private generator leaves the global stream untouched in the same way).
    """
    if strategy not in RESETS:
        raise ValueError(f"unknown reset strategy {strategy!r}; one of {RESETS}")
    scores = neuron_scores(critic, probe)
    masks = [torch.zeros_like(s, dtype=torch.bool) for s in scores]
    if strategy == "none":
        return masks
    gen = torch.Generator().manual_seed(seed)
    if strategy == "all":
        for lin in critic.linears:
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) * critic.std)
            lin.bias.zero_()
        opt.state.clear()
        return [torch.ones_like(m) for m in masks]
    for k, s in enumerate(scores):
        mask = s > tau if strategy == "active" else s <= tau
        masks[k] = mask
        if not mask.any():
            continue
        idx = mask.nonzero().squeeze(-1)
        lin_in, lin_out = critic.linears[k], critic.linears[k + 1]
        lin_in.weight[idx] = torch.randn(len(idx), lin_in.weight.shape[1], generator=gen) * critic.std
        lin_in.bias[idx] = 0.0
        if strategy == "active":
            lin_out.weight[:, idx] = torch.randn(lin_out.weight.shape[0], len(idx), generator=gen) * critic.std
        else:
            lin_out.weight[:, idx] = 0.0
        _zero_moments(opt, lin_in.weight, idx, 0)
        _zero_moments(opt, lin_in.bias, idx, 0)
        _zero_moments(opt, lin_out.weight, idx, 1)
    return masks
