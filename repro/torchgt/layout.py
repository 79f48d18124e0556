"""Cluster-aware reordering, the block-CSR layout, Elastic Computation Reformation (ECR) and the condition check.

A *sequence* is token 0 (the global token, when the model has one) followed by the graph's nodes. ``Pattern`` holds
the attention edges (query ``dst``, key ``src``) of a sequence, self-loops included.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

BETA_LADDER = (0.0, 1.0, 1.5, 5.0, 7.0, 10.0, "1")  # the official auto-tuner's ladder; "1" means p = 1


@dataclass
class Pattern:
    """Attention edges of one sequence of ``size`` tokens, sorted by (dst, src), no duplicates."""

    size: int
    dst: torch.Tensor
    src: torch.Tensor

    @classmethod
    def from_edges(cls, size: int, dst: torch.Tensor, src: torch.Tensor) -> "Pattern":
        key = torch.unique(dst.long() * size + src.long())
        return cls(size, key // size, key % size)

    @property
    def nnz(self) -> int:
        return self.dst.numel()

    def to(self, device) -> "Pattern":
        return Pattern(self.size, self.dst.to(device), self.src.to(device))

    def dense_mask(self) -> torch.Tensor:
        mask = torch.zeros(self.size, self.size, dtype=torch.bool)
        mask[self.dst, self.src] = True
        return mask


def sequence_pattern(edge_index: torch.Tensor, num_nodes: int, global_token: bool) -> Pattern:
    """Graph edges (both directions) + self-loops, shifted by one when token 0 is the global token, which then
    attends to and from every node."""
    off = 1 if global_token else 0
    nodes = torch.arange(num_nodes) + off
    dst = [edge_index[1] + off, nodes]
    src = [edge_index[0] + off, nodes]
    if global_token:
        zero = torch.zeros(num_nodes + 1, dtype=torch.long)
        everyone = torch.arange(num_nodes + 1)
        dst += [zero, everyone]
        src += [everyone, zero]
    return Pattern.from_edges(num_nodes + off, torch.cat(dst), torch.cat(src))


def check_conditions(pattern: Pattern) -> dict[str, bool]:
    """The paper's conditions for sparse attention to keep full attention's expressiveness: every token attends to
    itself, and the pattern is connected (weakly; the global token makes any graph connected)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    self_loops = bool(torch.zeros(pattern.size, dtype=torch.bool).index_fill_(
        0, pattern.dst[pattern.dst == pattern.src], True).all())
    adj = sp.coo_matrix((np.ones(pattern.nnz), (pattern.dst.numpy(), pattern.src.numpy())),
                        shape=(pattern.size, pattern.size))
    components = connected_components(adj, directed=True, connection="weak", return_labels=False)
    return {"self_loops": self_loops, "connected": components == 1, "components": int(components)}


def metis_order(edge_index: torch.Tensor, num_nodes: int, parts: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Node order that makes every METIS part contiguous. Returns (order, part sizes): order[new] = old id."""
    from repro.graphs import metis_membership

    if parts <= 1:
        return torch.arange(num_nodes), np.array([num_nodes])
    membership = metis_membership(edge_index, num_nodes, parts, seed).numpy()
    new_order = np.argsort(membership, kind="stable")
    return torch.from_numpy(new_order), np.bincount(membership, minlength=parts)


def random_order(num_nodes: int, seed: int) -> torch.Tensor:
    return torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed))


def relabel(edge_index: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """Edges in the new numbering, given order[new] = old."""
    new_id = torch.empty_like(order)
    new_id[order] = torch.arange(order.numel())
    return new_id[edge_index]


def shard_edge_cut(edge_index: torch.Tensor, num_nodes: int, shards: int) -> int:
    """Edges whose endpoints fall in different contiguous shards of the current numbering."""
    owner = torch.arange(num_nodes) * shards // num_nodes
    return int((owner[edge_index[0]] != owner[edge_index[1]]).sum())


@dataclass
class BlockLayout:
    """Block-CSR of a pattern: tiles of ``block`` x ``block``; see ``kernels.block_sparse_attention``."""

    size: int
    block: int
    row_ptr: torch.Tensor
    col_idx: torch.Tensor
    masks: torch.Tensor  # (nnz_tiles, B, B) uint8

    @classmethod
    def from_pattern(cls, pattern: Pattern, block: int = 16) -> "BlockLayout":
        rows = -(-pattern.size // block)
        tile_key = (pattern.dst // block) * rows + pattern.src // block
        tiles, tile_of_edge = torch.unique(tile_key, return_inverse=True)
        masks = torch.zeros(tiles.numel(), block, block, dtype=torch.uint8)
        masks[tile_of_edge, pattern.dst % block, pattern.src % block] = 1
        row_ptr = torch.zeros(rows + 1, dtype=torch.long)
        row_ptr[1:] = torch.cumsum(torch.bincount(tiles // rows, minlength=rows), 0)
        return cls(pattern.size, block, row_ptr, tiles % rows, masks)

    def to(self, device) -> "BlockLayout":
        return BlockLayout(self.size, self.block, self.row_ptr.to(device), self.col_idx.to(device),
                           self.masks.to(device))

    @property
    def tiles(self) -> int:
        return self.col_idx.numel()

    @property
    def fill(self) -> float:
        """Share of the tiles' entries that are edges: 1 for ECR's full tiles."""
        return float(self.masks.float().mean()) if self.tiles else 0.0


@dataclass
class Reformation:
    pattern: Pattern
    pairs_kept: int
    pairs_reformed: int
    blocks_placed: int
    edges_replaced: int
    threshold: float


def reform(pattern: Pattern, cluster_sizes, beta, block: int = 16, seed: int = 0, offset: int = 1) -> Reformation:
    """ECR: for each pair of clusters (a, b) with edges, density rho_ab = |E_ab| / (n_a n_b). Below the threshold
    p = beta * rho_global (beta "1": p = 1, i.e. reform every pair, as the released code does), the pair's edges are
    replaced by floor(|E_ab| / B^2) + 1 dense B x B tiles at random tile-aligned places inside the pair's region
    (clipped to it); above it the exact edges stay. Self-loops and the global token's edges (tokens < ``offset``) are
    always kept: the former are a condition of the paper's expressiveness argument.

    This changes the attention pattern that training uses: the model attends along tiles, not along edges.
    """
    g = torch.Generator().manual_seed(seed)
    bounds = np.concatenate([[0], np.cumsum(cluster_sizes)]) + offset
    nodes = pattern.size - offset
    node_edge = (pattern.dst >= offset) & (pattern.src >= offset) & (pattern.dst != pattern.src)
    rho_global = float(node_edge.sum()) / max(1, nodes * nodes)
    p = 1.0 if beta == "1" else float(beta) * rho_global
    cluster_of = torch.from_numpy(np.searchsorted(bounds, np.arange(pattern.size), side="right") - 1)
    d, s = pattern.dst[node_edge], pattern.src[node_edge]
    pair = cluster_of[d] * len(cluster_sizes) + cluster_of[s]
    counts = torch.bincount(pair, minlength=len(cluster_sizes) ** 2)
    keep_dst, keep_src = [pattern.dst[~node_edge]], [pattern.src[~node_edge]]
    kept = reformed = blocks = replaced = 0
    for key in torch.nonzero(counts).flatten().tolist():
        a, b = divmod(key, len(cluster_sizes))
        n_a, n_b = cluster_sizes[a], cluster_sizes[b]
        in_pair = pair == key
        if counts[key] / (n_a * n_b) > p:
            keep_dst.append(d[in_pair])
            keep_src.append(s[in_pair])
            kept += 1
            continue
        reformed += 1
        replaced += int(counts[key])
        r0, r1, c0, c1 = bounds[a], bounds[a + 1], bounds[b], bounds[b + 1]
        tile_rows = np.arange(r0 // block, -(-r1 // block))
        tile_cols = np.arange(c0 // block, -(-c1 // block))
        want = min(int(counts[key]) // block**2 + 1, len(tile_rows) * len(tile_cols))
        picks = torch.randperm(len(tile_rows) * len(tile_cols), generator=g)[:want].numpy()
        blocks += want
        for t in picks:
            tr, tc = tile_rows[t // len(tile_cols)], tile_cols[t % len(tile_cols)]
            rows = torch.arange(max(r0, tr * block), min(r1, (tr + 1) * block))
            cols = torch.arange(max(c0, tc * block), min(c1, (tc + 1) * block))
            keep_dst.append(rows.repeat_interleave(len(cols)))
            keep_src.append(cols.repeat(len(rows)))
    new = Pattern.from_edges(pattern.size, torch.cat(keep_dst), torch.cat(keep_src))
    return Reformation(new, kept, reformed, blocks, replaced, p)


def density_grid(pattern: Pattern, cells: int = 64) -> np.ndarray:
    """Share of nonzeros in each of cells x cells equal regions of the S x S pattern (rows = queries)."""
    r = (pattern.dst * cells // pattern.size).numpy()
    c = (pattern.src * cells // pattern.size).numpy()
    grid = np.zeros((cells, cells))
    np.add.at(grid, (r, c), 1.0)
    return grid / max(1, pattern.nnz)
