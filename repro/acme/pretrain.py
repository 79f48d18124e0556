"""A small GPT pretraining job for Acme's fault-tolerance experiments, run under torchrun on gloo.

    python -m torch.distributed.run --standalone --nproc_per_node 2 -m repro.acme.pretrain --out DIR [options]

Everything that makes a restart reproduce the uninterrupted run bit for bit on CPU: the batch of step s on rank r
is a pure function of (seed, s, r); a checkpoint holds the model, the optimiser and the step; gloo sums the two
ranks' gradients in a fixed order; one thread per rank.

Checkpoints: ``--ckpt sync`` writes with ``torch.save`` inside the training loop; ``--ckpt async`` copies the state
into host memory inside the loop and writes it from a background thread (Acme Sec. 6.1). Either way a checkpoint
becomes visible only once complete (write, then rename), and the loop's stall per checkpoint is recorded.

Failure injection (``--inject KIND@STEP[:RANK]``), the classes of the paper's Table 3:
``kill`` (the rank dies: node failure), ``hang`` (the rank stops answering collectives: a stuck NIC or GPU),
``nan`` (the loss turns non-finite), ``oom`` (a framework error), ``keyerror`` (a script error). With
``--failure-log FILE`` the failing rank first prints that file, a log the supervisor draws from the test part of
``repro.acme.log_corpus``, so that the diagnosis reads the wording of a real stack rather than ours.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTConfig:
    vocab: int = 64
    block: int = 32
    layers: int = 2
    heads: int = 4
    width: int = 64


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.width), nn.LayerNorm(cfg.width)
        self.qkv, self.proj = nn.Linear(cfg.width, 3 * cfg.width), nn.Linear(cfg.width, cfg.width)
        self.mlp = nn.Sequential(nn.Linear(cfg.width, 4 * cfg.width), nn.GELU(), nn.Linear(4 * cfg.width, cfg.width))
        self.heads = cfg.heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, C]
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """A nanoGPT-style decoder: token + position embeddings, pre-norm blocks, a linear head."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.tok, self.pos = nn.Embedding(cfg.vocab, cfg.width), nn.Embedding(cfg.block, cfg.width)
        self.blocks = nn.Sequential(*(Block(cfg) for _ in range(cfg.layers)))
        self.ln, self.head = nn.LayerNorm(cfg.width), nn.Linear(cfg.width, cfg.vocab, bias=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1], device=idx.device))
        logits = self.head(self.ln(self.blocks(x)))
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def batch(seed: int, step: int, rank: int, size: int, cfg: GPTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of (step, rank): a seeded order-2 Markov text, so there is structure to learn."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step * 101 + rank)
    table = torch.Generator().manual_seed(seed)
    successors = torch.randint(0, cfg.vocab, (cfg.vocab, cfg.vocab, 3), generator=table)
    tokens = torch.empty(size, cfg.block + 1, dtype=torch.long)
    tokens[:, :2] = torch.randint(0, cfg.vocab, (size, 2), generator=g)
    choice = torch.randint(0, 3, (size, cfg.block + 1), generator=g)
    for t in range(2, cfg.block + 1):
        tokens[:, t] = successors[tokens[:, t - 2], tokens[:, t - 1], choice[:, t]]
    return tokens[:, :-1], tokens[:, 1:]


def latest_checkpoint(folder: Path) -> Path | None:
    done = sorted(folder.glob("step_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    return done[-1] if done else None


class Checkpointer:
    """Synchronous (torch.save in the loop) or asynchronous (snapshot to host memory, write in a thread)."""

    def __init__(self, folder: Path, mode: str):
        self.folder, self.mode = folder, mode
        folder.mkdir(parents=True, exist_ok=True)
        self.writer: threading.Thread | None = None

    @staticmethod
    def _write(state: dict, path: Path) -> None:
        tmp = path.with_suffix(".partial")
        torch.save(state, tmp)
        os.replace(tmp, path)  # visible only once complete

    def save(self, state: dict, step: int) -> float:
        """Save ``state`` as step ``step``; returns the seconds the training loop was blocked."""
        start = time.perf_counter()
        path = self.folder / f"step_{step}.pt"
        if self.mode == "sync":
            self._write(state, path)
        else:
            if self.writer is not None:
                self.writer.join()  # one write in flight at a time: host memory holds one snapshot
            snapshot = _to_host(state)
            self.writer = threading.Thread(target=self._write, args=(snapshot, path), daemon=True)
            self.writer.start()
        return time.perf_counter() - start

    def close(self) -> None:
        if self.writer is not None:
            self.writer.join()


def _to_host(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_host(v) for v in obj)
    return obj


def parse_injection(text: str | None) -> tuple[str, int, int] | None:
    if not text:
        return None
    kind, _, rest = text.partition("@")
    step, _, rank = rest.partition(":")
    if kind not in ("kill", "hang", "nan", "oom", "keyerror"):
        raise ValueError(f"unknown failure kind {kind!r}")
    return kind, int(step), int(rank or 0)


def inject(kind: str, step: int, loss: torch.Tensor, failure_log: str | None = None) -> torch.Tensor:
    """Make the failure happen. With ``failure_log`` (the supervisor draws it from the test part of
    ``repro.acme.log_corpus``), the rank first prints that log, as the failing stack would, then fails the same way:
    killed, hung, a NaN loss (printed once the loop sees it), or an error exit for ``oom`` and ``keyerror``."""
    if failure_log and kind in ("kill", "hang"):
        _print_failure_log(failure_log)
    if failure_log and kind in ("oom", "keyerror"):
        _print_failure_log(failure_log)
        raise SystemExit(1)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)  # as a dying node or the OOM killer would: no cleanup, no traceback
    if kind == "hang":
        time.sleep(3600)
    if kind == "nan":
        return loss * float("nan")
    if kind == "oom":
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 79.35 GiB total capacity)")
    if kind == "keyerror":
        raise KeyError("lr_warmup_steps")
    return loss


def _print_failure_log(text: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def checkpoint_stall(mode: str, size_mb: float, folder: Path, repeats: int = 3) -> float:
    """Median seconds the training loop blocks to checkpoint a state of ``size_mb`` MB (sync vs async).

    Checkpoints are far apart in a real job (the paper: every 30 min), so the background write finishes before the
    next one; here that wait happens between saves, outside the measured stall."""
    state = {"weights": torch.randn(int(size_mb * 2**20 / 4))}
    checkpointer = Checkpointer(folder, mode)
    stalls = []
    for step in range(1, repeats + 1):
        stalls.append(checkpointer.save(state, step))
        checkpointer.close()  # the training between checkpoints, in which the writer finishes
    return sorted(stalls)[len(stalls) // 2]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ckpt", choices=("sync", "async"), default="async")
    p.add_argument("--ckpt-every", type=int, default=5)
    p.add_argument("--resume-from", type=Path, default=None, help="a checkpoint file; else start fresh")
    p.add_argument("--skip", type=int, nargs="*", default=[], help="steps whose batches to skip (loss rollback)")
    p.add_argument("--inject", default=None, help="KIND@STEP[:RANK]")
    p.add_argument("--failure-log", type=Path, default=None,
                   help="a file holding the log the injected failure prints (drawn from the corpus's test part)")
    p.add_argument("--collective-timeout", type=float, default=10.0)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: each rank on GPU (LOCAL_RANK mod count); collectives stay on gloo")
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=args.collective_timeout))
    rank = dist.get_rank()
    cfg = GPTConfig(width=args.width)
    torch.manual_seed(args.seed)
    device = torch.device("cpu")
    if args.device == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    model = GPT(cfg).to(device)
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start = 0
    if args.resume_from is not None:
        state = torch.load(args.resume_from, weights_only=False, map_location=device)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        start = state["step"]
    checkpointer = Checkpointer(args.out / "checkpoints", args.ckpt)
    injection = parse_injection(args.inject)
    failure_log = args.failure_log.read_text() if args.failure_log else None
    log = open(args.out / f"metrics_rank{rank}.jsonl", "a")
    for step in range(start + 1, args.steps + 1):
        if step in args.skip:
            continue
        x, y = batch(args.seed, step, rank, args.batch, cfg)
        loss = ddp(x.to(device), y.to(device))
        if injection and injection[1] == step and injection[2] == rank:
            loss = inject(injection[0], step, loss, failure_log)
        if not math.isfinite(float(loss.detach())):
            if failure_log:  # the injected NaN prints the log drawn for it
                _print_failure_log(failure_log)
                raise SystemExit(1)
            raise FloatingPointError(f"non-finite loss {float(loss.detach())} at step {step} on rank {rank}")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        total = loss.detach().clone()
        dist.all_reduce(total)
        stall = 0.0
        if step % args.ckpt_every == 0 and rank == 0:
            stall = checkpointer.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                                       "step": step}, step)
        if rank == 0:
            log.write(json.dumps({"step": step, "loss": float(total) / dist.get_world_size(),
                                  "ckpt_stall_s": stall, "time": time.time()}) + "\n")
            log.flush()
    checkpointer.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
