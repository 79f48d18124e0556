"""Cluster-aware graph parallelism: Ulysses-style sequence parallelism over ``torch.distributed``.

P ranks each hold a contiguous shard of S/P rows of the (METIS-reordered) sequence. Per attention layer:

1. each rank projects its rows to q, k, v: 3 x (H, S/P, D);
2. one all-to-all per tensor scatters heads and gathers the sequence: (H, S/P, D) -> (H/P, S, D);
3. each rank attends over the whole sequence for its H/P heads (any pattern: dense, edges or tiles);
4. one all-to-all brings the output back: (H/P, S, D) -> (H, S/P, D), and the output projection is local.

That is 4 all-to-alls of S*d/P elements per rank and layer, whatever the graph: the volume does not depend on the
edges or the order. The alternatives a rank would otherwise receive are K and V of the other shards (an all-gather
of 2*S*d*(P-1)/P elements) or, for Graphormer's attention bias, the other shards' rows of the H x S x S bias.
Ulysses sends 4*S*d*(P-1)/P^2 per rank, so the K/V all-gather moves P/2 times as much: the same at P = 2, less for
Ulysses only from P = 4 on.

The bytes that cross the collectives are **measured**, not counted from the tensors handed to them: gloo writes to
TCP sockets, and the kernel's per-process I/O counter (``wchar`` in ``/proc/self/io``, which counts every byte a
process writes, sockets included) is read around each collective. Gloo adds fixed headers to every collective; they
are measured once per process group on a one-float all-to-all and all-gather, so that the payload can be checked to
the byte.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from queue import Empty

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from repro.torchgt.model import Attend, MultiHeadAttention


def written_bytes() -> int | None:
    """Bytes this process (all its threads) has written so far, sockets included: ``wchar`` of ``/proc/self/io``;
    None where the kernel does not provide it."""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


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


def _worker(rank: int, ranks: int, init_method: str, cases, state, result_queue):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=ranks)
    try:
        layer = MultiHeadAttention(state["dim"], state["heads"])
        layer.load_state_dict(state["weights"])
        tiny = torch.zeros(ranks, 1)
        dist.barrier()
        before = written_bytes()
        dist.all_to_all_single(torch.empty_like(tiny), tiny)
        wrote = _delta(before, written_bytes())
        a2a_overhead = None if wrote is None else wrote - 4 * (ranks - 1)  # beyond the payload, per collective
        dist.barrier()
        before = written_bytes()
        dist.all_gather([torch.empty(1) for _ in range(ranks)], torch.zeros(1))
        wrote = _delta(before, written_bytes())
        gather_overhead = None if wrote is None else wrote - 4 * (ranks - 1)
        results = []
        for x, attend in cases:
            sent: list[int] = []
            x_local = x.chunk(ranks)[rank]
            dist.barrier()
            before = written_bytes()
            out = ulysses_attention(x_local, layer, attend, sent)
            ulysses_wire = _delta(before, written_bytes())
            # the alternative: every rank all-gathers the other shards' K and V and attends for its own rows
            with torch.no_grad():
                _, k, v = layer.project(x_local)
            k, v = k.contiguous(), v.contiguous()
            dist.barrier()
            before = written_bytes()
            for t in (k, v):
                dist.all_gather([torch.empty_like(t) for _ in range(ranks)], t)
            kv_wire = _delta(before, written_bytes())
            gathered = [torch.empty_like(out) for _ in range(ranks)]
            dist.all_gather(gathered, out)
            # numpy: the process exits before it is read
            results.append(Transfer(torch.cat(gathered).numpy(), sum(sent), ulysses_wire, kv_wire, a2a_overhead,
                                    gather_overhead))
        if rank == 0:
            result_queue.put(results)
    finally:
        dist.destroy_process_group()


@dataclass
class Transfer:
    """One Ulysses layer on rank 0: the gathered output, the elements handed to the four all-to-alls that leave the
    rank (a count), and the bytes rank 0 wrote during them and during the K/V all-gather (measured; None without
    ``/proc/self/io``), and gloo's bytes beyond the payload per all-to-all and per all-gather (measured on
    one-float collectives). Ulysses runs 4 all-to-alls, the K/V exchange 2 all-gathers."""

    out: object
    sent_elements: int
    ulysses_bytes: int | None
    kv_allgather_bytes: int | None
    a2a_overhead: int | None = None
    gather_overhead: int | None = None


def run_ulysses(cases: list[tuple[torch.Tensor, Attend]], layer: MultiHeadAttention, ranks: int) -> list[Transfer]:
    """Run one attention layer on each (x (S, d), attend) case with ``ranks`` gloo processes (one process group for
    all cases), then, on the same shards, an all-gather of K and V (the alternative to Ulysses). Returns one
    :class:`Transfer` per case (``out`` as an (S, d) tensor). S must divide by ``ranks`` (pad the sequence
    otherwise)."""
    from repro.utils import file_rendezvous

    for x, _ in cases:
        if x.shape[0] % ranks:
            raise ValueError(f"sequence length {x.shape[0]} does not divide into {ranks} shards; pad it")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    state = {"heads": layer.heads, "dim": layer.out.in_features,
             "weights": {k: v.detach().clone() for k, v in layer.state_dict().items()}}
    cases = [(x.detach(), attend) for x, attend in cases]
    rendezvous = tempfile.TemporaryDirectory(prefix="repro-torchgt-")
    procs = mp.start_processes(_worker, args=(ranks, file_rendezvous(rendezvous.name), cases, state, queue),
                               nprocs=ranks, join=False, start_method="spawn")
    while True:  # read before joining (a large result would block the writer on a full pipe)
        try:
            results = queue.get(timeout=1.0)
            break
        except Empty:
            procs.join(timeout=0)  # raises, with the rank's traceback, when a worker failed
    while not procs.join():
        pass
    rendezvous.cleanup()
    for r in results:
        r.out = torch.from_numpy(r.out)
    return results
