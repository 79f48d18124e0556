"""The chapter's experiment: which graphs, methods, seeds and epochs each scale runs."""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from repro import graphs
from repro.sylvie.exchange import Method
from repro.sylvie.train import PIPEGCN, VANILLA, Launch, TrainSettings, bns, launch, subset, sylvie_a, sylvie_s


@dataclass(frozen=True)
class Plan:
    seeds: int  # seeds for every accuracy claim
    cora_epochs: int
    sbm_nodes: int
    sbm_epochs: int
    scaling_parts: tuple[int, ...]  # extra partition counts on the SBM graph (vanilla vs Sylvie-A, one seed)
    scaling_epochs: int
    eval_every: int
    ablation: bool = True  # the 2/4/8-bit synchronous runs on Cora


PLANS = {
    "smoke": Plan(seeds=1, cora_epochs=8, sbm_nodes=2_000, sbm_epochs=8, scaling_parts=(), scaling_epochs=0,
                  eval_every=4, ablation=False),
    # sized to stay under 4 minutes on a 2-core CPU (measured in the chapter's provenance block)
    "default": Plan(seeds=3, cora_epochs=25, sbm_nodes=10_000, sbm_epochs=16, scaling_parts=(4,),
                    scaling_epochs=8, eval_every=4),
    "full": Plan(seeds=3, cora_epochs=200, sbm_nodes=500_000, sbm_epochs=100, scaling_parts=(4, 8),
                 scaling_epochs=30, eval_every=10),
}


def core_methods(bits: int, staleness_bound: int, bns_rate: float) -> list[Method]:
    """The baselines and Sylvie's variants, side by side."""
    return [VANILLA, PIPEGCN, bns(bns_rate), sylvie_s(bits), sylvie_a(bits), sylvie_a(bits, staleness_bound)]


def role_names(bits: int, staleness_bound: int) -> dict[str, str]:
    """The method names the claims compare, by role, as the method constructors spell them."""
    return {"vanilla": VANILLA.name, "sync": sylvie_s(bits).name, "pipelined": sylvie_a(bits).name,
            "bounded": sylvie_a(bits, staleness_bound).name}


def ablation_methods(bits: int) -> list[Method]:
    """Synchronous exchanges at the bit widths the core list does not already hold (fp32 and ``bits`` are there)."""
    return [sylvie_s(b) for b in (1, 2, 4, 8) if b != bits]


@dataclass
class Results:
    cora: Launch
    sbm: Launch
    scaling: list[Launch]
    bytes_at_256: Launch


def run(scale: str, seed: int, model: str, hidden: int, bits: int, staleness_bound: int, bns_rate: float,
        backend: str, device: str, large_graph: str = "sbm", progress: bool = True, graph: str = "cora") -> Results:
    """Everything the chapter measures. Every launch spawns real processes over torch.distributed.

    ``graph`` is the small real graph (``cora`` or ``citeseer``); ``Results.cora`` holds its launch whichever it is.
    """
    plan = PLANS[scale]
    seeds = [seed + i for i in range(plan.seeds)]
    base = TrainSettings(model=model, hidden=hidden, backend=backend, device=device, eval_every=plan.eval_every)
    core = core_methods(bits, staleness_bound, bns_rate)
    cora = graphs.planetoid(graph)
    sbm = graphs.sbm(plan.sbm_nodes, seed=seed) if large_graph == "sbm" else graphs.from_cache(large_graph)
    ablation = ablation_methods(bits) if plan.ablation else []
    cora_cfg = replace(base, epochs=plan.cora_epochs)
    # the paper's 28.4x is quoted at hidden size 256: count the bytes there too, in the same processes (a short
    # run suffices for bytes); the same launch checks the partitioned forward pass against a single process
    at_256 = replace(base, hidden=256, epochs=2, eval_every=2)
    extra = [(VANILLA, seed, at_256)] if hidden != 256 else []
    extra += [(sylvie_s(1), seed, at_256)] if hidden != 256 or bits != 1 else []
    cora_all = launch(cora, 2, core + ablation, seeds, cora_cfg, progress=progress, verify=True, extra=extra)
    cora_run = subset(cora_all, hidden)
    sbm_run = launch(sbm, 2, core, seeds, replace(base, epochs=plan.sbm_epochs), progress=progress)
    scaling = [launch(sbm, p, [VANILLA, sylvie_s(bits), sylvie_a(bits)], [seed],
                      replace(base, epochs=plan.scaling_epochs), progress=progress) for p in plan.scaling_parts]
    return Results(cora_run, sbm_run, scaling, subset(cora_all, 256))


def default_backend(quant_backend: str, device: torch.device) -> str:
    """auto: the Triton kernels on CUDA, the torch reference on CPU (the interpreter is for tests, not speed)."""
    if quant_backend == "auto":
        return "triton" if device.type == "cuda" else "torch"
    return quant_backend
