"""The halo bookkeeping of partition-parallel full-graph training (the partitions
themselves, METIS or random, are in ``repro.graphs``).

Rank r owns its *inner* nodes. Its *halo* holds copies of the nodes of other ranks that have an edge into r's inner
nodes, ordered by owner rank and then by global id. ``send_index[s]`` lists the inner rows that rank r sends to rank
s, in the order rank s keeps them in its halo, so a message needs no ids.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from repro.graphs import Graph


@dataclass
class RankGraph:
    """Everything rank ``rank`` holds. Local row ids: inner nodes first, then the halo."""

    rank: int
    world: int
    inner: torch.Tensor  # [n_inner] global ids
    halo: torch.Tensor  # [n_halo] global ids, grouped by owner
    halo_offsets: list[int]  # halo rows from owner s are halo[halo_offsets[s]:halo_offsets[s+1]]
    send_index: list[torch.Tensor]  # per peer s: local inner rows to send to s
    edge_src: torch.Tensor  # [E_r] local row (inner or halo) of each edge's source
    edge_dst: torch.Tensor  # [E_r] local inner row of each edge's destination
    degree: torch.Tensor  # [n_inner + n_halo] full-graph degree (no self loop) of every local row
    x: torch.Tensor  # [n_inner, F]
    y: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    n_train_total: int

    @property
    def n_inner(self) -> int:
        return self.inner.numel()

    @property
    def n_halo(self) -> int:
        return self.halo.numel()

    def halo_rows(self, owner: int) -> slice:
        return slice(self.halo_offsets[owner], self.halo_offsets[owner + 1])


def split(graph: Graph, owner: torch.Tensor) -> list[RankGraph]:
    """Cut ``graph`` into one RankGraph per rank, with consistent send and halo orders."""
    n, world = graph.num_nodes, int(owner.max()) + 1
    src, dst = graph.edge_index
    degree = torch.bincount(dst, minlength=n)
    ranks = []
    for r in range(world):
        inner = torch.nonzero(owner == r).flatten()
        mine = owner[dst] == r
        e_src, e_dst = src[mine], dst[mine]
        remote = e_src[owner[e_src] != r]
        halo = torch.unique(owner[remote] * n + remote) % n  # sorted by (owner, global id)
        counts = torch.bincount(owner[halo], minlength=world)
        offsets = [0] + torch.cumsum(counts, 0).tolist()
        local = torch.full((n,), -1, dtype=torch.long)
        local[inner] = torch.arange(inner.numel())
        local[halo] = inner.numel() + torch.arange(halo.numel())
        ranks.append(RankGraph(
            r, world, inner, halo, offsets, [], local[e_src], local[e_dst], degree[torch.cat([inner, halo])],
            graph.x[inner], graph.y[inner], graph.train_mask[inner], graph.val_mask[inner], graph.test_mask[inner],
            int(graph.train_mask.sum()),
        ))
    for r, rg in enumerate(ranks):
        local_of = torch.full((n,), -1, dtype=torch.long)
        local_of[rg.inner] = torch.arange(rg.n_inner)
        # what rank s keeps from r is exactly what r must send to s, in s's halo order
        rg.send_index = [local_of[ranks[s].halo[ranks[s].halo_rows(r)]] if s != r else torch.empty(0, dtype=torch.long)
                         for s in range(world)]
    return ranks
