"""TorchGT: attention variants against the dense reference, the reorder, ECR, the Triton kernel and Ulysses."""
import pytest
import torch

from repro.sylvie import graphs as sylvie_graphs
from repro.torchgt import attention, layout, train
from repro.torchgt.model import Attend, GraphTransformer, MultiHeadAttention


def _pattern(n=300, seed=0, token=True):
    g = sylvie_graphs.sbm(n, seed=seed)
    return g, layout.sequence_pattern(g.edge_index, n, token)


def _qkv(h, s, d, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(h, s, d, generator=gen, dtype=torch.float64) for _ in range(3)]


def test_sparse_and_block_attention_match_dense_attention_on_the_same_mask():
    _, pat = _pattern()
    q, k, v = _qkv(4, pat.size, 16)
    ref = attention.dense_attention(q, k, v, pat.dense_mask())
    sparse = attention.topology_attention(q, k, v, pat.dst, pat.src)
    block = attention.block_attention(q, k, v, layout.BlockLayout.from_pattern(pat, 16))
    torch.testing.assert_close(sparse, ref)
    torch.testing.assert_close(block, ref)
    full = Attend("dense")(q, k, v)
    torch.testing.assert_close(attention.sdpa_attention(q, k, v), full)


def test_gradients_of_the_sparse_paths_match_the_dense_reference():
    _, pat = _pattern(120)
    q, k, v = (t.requires_grad_() for t in _qkv(2, pat.size, 8))
    grads = []
    for fn in (lambda: attention.dense_attention(q, k, v, pat.dense_mask()),
               lambda: attention.topology_attention(q, k, v, pat.dst, pat.src),
               lambda: attention.block_attention(q, k, v, layout.BlockLayout.from_pattern(pat, 16))):
        out = fn()
        grads.append(torch.autograd.grad((out * out).sum(), (q, k, v)))
    for g in grads[1:]:
        for a, b in zip(g, grads[0]):
            torch.testing.assert_close(a, b)


def test_safe_softmax_survives_large_scores_where_the_clamped_one_changes_them():
    dst = torch.tensor([0, 0, 1])
    src = torch.tensor([0, 1, 1])
    q = torch.full((1, 2, 4), 30.0)
    k = torch.full((1, 2, 4), 30.0)
    v = torch.randn(1, 2, 4)
    safe = attention.topology_attention(q, k, v, dst, src)
    assert torch.isfinite(safe).all()
    clamped = attention.topology_attention(q, k, v, dst, src, softmax="clamp")
    torch.testing.assert_close(clamped, safe, atol=1e-4, rtol=1e-4)  # equal scores: both give the mean
    with pytest.raises(ValueError, match="softmax"):
        attention.topology_attention(q, k, v, dst, src, softmax="none")


def test_metis_reorder_keeps_nodes_labels_and_edges_and_lowers_the_cut():
    g = sylvie_graphs.sbm(1000, seed=1)
    order, sizes = layout.metis_order(g.edge_index, g.num_nodes, 8)
    assert sorted(order.tolist()) == list(range(g.num_nodes)) and sizes.sum() == g.num_nodes
    new_edges = layout.relabel(g.edge_index, order)
    # node new i is old order[i]: features, labels and edges map one to one
    old = torch.stack([order[new_edges[0]], order[new_edges[1]]])
    assert torch.equal(old, g.edge_index)
    seqs = train.make_sequences(g, 500, 0)
    for s in seqs:
        assert torch.equal(s.y, g.y[s.nodes]) and torch.equal(s.x, g.x[s.nodes])
    assert layout.shard_edge_cut(new_edges, g.num_nodes, 4) < layout.shard_edge_cut(g.edge_index, g.num_nodes, 4)


def test_condition_check():
    _, with_token = _pattern(200, token=True)
    assert layout.check_conditions(with_token) == {"self_loops": True, "connected": True, "components": 1}
    two = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2]])
    cond = layout.check_conditions(layout.sequence_pattern(two, 4, global_token=False))
    assert cond["self_loops"] and not cond["connected"] and cond["components"] == 2


def test_ecr_places_the_stated_number_of_full_tiles():
    # two clusters of 64 nodes (tile-aligned, offset 0), a few edges between them
    n, b = 128, 16
    dst = torch.tensor([0, 5, 70, 100, 64 + 3])
    src = torch.tensor([100, 90, 2, 20, 1])
    pat = layout.Pattern.from_edges(n, torch.cat([dst, torch.arange(n)]), torch.cat([src, torch.arange(n)]))
    ref = layout.reform(pat, [64, 64], "1", block=b, offset=0)  # p = 1: every pair with edges is reformed
    # pairs with edges: (0,1) has 2, (1,0) has 3, and the diagonals hold the self-loops only (kept)
    assert ref.pairs_reformed == 2 and ref.blocks_placed == 2 * (0 + 1)
    off_diagonal = ref.pattern.nnz - n
    assert off_diagonal == ref.blocks_placed * b * b  # aligned regions: every placed tile is full, no overlap
    tiles = layout.BlockLayout.from_pattern(ref.pattern, b)
    assert int(tiles.masks.sum()) == ref.pattern.nnz
    kept = layout.reform(pat, [64, 64], 0.0, block=b, offset=0)  # threshold 0: every pair keeps its edges
    assert kept.pairs_reformed == 0 and torch.equal(kept.pattern.dst, pat.dst)


def test_ecr_changes_the_training_pattern_but_keeps_self_loops_and_the_global_token():
    g, pat = _pattern(400)
    order, sizes = layout.metis_order(g.edge_index, 400, 8)
    pat = layout.sequence_pattern(layout.relabel(g.edge_index, order), 400, True)
    ref = layout.reform(pat, sizes, "1")
    exact = set(zip(pat.dst.tolist(), pat.src.tolist()))
    new = set(zip(ref.pattern.dst.tolist(), ref.pattern.src.tolist()))
    assert new != exact
    assert all((i, i) in new for i in range(401)) and all((0, j) in new and (j, 0) in new for j in range(401))


def test_dual_interleaved_schedule():
    assert train.dense_steps(8, 2) == {3, 7}
    assert train.dense_steps(5, 5) == set(range(5))
    assert train.dense_steps(3, 5) == {0, 1, 2}


@pytest.mark.parametrize("size,density,d", [(40, 0.1, 16), (64, 0.3, 8), (100, 0.05, 32)])
def test_triton_block_kernel_matches_the_reference(size, density, d):
    from repro.kernels.block_sparse_attention import block_sparse_attention_reference, block_sparse_attention_triton

    gen = torch.Generator().manual_seed(size)
    mask = torch.rand(size, size, generator=gen) < density
    mask[torch.arange(size), torch.arange(size)] = True
    mask[size // 2] = False  # a query with no key at all: output 0
    dst, src = torch.nonzero(mask, as_tuple=True)
    tiles = layout.BlockLayout.from_pattern(layout.Pattern.from_edges(size, dst, src), 16)
    q, k, v = (torch.randn(2, size, d, generator=gen) for _ in range(3))
    args = (tiles.row_ptr, tiles.col_idx, tiles.masks, 16)
    ref = block_sparse_attention_reference(q, k, v, *args)
    out = block_sparse_attention_triton(q, k, v, *args)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert out[:, size // 2].abs().max() == 0


def test_model_shapes_and_a_training_step_reduces_the_loss():
    g, pat = _pattern(200)
    model = GraphTransformer(g.x.shape[1], g.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    attend = Attend("sparse", pattern=pat)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(g.x, attend), g.y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert model(g.x, attend).shape == (200, g.num_classes) and losses[-1] < losses[0]
    gt = GraphTransformer(g.x.shape[1], g.num_classes, kind="gt")
    assert gt(g.x, Attend("sparse", pattern=layout.sequence_pattern(g.edge_index, 200, False))).shape == (200, 8)


def test_ulysses_sequence_parallel_matches_single_process():
    from repro.torchgt import parallel

    g, pat = _pattern(128, token=False)
    torch.manual_seed(0)
    layer = MultiHeadAttention(32, 4)
    x = torch.randn(128, 32)
    cases = [(x, Attend("sparse", pattern=pat)), (x, Attend("dense"))]
    outs = parallel.run_ulysses(cases, layer, 2)
    for (xi, attend), (out, sent) in zip(cases, outs):
        with torch.no_grad():
            torch.testing.assert_close(out, layer(xi, attend), atol=1e-5, rtol=1e-5)
        assert sent == parallel.analytic_volume(128, 32, 4, 2).ulysses
    with pytest.raises(ValueError, match="pad"):
        parallel.run_ulysses([(torch.randn(127, 32), Attend("dense"))], layer, 2)
