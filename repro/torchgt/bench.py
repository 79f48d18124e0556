"""Attention micro-benchmarks (time and memory against S) and the end-to-end step time, dense vs TorchGT.

Variants, all forward + backward with H heads of D dims on a graph pattern of S tokens:
``dense`` (explicit S x S softmax, GP-RAW), ``sdpa`` (``scaled_dot_product_attention``, GP-Flash's role),
``sparse-random`` (edge softmax by gather/scatter, random node order, GP-Sparse), ``sparse-metis`` (the same on the
METIS order: the locality effect), ``block-exact`` (tiles of the METIS order holding the exact edges) and
``block-ecr`` (tiles after ECR with the chapter's beta: the kernel effect) and ``block-ecr-p1`` (ECR with p = 1, every
cluster pair reformed, as the released code hard-codes).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from repro import graphs as shared_graphs
from repro.torchgt import attention
from repro.torchgt import layout as lay
from repro.utils import time_it

VARIANTS = ("dense", "sdpa", "sparse-random", "sparse-metis", "block-exact", "block-ecr", "block-ecr-p1")
FULL_VARIANTS = ("dense", "sdpa")
# run only up to ``dense_max``: the full variants grow as S^2; the exact-edge tiles and a partial ECR (kept pairs hold
# scattered exact edges, nearly one tile per edge) are slow in the torch tile path on CPU
CAPPED = FULL_VARIANTS + ("block-exact", "block-ecr")
FLOAT = 4  # bytes


@dataclass
class Case:
    """One sequence of S tokens in both orders, with its layouts."""

    size: int
    random_pattern: lay.Pattern
    metis_pattern: lay.Pattern
    exact_layout: lay.BlockLayout
    ecr: lay.Reformation
    ecr_layout: lay.BlockLayout
    ecr_p1: lay.Reformation
    ecr_p1_layout: lay.BlockLayout
    cluster_sizes: np.ndarray
    cut_random: int
    cut_metis: int


def make_case(size: int, seed: int, beta=1.0, block: int = 16, clusters: int = 8, shards: int = 4,
              avg_degree: float = 10.0) -> Case:
    """An SBM graph of ``size`` nodes (random ids), its METIS reordering, tile layouts and the shard edge cuts."""
    g = shared_graphs.sbm(size, avg_degree=avg_degree, seed=seed)
    order, sizes = lay.metis_order(g.edge_index, size, clusters, seed=seed)
    metis_edges = lay.relabel(g.edge_index, order)
    rand = lay.sequence_pattern(g.edge_index, size, global_token=False)
    metis = lay.sequence_pattern(metis_edges, size, global_token=False)
    ecr = lay.reform(metis, sizes, beta, block, seed=seed, offset=0)
    ecr_p1 = lay.reform(metis, sizes, "1", block, seed=seed, offset=0)
    return Case(size, rand, metis, lay.BlockLayout.from_pattern(metis, block), ecr,
                lay.BlockLayout.from_pattern(ecr.pattern, block), ecr_p1,
                lay.BlockLayout.from_pattern(ecr_p1.pattern, block), sizes,
                lay.shard_edge_cut(g.edge_index, size, shards), lay.shard_edge_cut(metis_edges, size, shards))


def attend_fn(case: Case, variant: str, device="cpu"):
    if variant == "dense":
        return attention.dense_attention
    if variant == "sdpa":
        return attention.sdpa_attention
    if variant.startswith("sparse"):
        p = (case.random_pattern if variant == "sparse-random" else case.metis_pattern).to(device)
        return lambda q, k, v: attention.topology_attention(q, k, v, p.dst, p.src)
    layouts = {"block-exact": case.exact_layout, "block-ecr": case.ecr_layout, "block-ecr-p1": case.ecr_p1_layout}
    layout = layouts[variant].to(device)
    return lambda q, k, v: attention.block_attention(q, k, v, layout)


def saved_bytes(fn, q, k, v) -> int:
    """Bytes autograd keeps for the backward pass (distinct storages of saved tensors) plus the output: the
    activation memory of one attention call, measured."""
    storages: dict[int, int] = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(q, k, v)
    return sum(storages.values()) + out.numel() * out.element_size()


def analytic_bytes(variant: str, size: int, nnz: int, tiles: int, heads: int, dim: int, block: int = 16) -> int:
    """Activation bytes by formula: dense keeps the H x S x S scores and probabilities; the edge softmax keeps
    H x E scores/weights and the gathered H x E x D keys and values; tiles keep H x tiles x B^2 scores/weights and
    the gathered H x tiles x B x D keys and values. Plus q, k, v and the output (4 H S D)."""
    base = 4 * heads * size * dim
    if variant in FULL_VARIANTS:
        extra = 2 * heads * size * size if variant == "dense" else 0
    elif variant.startswith("sparse"):
        extra = 3 * heads * nnz + 3 * heads * nnz * dim
    else:
        extra = 3 * heads * tiles * block * block + 3 * heads * tiles * block * dim
    return (base + extra) * FLOAT


def time_and_memory(case: Case, variant: str, heads: int, dim: int, repeats: int, seed: int = 0,
                    device="cpu") -> dict:
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(heads, case.size, dim, generator=gen).to(device).requires_grad_() for _ in range(3))
    fn = attend_fn(case, variant, device)

    def step():
        out = fn(q, k, v)
        out.backward(torch.ones_like(out))

    timing = time_it(step, repeats=repeats, warmup=1)
    nnz = {"sparse-random": case.random_pattern.nnz, "block-ecr": case.ecr.pattern.nnz,
           "block-ecr-p1": case.ecr_p1.pattern.nnz}.get(variant, case.metis_pattern.nnz)
    tiles = {"block-ecr": case.ecr_layout.tiles, "block-ecr-p1": case.ecr_p1_layout.tiles}.get(
        variant, case.exact_layout.tiles)
    return {"variant": variant, "S": case.size, "ms": 1e3 * timing.median,
            "measured_mb": saved_bytes(fn, q, k, v) / 2**20,
            "analytic_mb": analytic_bytes(variant, case.size, nnz, tiles, heads, dim) / 2**20,
            "nnz": nnz, "tiles": tiles}


def sweep(sizes, dense_max: int, heads: int = 4, dim: int = 16, repeats: int = 3, seed: int = 0, beta=1.0,
          progress: bool = True, device="cpu") -> tuple[pd.DataFrame, list[Case]]:
    """Time and memory of every variant for every S; the ``CAPPED`` variants only up to ``dense_max``."""
    from tqdm.auto import tqdm

    rows, cases = [], []
    bar = tqdm(total=len(sizes) * len(VARIANTS), desc="attention benchmark", disable=not progress)
    for size in sizes:
        case = make_case(size, seed, beta)
        cases.append(case)
        for variant in VARIANTS:
            if variant in CAPPED and size > dense_max:
                bar.update(1)
                continue
            rows.append(time_and_memory(case, variant, heads, dim, repeats, seed, device))
            bar.update(1)
    bar.close()
    return pd.DataFrame(rows), cases


MIN_FIT_POINTS = 3  # two points fit any power law exactly


def max_length(results: pd.DataFrame, variant: str, budget_mb: float, column: str) -> float:
    """The largest S whose bytes fit ``budget_mb``, from a power law bytes = a S^b fitted to the measured points
    (dense grows as S^2, the sparse variants as S: the fit finds the exponent, it is not assumed). Needs
    ``MIN_FIT_POINTS`` sizes (ValueError otherwise)."""
    part = results[results.variant == variant]
    if len(part) < MIN_FIT_POINTS:
        raise ValueError(f"{variant}: {len(part)} sizes measured, a fit needs {MIN_FIT_POINTS}")
    b, log_a = np.polyfit(np.log(part.S), np.log(part[column]), 1)
    return float(np.exp((np.log(budget_mb) - log_a) / b))


def kernel_forward(case: Case, device, heads: int = 4, dim: int = 16, repeats: int = 10) -> dict:
    """Forward-only milliseconds on ``device`` of the Triton block kernel against its torch reference, SDPA and the
    scatter attention, on the p = 1 ECR layout (the Triton kernel has no backward; run this on a GPU)."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(heads, case.size, dim, generator=gen).to(device) for _ in range(3))
    tiles, metis = case.ecr_p1_layout.to(device), case.metis_pattern.to(device)
    fns = {"block-triton": lambda: attention.block_attention(q, k, v, tiles, "triton"),
           "block-torch": lambda: attention.block_attention(q, k, v, tiles),
           "sdpa": lambda: attention.sdpa_attention(q, k, v),
           "sparse-metis": lambda: attention.topology_attention(q, k, v, metis.dst, metis.src)}
    return {name: time_it(fn, repeats=repeats, warmup=1).median * 1e3 for name, fn in fns.items()}


def step_time(model, x, attend, repeats: int = 3) -> float:
    """Median seconds of one training step (forward, backward, optimiser) of ``model`` on one sequence."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    y = torch.zeros(x.shape[0], dtype=torch.long)

    y = y.to(x.device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x, attend), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return time_it(step, repeats=repeats, warmup=1).median


def ecr_ladder(case: Case, betas, seed: int = 0, block: int = 16) -> pd.DataFrame:
    """ECR on the case's METIS-ordered pattern for each beta (``layout.reform``'s values): pairs kept and reformed,
    tiles placed, nonzeros, tiles visited and their fill, beside the exact edges' tiles."""
    exact = lay.BlockLayout.from_pattern(case.metis_pattern, block)
    rows = [{"beta": "exact edges", "nonzeros": case.metis_pattern.nnz, "tiles visited": exact.tiles,
             "tile fill": round(exact.fill, 3)}]
    for name, beta in betas:
        r = lay.reform(case.metis_pattern, case.cluster_sizes, beta, block, seed=seed, offset=0)
        tiles = lay.BlockLayout.from_pattern(r.pattern, block)
        rows.append({"beta": name, "threshold p": r.threshold, "pairs kept": r.pairs_kept,
                     "pairs reformed": r.pairs_reformed, "tiles placed": r.blocks_placed, "nonzeros": r.pattern.nnz,
                     "tiles visited": tiles.tiles, "tile fill": round(tiles.fill, 3)})
    return pd.DataFrame(rows).set_index("beta")
