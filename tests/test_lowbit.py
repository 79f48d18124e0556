"""The Low-bit Module: Triton kernels against the torch reference (interpreter on CPU, natively on CUDA: the
``kernel_device`` fixture), and the quantiser's properties: range, unbiasedness, constant rows, wire size."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from repro.kernels import lowbit

SHAPES = [(1, 1), (7, 5), (8, 16), (33, 64), (130, 128)]


def _inputs(n, width, seed=0, constant_row=True, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, width, generator=g) * torch.rand(n, 1, generator=g) * 4
    if constant_row:
        x[0] = 0.75
    return x.to(device), torch.rand(n, width, generator=g).to(device), g


@pytest.mark.parametrize("bits", lowbit.BITS)
@pytest.mark.parametrize("n, width", SHAPES)
def test_quantize_kernel_is_bit_exact_against_reference(bits, n, width, kernel_device):
    x, noise, _ = _inputs(n, width, seed=n * width + bits, device=kernel_device)
    for ref, got in zip(lowbit.quantize_pack_reference(x, bits, noise), lowbit.quantize_pack_triton(x, bits, noise)):
        assert ref.dtype == got.dtype and torch.equal(ref, got)


@pytest.mark.parametrize("bits", lowbit.BITS)
@pytest.mark.parametrize("n, width", SHAPES)
def test_dequantize_scatter_add_kernel_is_bit_exact_against_reference(bits, n, width, kernel_device):
    x, noise, g = _inputs(n, width, seed=bits, device=kernel_device)
    message = lowbit.quantize_pack_reference(x, bits, noise)
    index = torch.randperm(n + 3, generator=g)[:n].to(kernel_device)
    base = torch.randn(n + 3, width, generator=g).to(kernel_device)
    ref = lowbit.dequantize_scatter_add_reference(*message, bits, index, base.clone())
    got = lowbit.dequantize_scatter_add_triton(*message, bits, index, base.clone())
    assert torch.equal(ref, got)


def test_scatter_add_accumulates_repeated_destinations(kernel_device):
    x, noise, _ = _inputs(16, 8, constant_row=False, device=kernel_device)
    message = lowbit.quantize_pack_reference(x, 2, noise)
    index = torch.tensor([0, 1] * 8, device=kernel_device)
    ref = lowbit.dequantize_scatter_add_reference(*message, 2, index, torch.zeros(2, 8, device=kernel_device))
    got = lowbit.dequantize_scatter_add_triton(*message, 2, index, torch.zeros(2, 8, device=kernel_device))
    torch.testing.assert_close(got, ref)  # atomics may add in another order


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 20), width=st.integers(1, 40), bits=st.sampled_from(lowbit.BITS), seed=st.integers(0, 99))
def test_dequantised_values_stay_in_the_row_range(n, width, bits, seed, kernel_device):
    x, noise, _ = _inputs(n, width, seed, constant_row=False, device=kernel_device)
    packed, mn, step = lowbit.quantize_pack_triton(x, bits, noise)
    y = lowbit.dequantize_reference(packed, mn, step, bits)
    lo, hi = mn.float()[:, None], (mn.float() + lowbit.levels(bits) * step.float())[:, None]
    assert torch.all(y >= lo) and torch.all(y <= hi)
    # the fp16 range brackets the true row range up to fp16 rounding
    slack = 2e-3 * (x.abs().amax(1, keepdim=True) + 1)
    assert torch.all(lo <= x.amin(1, keepdim=True) + slack) and torch.all(hi >= x.amax(1, keepdim=True) - slack)
    assert packed.shape == (lowbit.packed_rows(n, bits), width)


@pytest.mark.parametrize("bits", [1, 2, 8])
def test_quantiser_is_unbiased(bits):
    g = torch.Generator().manual_seed(bits)
    x = torch.randn(1, 64, generator=g)
    draws = 4000
    packed, mn, step = lowbit.quantize_pack_reference(x.expand(draws, 64), bits, torch.rand(draws, 64, generator=g))
    mean = lowbit.dequantize_reference(packed, mn, step, bits).mean(0)
    # the per-draw variance is at most step^2 / 4, so the mean's error is below 5 sigma = 2.5 step / sqrt(draws);
    # fp16 rounding of min and step adds a bias of about 1e-3 of the range
    bound = 2.5 * step.float()[0] / draws**0.5 + 2e-3 * (x.max() - x.min())
    assert float((mean - x[0]).abs().max()) < float(bound)


def test_in_kernel_random_stream_is_unbiased_too(kernel_device):
    x = torch.linspace(-1, 1, 32, device=kernel_device).expand(256, 32).contiguous()
    packed, mn, step = lowbit.quantize_pack_triton(x, 1, None, seed=5)
    mean = lowbit.dequantize_reference(packed, mn, step, 1).mean(0)
    assert float((mean - x[0]).abs().max()) < 0.25  # 5 sigma for 256 one-bit draws over a range of 2


@pytest.mark.parametrize("backend", ["reference", "triton"])
def test_constant_rows_dequantise_exactly_without_nan(backend, kernel_device):
    x = torch.full((9, 6), -2.5, device=kernel_device)
    x[3] = 0.0
    fn = lowbit.quantize_pack_triton if backend == "triton" else lowbit.quantize_pack_reference
    packed, mn, step = fn(x, 1, torch.rand(9, 6, device=kernel_device))
    y = lowbit.dequantize_reference(packed, mn, step, 1)
    assert not torch.isnan(y).any() and torch.equal(y, x)


@pytest.mark.parametrize("bits", lowbit.BITS)
def test_message_bytes_is_the_encoded_size(bits):
    from repro.sylvie.exchange import Codec

    for n, width in [(1, 3), (9, 16), (64, 128)]:
        encoded = Codec(bits).encode(torch.randn(n, width))
        assert encoded.numel() == lowbit.message_bytes(n, width, bits)
    assert lowbit.message_bytes(8, 256, 1) * 28 < lowbit.message_bytes(8, 256, 32)


def test_fp32_codec_round_trips_exactly():
    from repro.sylvie.exchange import Codec

    x = torch.randn(5, 7)
    out = torch.zeros(5, 7)
    Codec(32).decode_add(Codec(32).encode(x), 5, out, torch.arange(5))
    assert torch.equal(out, x)


def test_triton_codec_round_trips_through_a_message(kernel_device):
    from repro.sylvie.exchange import Codec

    x = torch.randn(20, 12, device=kernel_device)
    codec = Codec(2, backend="triton", generator=torch.Generator().manual_seed(1))
    message = codec.encode(x)
    assert message.numel() == lowbit.message_bytes(20, 12, 2)
    out = torch.zeros(20, 12, device=kernel_device)
    codec.decode_add(message, 20, out, torch.arange(20, device=kernel_device))
    step = (x.amax(1) - x.amin(1)) / 3
    assert torch.all((out - x).abs() <= step[:, None] * 1.01 + 1e-3)


@pytest.mark.parametrize("bits", [1, 8])
@pytest.mark.parametrize("group, width", [(0, 5), (2**28, 4096), (2**31 - 1, 3), (70_000_000, 40)])
def test_kernel_offsets_are_int64_past_two_to_the_31(group, width, bits, kernel_device):
    """The kernels' index arithmetic (``_row_offsets``) at packed rows whose offsets pass 2^31, without allocating
    them: int32 would wrap (the interpreter wraps like the GPU)."""
    r = lowbit.rows_per_byte(bits)
    got = lowbit.row_offsets(group, width, bits, kernel_device).cpu()
    rows = torch.arange(r, dtype=torch.int64) + group * r
    cols = torch.arange(got.shape[1], dtype=torch.int64)
    assert torch.equal(got[:r], rows[:, None] * width + cols[None, :])
    assert torch.equal(got[r], group * width + cols)
    if group * r * width >= 2**31:
        assert int(got.max()) >= 2**31


def test_benchmark_reports_bandwidth_on_cpu_through_the_references():
    table = lowbit.benchmark(256, 8, 2, "cpu")
    assert set(table) == {"torch quantise", "torch dequantise+scatter"}
    assert all(row["ms"] > 0 and row["GB/s"] > 0 for row in table.values())
