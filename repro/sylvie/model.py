"""GraphSAGE-mean and GCN for partition-parallel full-graph training.

Layer 0 aggregates the input features once, before training, at full precision (Sylvie's and PipeGCN's
``--use-pp``): its neighbour term is a constant. Every later layer aggregates over the rank's inner rows plus the
halo rows that ``exchange`` returns, so communication happens at layers 1..L-1, forward and backward.
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from repro.sylvie.partition import RankGraph


class Aggregation:
    """A fixed sparse operator A [n_out, n_in] applied as ``A @ h`` with a precomputed CSR transpose for the
    backward pass (torch's COO backward re-sorts A^T on every call, which costs more than the layer itself)."""

    def __init__(self, coo: torch.Tensor):
        coo = coo.coalesce()
        self.shape = tuple(coo.shape)
        with warnings.catch_warnings():  # torch flags the CSR layout as beta on every construction
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            self.forward_csr = coo.to_sparse_csr()
            self.backward_csr = coo.t().coalesce().to_sparse_csr()

    def to(self, device) -> "Aggregation":
        self.forward_csr = self.forward_csr.to(device)
        self.backward_csr = self.backward_csr.to(device)
        return self

    def __matmul__(self, h: torch.Tensor) -> torch.Tensor:
        return _SparseMatmul.apply(h, self)


class _SparseMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, op: Aggregation):
        ctx.op = op
        return op.forward_csr @ h

    @staticmethod
    def backward(ctx, grad):
        return ctx.op.backward_csr @ grad.contiguous(), None


def aggregation_matrix(rg: RankGraph, kind: str, halo_keep: torch.Tensor | None = None,
                       halo_rate: float = 1.0) -> Aggregation:
    """Sparse [n_inner, n_inner + n_halo] operator of one layer's neighbour aggregation.

    sage: the mean over in-neighbours. gcn: D^-1/2 (A + I) D^-1/2 with full-graph degrees.
    ``halo_keep`` (BNS-GCN) drops the halo rows that were not sampled this epoch: sage renormalises the mean over
    the kept neighbours; gcn rescales kept halo edges by 1/p so that the aggregation stays unbiased.
    """
    n_local = rg.n_inner + rg.n_halo
    src, dst = rg.edge_src, rg.edge_dst
    if halo_keep is not None:
        keep = (src < rg.n_inner) | halo_keep[(src - rg.n_inner).clamp(min=0)]
        src, dst = src[keep], dst[keep]
    if kind == "sage":
        count = torch.bincount(dst, minlength=rg.n_inner).clamp(min=1).float()
        weight = 1.0 / count[dst]
    elif kind == "gcn":
        d = (rg.degree + 1).float().rsqrt()
        weight = d[src] * d[dst]
        if halo_keep is not None:
            weight = torch.where(src >= rg.n_inner, weight / halo_rate, weight)
        self_rows = torch.arange(rg.n_inner)
        src, dst = torch.cat([src, self_rows]), torch.cat([dst, self_rows])
        weight = torch.cat([weight, d[: rg.n_inner] ** 2])
    else:
        raise ValueError(f"model must be 'sage' or 'gcn', got {kind!r}")
    return Aggregation(torch.sparse_coo_tensor(torch.stack([dst, src]), weight, (rg.n_inner, n_local),
                                               check_invariants=False))


def full_graph_aggregate(x: torch.Tensor, edge_index: torch.Tensor, kind: str) -> torch.Tensor:
    """Layer 0's neighbour term on the whole graph (done once, at full precision)."""
    n = x.shape[0]
    src, dst = edge_index
    if kind == "sage":
        weight = 1.0 / torch.bincount(dst, minlength=n).clamp(min=1).float()[dst]
    else:
        d = (torch.bincount(dst, minlength=n) + 1).float().rsqrt()
        weight = d[src] * d[dst]
    out = torch.zeros_like(x).index_add_(0, dst, x[src] * weight[:, None])
    if kind == "gcn":
        out += x * (d**2)[:, None]
    return out


class PartitionedGNN(nn.Module):
    """L layers of GraphSAGE-mean or GCN with LayerNorm, ReLU and dropout between them (as the official models).

    forward(x [n_inner, F], agg0 [n_inner, F], adjacency, exchange) -> logits [n_inner, C]
    ``exchange(layer, h [n_inner, H]) -> halo [n_halo, H]`` supplies the halo rows of layer ``layer``.
    """

    def __init__(self, kind: str, in_dim: int, hidden: int, classes: int, layers: int = 3, dropout: float = 0.5):
        super().__init__()
        self.kind = kind
        dims = [in_dim] + [hidden] * (layers - 1) + [classes]
        self.lin = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.lin_self = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in zip(dims[:-1], dims[1:])) \
            if kind == "sage" else None
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers - 1))
        self.dropout = dropout

    def forward(self, x: torch.Tensor, agg0: torch.Tensor, adjacency: Aggregation,
                exchange: Callable[[int, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        h = self._combine(0, x, agg0)
        for layer in range(1, len(self.lin)):
            h = nn.functional.dropout(torch.relu(self.norms[layer - 1](h)), self.dropout, self.training)
            halo = exchange(layer, h)
            h = self._combine(layer, h, adjacency @ torch.cat([h, halo]))
        return h

    def _combine(self, layer: int, h: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
        if self.kind == "sage":
            return self.lin[layer](neighbours) + self.lin_self[layer](h)
        return self.lin[layer](neighbours)
