"""TorchGT: attention variants against the dense reference, the reorder, ECR, the Triton kernel and Ulysses."""
from dataclasses import replace

import pytest
import torch

from repro import graphs as shared_graphs
from repro.torchgt import attention, layout, train
from repro.torchgt.model import Attend, GraphTransformer, MultiHeadAttention


def _pattern(n=300, seed=0, token=True):
    g = shared_graphs.sbm(n, seed=seed)
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
    g = shared_graphs.sbm(1000, seed=1)
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
    for ranks in (2, 4):
        outs = parallel.run_ulysses(cases, layer, ranks)
        vol = parallel.analytic_volume(128, 32, 4, ranks)
        for (xi, attend), t in zip(cases, outs):
            with torch.no_grad():
                torch.testing.assert_close(t.out, layer(xi, attend), atol=1e-5, rtol=1e-5)
            assert t.sent_elements == vol.ulysses
            if t.ulysses_bytes is not None:  # measured on the sockets: the payload plus gloo's headers
                assert t.ulysses_bytes == 4 * vol.ulysses + 4 * t.a2a_overhead
                assert t.kv_allgather_bytes == 4 * vol.kv_allgather + 2 * t.gather_overhead
        assert vol.kv_allgather / vol.ulysses == ranks / 2  # equal at P = 2, Ulysses lighter from P = 4
    with pytest.raises(ValueError, match="pad"):
        parallel.run_ulysses([(torch.randn(127, 32), Attend("dense"))], layer, 2)


def test_written_bytes_counts_what_the_process_writes(tmp_path):
    from repro.torchgt import parallel

    before = parallel.written_bytes()
    if before is None:
        pytest.skip("no /proc/self/io")
    (tmp_path / "f").write_bytes(b"x" * 10_000)
    assert parallel.written_bytes() - before >= 10_000


def test_spd_buckets_and_the_spatial_bias_of_full_attention():
    # a path 0-1-2-3 and an isolated node 4
    edges = torch.tensor([[0, 1, 1, 2, 2, 3], [1, 0, 2, 1, 3, 2]])
    spd = train.spd_buckets(edges, 5, global_token=False, max_distance=2)
    assert spd[0].tolist() == [0, 1, 2, 3, 3] and spd[4, 4] == 0 and spd[4, 0] == 3
    with_token = train.spd_buckets(edges, 5, global_token=True, max_distance=2)
    assert with_token.shape == (6, 6) and (with_token[0] == 4).all() and (with_token[:, 0] == 4).all()
    assert torch.equal(with_token[1:, 1:], spd)
    g, pat = _pattern(60)
    spd = train.spd_buckets(g.edge_index, 60, global_token=True)
    model = GraphTransformer(g.x.shape[1], g.num_classes)
    plain = model(g.x, Attend("sdpa"))
    with torch.no_grad():
        model.spatial.weight.zero_()
    model.eval()
    torch.testing.assert_close(model(g.x, Attend("sdpa", spd=spd)), model(g.x, Attend("sdpa")))  # zero bias
    with torch.no_grad():
        model.spatial.weight.normal_()
    biased = model(g.x, Attend("sdpa", spd=spd))
    assert not torch.allclose(biased, model(g.x, Attend("sdpa")))
    # the bias enters the scores the same way in the explicit softmax and in SDPA
    q, k, v = _qkv(8, 61, 8)
    bias = torch.randn(8, 61, 61, dtype=torch.float64)
    torch.testing.assert_close(attention.dense_attention(q, k, v, bias=bias), attention.sdpa_attention(q, k, v, bias))
    with pytest.raises(ValueError, match="full attention"):
        Attend("sparse", pattern=pat, spd=spd)
    assert plain.shape == biased.shape


def test_the_spatial_encoding_does_not_change_the_other_variants_initial_weights():
    torch.manual_seed(3)
    a = GraphTransformer(10, 3)
    after_a = torch.rand(1)
    torch.manual_seed(3)
    layer = torch.nn.Linear(10, 64)  # the first weights drawn are the embedding's, whatever follows
    assert torch.equal(a.embed.weight, layer.weight)
    torch.manual_seed(3)
    GraphTransformer(10, 3)
    assert torch.equal(torch.rand(1), after_a)


def test_full_attention_trains_with_the_distance_bias():
    g = shared_graphs.sbm(300, seed=2)
    g = replace(g, train_mask=torch.ones(300, dtype=torch.bool), val_mask=torch.ones(300, dtype=torch.bool),
                test_mask=torch.ones(300, dtype=torch.bool))
    seqs = train.make_sequences(g, 150, 0, with_spd=True)
    assert all(s.spd is not None and s.spd.shape == (s.x.shape[0] + 1,) * 2 for s in seqs)
    hist = train.train(seqs, "full", g.num_classes, 0, epochs=2, eval_every=1)
    assert len(hist.test) == 2
    with pytest.raises(ValueError, match="with_spd"):
        train.train(train.make_sequences(g, 150, 0), "full", g.num_classes, 0, epochs=1)


def test_claims_comply_with_the_scoreboard_policy_and_judge_equivalence_two_sided():
    import pandas as pd

    from repro.claims import NOT_TESTED, REPRODUCED, policy_errors
    from repro.torchgt import report

    sizes = [1024, 2048, 4096]
    rows = []
    for s in sizes:
        for variant, ms, mb in (("dense", 1e-6 * s * s, 1e-5 * s * s), ("sdpa", 1e-6 * s * s, 1e-5 * s * s),
                                ("sparse-random", 1e-3 * s, 1e-3 * s), ("sparse-metis", 1e-3 * s, 1e-3 * s),
                                ("block-ecr", 5e-4 * s, 1e-3 * s), ("block-ecr-p1", 5e-4 * s, 1e-3 * s)):
            rows.append({"variant": variant, "S": s, "ms": ms, "measured_mb": mb})
    bench = pd.DataFrame(rows)
    acc = []
    for graph in ("cora", "sbm"):
        for seed, full in enumerate((80.0, 81.0, 79.0)):
            acc.append({"graph": graph, "variant": "full", "seed": seed, "test": full})
            acc.append({"graph": graph, "variant": "sparse", "seed": seed, "test": full + 0.1 * (seed - 1)})
            acc.append({"graph": graph, "variant": "dual", "seed": seed, "test": full})
            # far better than full: a one-sided test would call this reproduced, equivalence does not
            acc.append({"graph": graph, "variant": "ecr", "seed": seed, "test": full + (10 if graph == "sbm" else 0)})
    par = []
    for p in (2, 4):
        for order, cut in (("random", 100), ("metis", 20)):
            vol = 4 * 4096 * 64 * (p - 1) / p**2 * 4
            par.append({"order": order, "P": p, "max_abs_error": 1e-7, "edge_cut": cut,
                        "ulysses_bytes": vol + 4 * p, "ulysses_formula_bytes": vol, "ulysses_overhead_bytes": 4 * p,
                        "kv_allgather_bytes": vol * p / 2 + 2 * p, "kv_formula_bytes": vol * p / 2,
                        "kv_overhead_bytes": 2 * p})
    step = {"dense": 2.0, "torchgt (METIS + ECR tiles)": 0.5}
    cl = report.claims(bench, pd.DataFrame(acc), pd.DataFrame(par), step, 4096, 1024.0)
    assert all(not policy_errors(c) for c in cl), [(c.id, policy_errors(c)) for c in cl]
    by_id = {c.id: c for c in cl}
    assert by_id["t3_accuracy_cora"].verdict == REPRODUCED
    assert by_id["t3_accuracy_sbm"].verdict != REPRODUCED and "ecr" in by_id["t3_accuracy_sbm"].statement
    assert by_id["t1_dense_growth"].kind == "check" and by_id["t4_ulysses_volume"].kind == "check"
    assert by_id["t4_vs_kv_allgather"].measured == pytest.approx(2.0, rel=1e-3)
    assert by_id["t4_ulysses_volume"].verdict == "check passed"
    assert by_id["t1_sparse_vs_sdpa"].measured == pytest.approx(1.0)
    # smoke-like: two dense sizes, one seed, P = 2 only -> not tested, never a verdict from too little
    small = report.claims(bench[bench.S < 4096], pd.DataFrame(acc)[lambda d: d.seed == 0],
                          pd.DataFrame(par)[lambda d: d.P == 2], step, 2048, 1024.0)
    by_id = {c.id: c for c in small}
    for cid in ("t2_max_length", "t3_accuracy_cora", "t4_vs_kv_allgather", "t1_sparse_vs_sdpa", "t1_dense_growth"):
        assert by_id[cid].verdict == NOT_TESTED, cid
