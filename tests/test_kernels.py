"""The Triton kernels of the chapters against their plain-torch references: block-sparse attention (TorchGT) and the
SiLU cross-attention with adaptive drop (ADEM-VL); the Low-bit Module's are in test_lowbit.py. Every tensor is created
on the ``kernel_device`` fixture's device: the interpreter on CPU, natively on CUDA."""
import os

import pytest
import torch

from repro.kernels import block_sparse_attention as bsa
from repro.kernels import silu_cross_attention as sca
from repro.torchgt import layout


# ------------------------------------------------------------------------------------- block-sparse attention
def _block_case(size, density, d, device, heads=2, seed=None):
    gen = torch.Generator().manual_seed(size if seed is None else seed)
    mask = torch.rand(size, size, generator=gen) < density
    mask[torch.arange(size), torch.arange(size)] = True
    mask[size // 2] = False  # a query with no key at all: output 0
    dst, src = torch.nonzero(mask, as_tuple=True)
    tiles = layout.BlockLayout.from_pattern(layout.Pattern.from_edges(size, dst, src), 16)
    q, k, v = (torch.randn(heads, size, d, generator=gen).to(device) for _ in range(3))
    args = (tiles.row_ptr.to(device), tiles.col_idx.to(device), tiles.masks.to(device), 16)
    return q, k, v, args


@pytest.mark.parametrize("size,density,d", [(40, 0.1, 16), (64, 0.3, 8), (100, 0.05, 32)])
def test_triton_block_kernel_matches_the_reference(size, density, d, kernel_device):
    q, k, v, args = _block_case(size, density, d, kernel_device)
    ref = bsa.block_sparse_attention_reference(q, k, v, *args)
    out = bsa.block_sparse_attention_triton(q, k, v, *args)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    assert out[:, size // 2].abs().max() == 0


def test_triton_block_kernel_gives_the_reference_gradients_not_zeros(kernel_device):
    q, k, v, args = _block_case(37, 0.2, 8, kernel_device)
    grads = []
    for fn in (bsa.block_sparse_attention_reference, bsa.block_sparse_attention_triton):
        leaves = [t.clone().requires_grad_() for t in (q, k, v)]
        (fn(*leaves, *args) ** 2).sum().backward()
        grads.append([t.grad for t in leaves])
    for ref, got in zip(*grads):
        assert got.abs().max() > 0
        torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # no autograd: the bare kernel
        assert bsa.block_sparse_attention_triton(q.requires_grad_(), k, v, *args).grad_fn is None


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_triton_block_kernel_in_half_precision_is_close_to_the_fp32_reference(dtype, kernel_device):
    if dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("the Triton interpreter (numpy) has no bf16: it reads garbage; run natively on a GPU")
    q, k, v, args = _block_case(48, 0.3, 16, kernel_device, heads=1)
    ref = bsa.block_sparse_attention_reference(q, k, v, *args)
    out = bsa.block_sparse_attention_triton(q.to(dtype), k.to(dtype), v.to(dtype), *args)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("row, head, col, tile", [(0, 0, 0, 0), (9_000_000, 3, 8_999_999, 9_000_000),
                                                  (65_535, 7, 65_535, 2**31 - 1)])
def test_block_kernel_offsets_are_int64(row, head, col, tile, kernel_device):
    """The kernel's index arithmetic past int32 (tiles past 8.4M, H * S * D >= 2^31) without allocating: int32 wraps
    under the interpreter as on the GPU."""
    seq, dim, block = 2**24, 64, 16  # H * S * D = 2^30 per head
    got = bsa.tile_offsets(row, head, col, tile, seq, dim, block, kernel_device)
    base = head * seq * dim
    assert got == [base + ((row + 1) * block - 1) * dim + dim - 1, base + ((col + 1) * block - 1) * dim + dim - 1,
                   (tile + 1) * block * block - 1]


def test_triton_block_kernel_in_tf32_is_close_to_the_reference(kernel_device):
    q, k, v, args = _block_case(40, 0.2, 16, kernel_device)
    out = bsa.block_sparse_attention_triton(q, k, v, *args, precision="tf32")
    torch.testing.assert_close(out, bsa.block_sparse_attention_reference(q, k, v, *args), atol=1e-2, rtol=1e-2)


def test_block_kernel_rejects_unknown_precision(kernel_device):
    q, k, v, args = _block_case(20, 0.2, 8, kernel_device, heads=1)
    with pytest.raises(ValueError, match="precision"):
        bsa.block_sparse_attention_triton(q, k, v, *args, precision="fast")


# ------------------------------------------------------------------ SiLU cross-attention with adaptive drop
def _silu_case(b, t, nv, d, device, seed=None):
    gen = torch.Generator().manual_seed(nv if seed is None else seed)
    return [torch.randn(b, n, d, generator=gen).to(device) for n in (t, nv, nv)]


@pytest.mark.parametrize("b,t,nv,d,gamma", [(2, 20, 80, 32, 0.1), (1, 7, 20, 8, 0.3), (3, 33, 64, 16, 0.0)])
def test_fused_kernel_matches_the_reference(b, t, nv, d, gamma, kernel_device):
    q, k, v = _silu_case(b, t, nv, d, kernel_device)
    torch.testing.assert_close(sca.silu_drop_attention_triton(q, k, v, gamma),
                               sca.silu_drop_attention_reference(q, k, v, gamma), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("select", [False, True], ids=["sort", "select-in-passes"])
@pytest.mark.parametrize("b,t,nv,d,gamma", [(1, 19, 50, 40, 0.3), (2, 5, 33, 17, 0.1), (1, 3, 16, 48, 0.0)])
def test_fused_kernel_chunk_loops_match_the_reference(b, t, nv, d, gamma, select, kernel_device):
    """16-wide key and dimension chunks, so that d = 40 takes three chunks with a tail and Nv = 50 four; the
    threshold by one sort of the row or by the exact selection in passes over the key chunks (``sort_max=0``)."""
    q, k, v = _silu_case(b, t, nv, d, kernel_device)
    out = sca.silu_drop_attention_triton(q, k, v, gamma, block_t=16, block_n=16, block_d=16,
                                         sort_max=0 if select else 512)
    torch.testing.assert_close(out, sca.silu_drop_attention_reference(q, k, v, gamma), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("select", [False, True], ids=["sort", "select-in-passes"])
def test_fused_kernel_threshold_with_ties_and_negative_scores(select, kernel_device):
    """Keys repeated (ties at the threshold keep every tied entry, as the reference) and scores of both signs, large
    ones included (the sort's padding is finite, so no inf * 0 = NaN)."""
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(1, 6, 16, generator=gen)
    q[0, 0] *= 30.0
    k = torch.randn(1, 6, 16, generator=gen).repeat(1, 4, 1)  # Nv = 24: every key four times
    v = torch.randn(1, 24, 16, generator=gen)
    q, k, v = (x.to(kernel_device) for x in (q, k, v))
    out = sca.silu_drop_attention_triton(q, k, v, 0.3, block_n=16, block_d=16, sort_max=0 if select else 512)
    ref = sca.silu_drop_attention_reference(q, k, v, 0.3)
    assert not out.isnan().any()
    torch.testing.assert_close(out, ref, atol=1e-3, rtol=1e-4)


def test_fused_kernel_rejects_block_sizes_tl_dot_cannot_take(kernel_device):
    q, k, v = _silu_case(1, 4, 8, 8, kernel_device)
    with pytest.raises(ValueError, match="block_d"):
        sca.silu_drop_attention_triton(q, k, v, block_d=8)
