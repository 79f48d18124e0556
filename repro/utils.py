"""Shared helpers: seeding, device resolution, timing with spread, FLOP counting and one figure style."""
from __future__ import annotations

import os
import platform
import random
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


def file_rendezvous(folder: str | os.PathLike) -> str:
    """A ``file://`` init method for ``torch.distributed.init_process_group``, in ``folder`` (which must outlive the
    launch). Unlike picking a free TCP port and binding it later, nothing can take it in between."""
    import uuid
    from pathlib import Path

    return (Path(folder).resolve() / f"rendezvous-{uuid.uuid4().hex}").as_uri()


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) so that the same seed gives the same numbers on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)


def resolve_device(device: str) -> torch.device:
    """Map the chapter's ``device`` parameter to a torch device: "auto" picks CUDA when present."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was asked for but torch sees no GPU; use device='cpu' or 'auto'.")
    return torch.device(device)


def device_name(device: torch.device | str) -> str:
    """A human name for the device: the GPU's name, or the CPU model."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class Timing:
    """Median and spread of repeated wall-clock measurements, in seconds."""

    median: float
    q25: float
    q75: float
    repeats: int

    def __str__(self) -> str:
        return f"{self.median * 1e3:.3f} ms (IQR {self.q25 * 1e3:.3f}-{self.q75 * 1e3:.3f}, n={self.repeats})"


def time_it(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> Timing:
    """Time ``fn`` ``repeats`` times after ``warmup`` calls; synchronises CUDA around each call."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t0)
    if len(samples) >= 2:
        q = statistics.quantiles(samples, n=4, method="inclusive")
        return Timing(statistics.median(samples), q[0], q[2], repeats)
    return Timing(samples[0], samples[0], samples[0], repeats)


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of one call of ``fn``, as torch.utils.flop_counter counts them (matmul-like ops)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def peak_memory_mb() -> dict[str, float]:
    """Peak resident memory of this process and of its finished children (MiB), and of the GPU if used."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    out = {
        "self_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
        "children_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


STYLE = {
    "figure.figsize": (6.4, 3.8),
    "figure.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "savefig.bbox": "tight",
}


def use_style() -> None:
    """Apply the handbook's one matplotlib style so that figures look alike across chapters.

    Inside a Jupyter kernel it also selects the inline backend: an inherited ``MPLBACKEND=Agg`` would otherwise
    make ``plt.show()`` draw nothing into the executed notebook, and the book would lose its figures.
    """
    import matplotlib as mpl

    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and "IPKernelApp" in shell.config:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:
        pass
    mpl.rcParams.update(STYLE)


def pool_map(fn: Callable, items: list, workers: int | None = None, progress: bool = True, desc: str = "runs") -> list:
    """``[fn(x) for x in items]`` over a pool of spawned, single-threaded worker processes (``workers`` defaults to
    the CPU count, at most 8; 1 runs inline, also single-threaded). ``fn`` must be importable (module level).
    One thread per item keeps the numbers identical whatever the pool size."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    workers = workers or min(8, os.cpu_count() or 1)
    if workers == 1:
        return [_single_threaded(fn, x) for x in tqdm(items, desc=desc, disable=not progress)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=torch.set_num_threads,
                             initargs=(1,)) as pool:
        return list(tqdm(pool.map(fn, items), total=len(items), desc=desc, disable=not progress))


def _single_threaded(fn: Callable, x):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn(x)
    finally:
        torch.set_num_threads(threads)
