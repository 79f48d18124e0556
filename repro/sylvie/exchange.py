"""The halo exchange of partition-parallel training, as Sylvie, PipeGCN, BNS-GCN and the fp32 baseline do it.

Every layer >= 1 needs, forward, the current features of the neighbours that other ranks own (the halo) and,
backward, sends the gradient of those halo rows back to their owners, who add it to their boundary rows.

* synchronous (vanilla, BNS-GCN, Sylvie-S): a blocking exchange inside the layer, forward and backward;
* pipelined (PipeGCN, Sylvie-A): the layer uses the halo features and boundary gradients that arrived from the
  previous epoch (staleness 1), while this epoch's are sent with async gloo ops that overlap the compute;
* bounded staleness (Sylvie's adaptor, ``--fixed-synchro k``): every epoch with (epoch + 1) % k == 0 runs
  synchronously, which bounds the staleness;
* BNS-GCN: each epoch, each sender keeps a random fraction p of its boundary rows (both sides draw the same sample
  from a shared seed, so no ids travel), and the receiver drops the rest from its aggregation.

Messages at ``bits`` < 32 go through the Low-bit Module (``repro.kernels.lowbit``). Bytes are counted at the send
call, from the buffer actually handed to ``isend``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.distributed as dist

from repro.kernels import lowbit
from repro.sylvie.partition import RankGraph

FEATURE_TAG, GRADIENT_TAG, EVAL_TAG = 0, 1000, 2000


def _sync(device) -> None:
    """Wait for the device's queued kernels (a no-op on CPU), so that wall-clock codec timings are real."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Method:
    """One way of exchanging halos. ``staleness_bound`` k > 0 forces a synchronous epoch every k epochs."""

    name: str
    bits: int = 32
    pipeline: bool = False
    staleness_bound: int = 0
    bns_rate: float | None = None

    def __post_init__(self):
        if self.bits not in (1, 2, 4, 8, 32):
            raise ValueError(f"bits must be 1, 2, 4, 8 or 32, got {self.bits}")
        if self.bns_rate is not None and self.pipeline:
            raise ValueError("BNS-GCN is synchronous; do not combine bns_rate with pipeline")

    def synchronous(self, epoch: int) -> bool:
        if not self.pipeline:
            return True
        return self.staleness_bound > 0 and (epoch + 1) % self.staleness_bound == 0


@dataclass
class EpochStats:
    bytes_forward: int = 0
    bytes_backward: int = 0
    wait_s: float = 0.0  # time blocked on halo communication
    codec_s: float = 0.0  # quantise + dequantise time
    synchronous: bool = True


@dataclass
class _Pending:
    requests: list
    buffers: dict[int, torch.Tensor]  # peer -> receive buffer
    rows: dict[int, torch.Tensor]  # peer -> destination rows of the received values


@dataclass
class Codec:
    """Encodes rows into one flat uint8 message and decodes it, at ``bits`` (32 = raw fp32)."""

    bits: int
    backend: str = "torch"  # "torch" reference or "triton" kernels
    generator: torch.Generator | None = None

    def message_bytes(self, n: int, width: int) -> int:
        return lowbit.message_bytes(n, width, self.bits)

    def encode(self, rows: torch.Tensor) -> torch.Tensor:
        rows = rows.contiguous().float()
        if self.bits == 32:
            return rows.view(torch.uint8).flatten()
        if self.backend == "triton":
            seed = (int(torch.randint(0, 2**31 - 1, (1,), generator=self.generator, device=self.generator.device))
                    if self.generator else 0)
            packed, mn, step = lowbit.quantize_pack_triton(rows, self.bits, None, seed=seed)
        else:
            noise = torch.rand(rows.shape, generator=self.generator, device=rows.device)
            packed, mn, step = lowbit.quantize_pack_reference(rows, self.bits, noise)
        return torch.cat([packed.flatten(), mn.view(torch.uint8), step.view(torch.uint8)])

    def decode_add(self, message: torch.Tensor, n: int, out: torch.Tensor, index: torch.Tensor) -> None:
        """out[index[i]] += decoded row i."""
        width = out.shape[1]
        if self.bits == 32:
            out.index_add_(0, index, message.view(torch.float32).view(n, width))
            return
        body = lowbit.packed_rows(n, self.bits) * width
        packed = message[:body].view(-1, width)
        mn = message[body: body + 2 * n].view(torch.float16)
        step = message[body + 2 * n: body + 4 * n].view(torch.float16)
        if self.backend == "triton":
            lowbit.dequantize_scatter_add_triton(packed, mn, step, self.bits, index, out)
        else:
            lowbit.dequantize_scatter_add_reference(packed, mn, step, self.bits, index, out)


class HaloExchange:
    """Per-rank state of the halo exchange for one training run. Call ``begin_epoch`` before each epoch and
    use the instance as ``exchange(layer, h) -> halo`` inside the model's forward."""

    def __init__(self, rg: RankGraph, method: Method, width: int, layers: int, seed: int,
                 backend: str = "torch", wire_device: str = "cpu"):
        self.rg, self.method, self.width, self.seed = rg, method, width, seed
        self.device = rg.x.device
        self.wire_device = torch.device(wire_device)
        gen = torch.Generator(device=self.device).manual_seed(seed * 7919 + rg.rank)
        self.codec = Codec(method.bits, backend, gen)
        self.fp32 = Codec(32)
        self.peers = [s for s in range(rg.world) if s != rg.rank]
        comm_layers = range(1, layers)
        self.halo_features = {k: torch.zeros(rg.n_halo, width, device=self.device) for k in comm_layers}
        self.boundary_grads = {k: torch.zeros(rg.n_inner, width, device=self.device) for k in comm_layers}
        self.pending_features: dict[int, _Pending] = {}
        self.pending_grads: dict[int, _Pending] = {}
        self.send_keep = {s: torch.ones(len(rg.send_index[s]), dtype=torch.bool) for s in self.peers}
        self.recv_keep = {s: torch.ones(rg.halo_rows(s).stop - rg.halo_rows(s).start, dtype=torch.bool)
                          for s in self.peers}
        self.stats = EpochStats()
        self.epoch = 0

    # ------------------------------------------------------------------ epoch control
    def begin_epoch(self, epoch: int) -> EpochStats:
        self.epoch = epoch
        self.stats = EpochStats(synchronous=self.method.synchronous(epoch))
        if self.stats.synchronous:
            self._drain()  # a fresh blocking exchange replaces what the pipeline had in flight
        if self.method.bns_rate is not None:
            self._sample_boundary(epoch)
        return self.stats

    def halo_keep(self) -> torch.Tensor | None:
        """BNS-GCN: which halo rows were sampled this epoch (None: all of them)."""
        if self.method.bns_rate is None:
            return None
        keep = torch.zeros(self.rg.n_halo, dtype=torch.bool)
        for s in self.peers:
            keep[self.rg.halo_rows(s)] = self.recv_keep[s]
        return keep

    def _sample_boundary(self, epoch: int) -> None:
        p = self.method.bns_rate
        for s in self.peers:
            # sender r and receiver s seed the same generator for the (r -> s) sample, so no ids travel
            out_gen = torch.Generator().manual_seed(hash((self.seed, epoch, self.rg.rank, s)) % 2**62)
            in_gen = torch.Generator().manual_seed(hash((self.seed, epoch, s, self.rg.rank)) % 2**62)
            self.send_keep[s] = torch.rand(len(self.send_keep[s]), generator=out_gen) < p
            self.recv_keep[s] = torch.rand(len(self.recv_keep[s]), generator=in_gen) < p

    def finish(self) -> None:
        self._drain()

    def _drain(self) -> None:
        for pending in list(self.pending_features.values()) + list(self.pending_grads.values()):
            for req in pending.requests:
                req.wait()
        self.pending_features.clear()
        self.pending_grads.clear()

    # ------------------------------------------------------------------ transport
    def _post(self, tag: int, outgoing: dict[int, torch.Tensor], incoming: dict[int, int], codec: Codec,
              count: str | None) -> tuple[list, dict[int, torch.Tensor]]:
        """Post irecv for every peer's message and isend ours. ``incoming[s]`` is the row count from s."""
        requests, buffers = [], {}
        for s, n in incoming.items():
            if n:
                buffers[s] = torch.empty(codec.message_bytes(n, self.width), dtype=torch.uint8,
                                         device=self.wire_device)
                requests.append(dist.irecv(buffers[s], src=s, tag=tag))
        for s, rows in outgoing.items():
            if rows.shape[0]:
                _sync(rows.device)  # CUDA kernels run asynchronously: time them, not their launch
                t0 = time.perf_counter()
                message = codec.encode(rows).to(self.wire_device)
                _sync(rows.device)
                self.stats.codec_s += time.perf_counter() - t0 if codec is self.codec else 0.0
                if count:
                    setattr(self.stats, count, getattr(self.stats, count) + message.numel() * message.element_size())
                requests.append(dist.isend(message, dst=s, tag=tag))
        return requests, buffers

    def _complete(self, requests: list, buffers: dict[int, torch.Tensor], codec: Codec,
                  rows: dict[int, torch.Tensor], out: torch.Tensor, timed: bool = True) -> torch.Tensor:
        t0 = time.perf_counter()
        for req in requests:
            req.wait()
        if timed:
            self.stats.wait_s += time.perf_counter() - t0
        _sync(self.device)
        t0 = time.perf_counter()
        for s, message in buffers.items():
            codec.decode_add(message.to(self.device), len(rows[s]), out, rows[s])
        _sync(self.device)
        if codec is self.codec:
            self.stats.codec_s += time.perf_counter() - t0
        return out

    def _feature_plan(self, h: torch.Tensor, all_rows: bool = False):
        rg = self.rg
        outgoing, incoming, rows = {}, {}, {}
        for s in self.peers:
            send = rg.send_index[s] if all_rows else rg.send_index[s][self.send_keep[s]]
            outgoing[s] = h[send]
            halo = torch.arange(rg.halo_rows(s).start, rg.halo_rows(s).stop, device=h.device)
            rows[s] = halo if all_rows else halo[self.recv_keep[s].to(h.device)]
            incoming[s] = len(rows[s])
        return outgoing, incoming, rows

    def _grad_plan(self, grad_halo: torch.Tensor):
        rg = self.rg
        outgoing, incoming, rows = {}, {}, {}
        for s in self.peers:
            halo = torch.arange(rg.halo_rows(s).start, rg.halo_rows(s).stop, device=grad_halo.device)
            outgoing[s] = grad_halo[halo[self.recv_keep[s].to(halo.device)]]
            rows[s] = rg.send_index[s][self.send_keep[s]].to(grad_halo.device)
            incoming[s] = len(rows[s])
        return outgoing, incoming, rows

    def _blocking(self, tag, outgoing, incoming, rows, out, count) -> None:
        """A synchronous exchange: everything it spends outside the codec counts as blocked communication."""
        t0, codec0 = time.perf_counter(), self.stats.codec_s
        reqs, bufs = self._post(tag, outgoing, incoming, self.codec, count)
        self._complete(reqs, bufs, self.codec, rows, out, timed=False)
        self.stats.wait_s += time.perf_counter() - t0 - (self.stats.codec_s - codec0)

    # ------------------------------------------------------------------ the four halves
    def sync_features(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        outgoing, incoming, rows = self._feature_plan(h)
        halo = torch.zeros(self.rg.n_halo, self.width, device=self.device)
        self._blocking(FEATURE_TAG + layer, outgoing, incoming, rows, halo, "bytes_forward")
        self.halo_features[layer] = halo
        return halo

    def sync_gradients(self, layer: int, grad_halo: torch.Tensor) -> torch.Tensor:
        outgoing, incoming, rows = self._grad_plan(grad_halo)
        grads = torch.zeros(self.rg.n_inner, self.width, device=self.device)
        self._blocking(GRADIENT_TAG + layer, outgoing, incoming, rows, grads, "bytes_backward")
        self.boundary_grads[layer] = grads
        return grads

    def stale_features(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Pipelined forward: return last epoch's halo, and send this epoch's boundary rows for the next."""
        pending = self.pending_features.pop(layer, None)
        if pending is not None:
            halo = torch.zeros(self.rg.n_halo, self.width, device=self.device)
            self.halo_features[layer] = self._complete(pending.requests, pending.buffers, self.codec,
                                                       pending.rows, halo)
        outgoing, incoming, rows = self._feature_plan(h)
        reqs, bufs = self._post(FEATURE_TAG + layer, outgoing, incoming, self.codec, "bytes_forward")
        self.pending_features[layer] = _Pending(reqs, bufs, rows)
        return self.halo_features[layer]

    def stale_gradients(self, layer: int, grad_halo: torch.Tensor) -> torch.Tensor:
        """Pipelined backward: send this epoch's halo gradients, return last epoch's boundary gradients."""
        outgoing, incoming, rows = self._grad_plan(grad_halo)
        reqs, bufs = self._post(GRADIENT_TAG + layer, outgoing, incoming, self.codec, "bytes_backward")
        pending = self.pending_grads.pop(layer, None)
        self.pending_grads[layer] = _Pending(reqs, bufs, rows)
        if pending is not None:
            grads = torch.zeros(self.rg.n_inner, self.width, device=self.device)
            self.boundary_grads[layer] = self._complete(pending.requests, pending.buffers, self.codec,
                                                        pending.rows, grads)
        return self.boundary_grads[layer]

    def eval_features(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Full-precision, synchronous, uncounted exchange for evaluation."""
        outgoing, incoming, rows = self._feature_plan(h, all_rows=True)
        reqs, bufs = self._post(EVAL_TAG + layer, outgoing, incoming, self.fp32, None)
        halo = torch.zeros(self.rg.n_halo, self.width, device=self.device)
        return self._complete(reqs, bufs, self.fp32, rows, halo, timed=False)

    def __call__(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        fn = _SyncHalo if self.stats.synchronous else _PipelinedHalo
        return fn.apply(h, self, layer)


class _SyncHalo(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, exchange: HaloExchange, layer: int):
        ctx.exchange, ctx.layer = exchange, layer
        return exchange.sync_features(layer, h.detach())

    @staticmethod
    def backward(ctx, grad_halo):
        return ctx.exchange.sync_gradients(ctx.layer, grad_halo.contiguous()), None, None


class _PipelinedHalo(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h, exchange: HaloExchange, layer: int):
        ctx.exchange, ctx.layer = exchange, layer
        return exchange.stale_features(layer, h.detach()).clone()

    @staticmethod
    def backward(ctx, grad_halo):
        return ctx.exchange.stale_gradients(ctx.layer, grad_halo.contiguous()), None, None
