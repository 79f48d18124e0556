"""Cluster-aware graph parallelism: Ulysses-style sequence parallelism over ``torch.distributed``.

P ranks each hold a contiguous shard of S/P rows of the (METIS-reordered) sequence. Per attention layer:

1. each rank projects its rows to q, k, v: 3 x (H, S/P, D);
2. one all-to-all per tensor scatters heads and gathers the sequence: (H, S/P, D) -> (H/P, S, D);
3. each rank attends over the whole sequence for its H/P heads (any pattern: dense, edges or tiles);
4. one all-to-all brings the output back: (H/P, S, D) -> (H, S/P, D), and the output projection is local.

That is 4 all-to-alls of S*d/P elements per rank and layer, whatever the graph: the volume does not depend on the
edges or the order. The alternatives a rank would otherwise receive are K and V of the other shards (an all-gather
of 2*S*d*(P-1)/P elements) or, for Graphormer's attention bias, the other shards' rows of the H x S x S bias.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from queue import Empty

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from repro.torchgt.model import Attend, MultiHeadAttention


@dataclass
class Volume:
    """Elements one rank sends per attention layer."""

    ulysses: int
    kv_allgather: int
    bias_allgather: int


def analytic_volume(seq_len: int, dim: int, heads: int, ranks: int) -> Volume:
    """Per rank and layer: Ulysses 4 S d / P (of which (P-1)/P leaves the rank), K/V all-gather 2 S d (P-1)/P
    received, S x S bias (H heads) all-gather H S^2 (P-1)/P received."""
    share = (ranks - 1) / ranks
    return Volume(int(4 * seq_len * dim / ranks * share), int(2 * seq_len * dim * share),
                  int(heads * seq_len**2 * share))


def _all_to_all(x: torch.Tensor, scatter_dim: int, gather_dim: int, ranks: int, sent: list[int]) -> torch.Tensor:
    """Split ``x`` in ``ranks`` along ``scatter_dim``, exchange, and concatenate what arrives along ``gather_dim``."""
    chunks = [c.contiguous() for c in x.chunk(ranks, dim=scatter_dim)]
    inp = torch.stack(chunks)  # chunk r goes to rank r
    out = torch.empty_like(inp)
    dist.all_to_all_single(out, inp)
    sent.append(inp.numel() - chunks[dist.get_rank()].numel())  # what leaves this rank
    return torch.cat(out.unbind(0), dim=gather_dim)


def ulysses_attention(x_local: torch.Tensor, layer: MultiHeadAttention, attend: Attend, sent: list[int]):
    """x_local (S/P, d) -> (S/P, d), the same as ``layer(x, attend)`` on the whole sequence restricted to this
    rank's rows. ``sent`` collects the elements this rank sends."""
    ranks = dist.get_world_size()
    if layer.heads % ranks:
        raise ValueError(f"{layer.heads} heads do not split over {ranks} ranks")
    q, k, v = layer.project(x_local)  # (H, S/P, D) each
    q, k, v = (_all_to_all(t, 0, 1, ranks, sent) for t in (q, k, v))  # (H/P, S, D)
    out = _all_to_all(attend(q, k, v), 1, 0, ranks, sent)  # (H, S/P, D)
    return layer.out(out.transpose(0, 1).reshape(x_local.shape))


def _worker(rank: int, ranks: int, port: int, cases, state, result_queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=ranks)
    try:
        layer = MultiHeadAttention(state["dim"], state["heads"])
        layer.load_state_dict(state["weights"])
        results = []
        for x, attend in cases:
            sent: list[int] = []
            out = ulysses_attention(x.chunk(ranks)[rank], layer, attend, sent)
            gathered = [torch.empty_like(out) for _ in range(ranks)]
            dist.all_gather(gathered, out)
            results.append((torch.cat(gathered).numpy(), sum(sent)))  # numpy: the process exits before it is read
        if rank == 0:
            result_queue.put(results)
    finally:
        dist.destroy_process_group()


def run_ulysses(cases: list[tuple[torch.Tensor, Attend]], layer: MultiHeadAttention, ranks: int):
    """Run one attention layer on each (x (S, d), attend) case with ``ranks`` gloo processes (one process group for
    all cases). Returns, per case, the gathered output (S, d) and the elements rank 0 sent in the layer's four
    all-to-alls. S must divide by ``ranks`` (pad the sequence otherwise)."""
    from repro.utils import free_port

    for x, _ in cases:
        if x.shape[0] % ranks:
            raise ValueError(f"sequence length {x.shape[0]} does not divide into {ranks} shards; pad it")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    state = {"heads": layer.heads, "dim": layer.out.in_features,
             "weights": {k: v.detach().clone() for k, v in layer.state_dict().items()}}
    cases = [(x.detach(), attend) for x, attend in cases]
    procs = mp.start_processes(_worker, args=(ranks, free_port(), cases, state, queue), nprocs=ranks,
                               join=False, start_method="spawn")
    while True:  # read before joining (a large result would block the writer on a full pipe)
        try:
            results = queue.get(timeout=1.0)
            break
        except Empty:
            procs.join(timeout=0)  # raises, with the rank's traceback, when a worker failed
    while not procs.join():
        pass
    return [(torch.from_numpy(out), sent) for out, sent in results]
