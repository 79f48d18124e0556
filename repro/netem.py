"""Shaped loopback links: run a multi-process launch inside a private network namespace whose ``lo`` is rate-limited.

The calling process stays in its own namespace and starts a child through ``unshare --net --pid --fork --mount-proc
--kill-child``. The child brings ``lo`` up, installs the qdiscs and then runs the payload: a command, or a pickled
Python function that may itself spawn torch.distributed (gloo) ranks talking to 127.0.0.1. The child is PID 1 of a
private PID namespace: when it exits, or the caller kills it after a timeout, the kernel kills everything the payload
left behind, and the network namespace dies with the last process in it. The namespace holds only ``lo``: nothing in it
can reach beyond loopback, and the caller's ``lo`` is never touched.

Shaping (units as in ``ShapedLink``):
- ``tbf`` (token bucket) at ``rate_mbit`` megabits per second (10**6 bit/s), bucket ``burst_kb`` KiB, queue bounded by
  ``latency_ms`` milliseconds of waiting;
- with ``delay_ms > 0``, a ``netem`` root adds a fixed one-way delay per packet and the ``tbf`` hangs below it
  (netem root handle 1:, tbf parent 1:1). This needs the kernel's sch_netem; ``available(delay=True)`` checks it.

Loopback is one shared bus: every packet of every flow, both directions, goes through the same ``lo`` qdisc. The
rate is therefore the aggregate of all ranks and both directions, not a full-duplex per-pair link; and a TCP round trip
crosses the delay twice (RTT = 2 x ``delay_ms``).

Needs root or CAP_NET_ADMIN + CAP_SYS_ADMIN, plus ``unshare`` (util-linux), ``ip`` and ``tc`` (iproute2). Without them
``available()`` returns ``(False, NEEDS_NET_ADMIN)``; callers mark the claims that need a shaped link "not tested" with
that reason and keep their model beside them. Nothing fails.

Run by hand: ``python -m repro.netem --rate 100 -- iperf-like-command args`` (the command runs in a shaped namespace).
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Sequence

NEEDS_NET_ADMIN = "not tested: needs CAP_NET_ADMIN (run as root or in a container with NET_ADMIN)"
NEEDS_NETEM = "not tested: needs the kernel's netem qdisc (CONFIG_NET_SCH_NETEM) for a link delay"

_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21  # unshare(CLONE_NEWNET / CLONE_NEWPID) needs it
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
_PROBE_CACHE: dict[bool, tuple[bool, str]] = {}
# the child runs this file as a script through runpy, so that it does not import the repro package (and torch)
_BOOT = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"


class ShapingUnavailable(RuntimeError):
    """A shaped run was asked for where ``available()`` is False; the message is the "not tested" reason."""


class NamespaceRunError(RuntimeError):
    """The payload failed inside the shaped namespace; the message carries the child's traceback or exit status."""


@dataclass(frozen=True)
class ShapedLink:
    """A loopback link shaped by a token bucket, optionally behind a fixed delay.

    rate_mbit:  token rate in megabits per second (10**6 bit/s), aggregate over all flows and both directions.
    delay_ms:   one-way delay per packet in milliseconds (0: no netem qdisc; > 0 needs sch_netem).
    burst_kb:   bucket size in KiB; at least 64, since lo's MTU is 64 KiB and a packet larger than the bucket stalls.
    latency_ms: the longest a packet may wait in the tbf queue, in milliseconds (sets tbf's queue limit).
    """

    rate_mbit: float
    delay_ms: float = 0.0
    burst_kb: int = 128
    latency_ms: float = 100.0

    def __post_init__(self) -> None:
        if not self.rate_mbit > 0:
            raise ValueError(f"rate_mbit must be > 0, got {self.rate_mbit}")
        if self.delay_ms < 0:
            raise ValueError(f"delay_ms must be >= 0, got {self.delay_ms}")
        if self.burst_kb < 64:
            raise ValueError(f"burst_kb must be >= 64 (lo's MTU is 64 KiB), got {self.burst_kb}")
        if not self.latency_ms > 0:
            raise ValueError(f"latency_ms must be > 0, got {self.latency_ms}")

    @property
    def rate_bit_s(self) -> int:
        """The token rate in bit/s, as handed to tc."""
        return int(round(self.rate_mbit * 1e6))

    def tc_commands(self, dev: str = "lo") -> list[list[str]]:
        """The ``tc`` argument lists (without the ``tc`` itself) that shape ``dev``: tbf alone, or netem root + tbf."""
        tbf = ["tbf", "rate", f"{self.rate_bit_s}bit", "burst", f"{self.burst_kb}kb", "latency", f"{self.latency_ms}ms"]
        if self.delay_ms == 0:
            return [["qdisc", "add", "dev", dev, "root", "handle", "1:", *tbf]]
        return [
            ["qdisc", "add", "dev", dev, "root", "handle", "1:", "netem", "delay", f"{self.delay_ms}ms",
             "limit", "100000"],
            ["qdisc", "add", "dev", dev, "parent", "1:1", "handle", "10:", *tbf],
        ]

    def argv(self) -> list[str]:
        """The child's command-line flags for this link."""
        return ["--rate", repr(self.rate_mbit), "--delay", repr(self.delay_ms), "--burst", str(self.burst_kb),
                "--latency", repr(self.latency_ms)]


# --------------------------------------------------------------------------------------------------- availability
def _which(tool: str) -> str | None:
    """The path of ``tool`` on PATH or in the usual sbin folders (root's tools are often off a user's PATH)."""
    found = shutil.which(tool)
    if found:
        return found
    for folder in _SBIN:
        path = os.path.join(folder, tool)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _has_net_admin() -> bool:
    """True when this process holds CAP_NET_ADMIN and CAP_SYS_ADMIN in its effective set (root normally does)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
                    return bool(caps >> _CAP_NET_ADMIN & 1) and bool(caps >> _CAP_SYS_ADMIN & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def _unshare_prefix() -> list[str]:
    return [_which("unshare") or "unshare", "--net", "--pid", "--fork", "--mount-proc", "--kill-child", "--"]


def available(delay: bool = False, refresh: bool = False) -> tuple[bool, str]:
    """Whether shaped runs work here, and why not: ``(True, "")`` or ``(False, reason)``.

    The reason starts with ``NEEDS_NET_ADMIN`` when the privilege or a tool (unshare, ip, tc) is missing or a live probe
    (a throw-away namespace with a tbf on its lo) fails; with ``delay=True`` it is ``NEEDS_NETEM`` when the kernel lacks
    the netem qdisc. The probe runs once per process (``refresh=True`` repeats it) and costs a few milliseconds.
    """
    if refresh or delay not in _PROBE_CACHE:
        _PROBE_CACHE[delay] = _probe(delay)
    return _PROBE_CACHE[delay]


def _probe(delay: bool) -> tuple[bool, str]:
    missing = [tool for tool in ("unshare", "ip", "tc") if _which(tool) is None]
    if missing:
        return False, f"{NEEDS_NET_ADMIN}; missing: {', '.join(missing)}"
    if not _has_net_admin():
        return False, NEEDS_NET_ADMIN
    link = ShapedLink(rate_mbit=1.0, delay_ms=1.0 if delay else 0.0)
    script = " && ".join(" ".join([_which("tc") or "tc", *cmd]) for cmd in link.tc_commands())
    try:
        out = subprocess.run([*_unshare_prefix(), "sh", "-c", script], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{NEEDS_NET_ADMIN}; probe failed: {e}"
    if out.returncode == 0:
        return True, ""
    err = " ".join(out.stderr.split())[:200]
    if delay and "unknown" in err.lower() and "qdisc" in err.lower():
        return False, f"{NEEDS_NETEM}; tc: {err}"
    return False, f"{NEEDS_NET_ADMIN}; probe failed: {err}"


def _require(link: ShapedLink) -> None:
    ok, reason = available(delay=link.delay_ms > 0)
    if not ok:
        raise ShapingUnavailable(reason)


# --------------------------------------------------------------------------------------------------- parent side
def _child_env(env: dict[str, str] | None) -> dict[str, str]:
    """The child's environment: the caller's (or ``env``), with gloo pinned to lo (the only interface there)."""
    out = dict(os.environ if env is None else env)
    out.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return out


def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _child_argv(link: ShapedLink, extra: Sequence[str]) -> list[str]:
    return [*_unshare_prefix(), sys.executable, "-c", _BOOT, os.path.abspath(__file__), "--child",
            "--parent-netns", str(_netns_inode()), *link.argv(), *extra]


def run_command(link: ShapedLink, cmd: Sequence[str], *, timeout_s: float | None = None, check: bool = True,
                env: dict[str, str] | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """Run ``cmd`` in a fresh namespace whose lo is shaped by ``link``; return the CompletedProcess.

    ``timeout_s`` (seconds) kills the run, and with it every process in the namespace, then raises TimeoutExpired.
    ``check`` raises CalledProcessError on a non-zero exit. Other keyword arguments go to ``subprocess.run``
    (``capture_output=True, text=True`` to read the output). Exit status 97 means the shaping itself failed.
    Raises ShapingUnavailable where ``available()`` is False.
    """
    _require(link)
    argv = _child_argv(link, ["--", *cmd])
    out = subprocess.run(argv, timeout=timeout_s, env=_child_env(env), **kwargs)
    if check and out.returncode != 0:
        raise subprocess.CalledProcessError(out.returncode, list(cmd), out.stdout, out.stderr)
    return out


def run_function(link: ShapedLink, fn: Callable[..., Any], args: Sequence[Any] = (),
                 kwargs: dict[str, Any] | None = None, *, timeout_s: float | None = None,
                 env: dict[str, str] | None = None) -> Any:
    """Call ``fn(*args, **kwargs)`` in a fresh namespace whose lo is shaped by ``link``; return its result.

    ``fn``, the arguments and the result travel by pickle: ``fn`` must be a module-level function of an importable
    module (not one defined in a notebook's ``__main__``). It may spawn processes (torch.distributed gloo ranks with
    MASTER_ADDR=127.0.0.1; GLOO_SOCKET_IFNAME defaults to lo); they die with the namespace when ``fn`` returns.
    ``timeout_s`` (seconds) kills the run and raises TimeoutExpired. An exception in ``fn`` raises NamespaceRunError
    carrying the child's traceback (chained to the original exception when it unpickles).
    """
    if getattr(fn, "__module__", None) == "__main__":
        raise ValueError(f"{getattr(fn, '__qualname__', fn)} is defined in __main__; the namespace's child cannot "
                         "import it: move it to an importable module")
    _require(link)
    with tempfile.TemporaryDirectory(prefix="repro-netem-") as tmp:
        payload, result = os.path.join(tmp, "payload.pkl"), os.path.join(tmp, "result.pkl")
        with open(payload, "wb") as f:
            # the caller's sys.path travels too; the child appends it after its own, so that fn's module imports the
            # same way while a script folder on it cannot shadow the standard library
            pickle.dump((list(sys.path), pickle.dumps((fn, tuple(args), dict(kwargs or {})))), f)
        argv = _child_argv(link, ["--call", payload, "--result", result])
        proc = subprocess.run(argv, timeout=timeout_s, env=_child_env(env))
        if not os.path.exists(result):
            raise NamespaceRunError(f"shaped run of {getattr(fn, '__qualname__', fn)} exited with status "
                                    f"{proc.returncode} and no result (see its stderr above)")
        with open(result, "rb") as f:
            status, value, tb = pickle.load(f)
    if status == "ok":
        return value
    raise NamespaceRunError(f"{getattr(fn, '__qualname__', fn)} failed in the shaped namespace:\n{tb}") from (
        value if isinstance(value, BaseException) else None)


def qdisc_show(dev: str = "lo") -> str:
    """``tc qdisc show dev <dev>`` in the caller's namespace (read-only), e.g. to check that a run left no shaping."""
    return subprocess.run([_which("tc") or "tc", "qdisc", "show", "dev", dev], capture_output=True, text=True,
                          check=True).stdout


# --------------------------------------------------------------------------------------------------- measurement
def bulk_goodput_mbit(seconds: float = 2.0, max_bytes: int | None = None, warmup_bytes: int = 512 * 1024,
                      chunk_bytes: int = 256 * 1024, host: str = "127.0.0.1") -> float:
    """Goodput in Mbit/s (10**6 bit/s) of one bulk TCP transfer between two sockets on ``host``, in this namespace.

    The sender writes ``chunk_bytes`` at a time until ``seconds`` have passed or ``max_bytes`` are sent, then closes.
    The receiver reads to EOF and times from the moment ``warmup_bytes`` had arrived (so tbf's initially full bucket
    and TCP's start do not count) to the last byte; what sat in socket buffers when the sender stopped drains inside
    the timed span. Stops by itself: every socket operation times out after ``seconds + 30`` s.
    """
    limit = seconds + 30.0
    server = socket.create_server((host, 0))
    server.settimeout(limit)
    stats: dict[str, Any] = {}

    def receive() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(limit)
                buf = bytearray(1 << 20)
                total, t0, b0, t1 = 0, None, 0, None
                while True:
                    n = conn.recv_into(buf)
                    if n == 0:
                        break
                    total += n
                    now = time.perf_counter()
                    if t0 is None and total >= warmup_bytes:
                        t0, b0 = now, total
                    t1 = now
                stats.update(total=total, t0=t0, b0=b0, t1=t1)
        except BaseException as e:  # noqa: B036 - reported to the caller below
            stats["error"] = e

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    data = memoryview(bytes(chunk_bytes))
    sent = 0
    with socket.create_connection(server.getsockname(), timeout=limit) as client:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline and (max_bytes is None or sent < max_bytes):
            n = chunk_bytes if max_bytes is None else min(chunk_bytes, max_bytes - sent)
            client.sendall(data[:n])
            sent += n
        client.shutdown(socket.SHUT_WR)
    reader.join(limit)
    server.close()
    if "error" in stats:
        raise stats["error"]
    if reader.is_alive() or stats.get("t0") is None or stats["t1"] <= stats["t0"]:
        raise RuntimeError(f"bulk transfer too short to time: sent {sent} B, warm-up {warmup_bytes} B, {stats}")
    return (stats["total"] - stats["b0"]) * 8 / (stats["t1"] - stats["t0"]) / 1e6


def measure_goodput(link: ShapedLink, seconds: float = 2.0, max_bytes: int | None = None,
                    timeout_s: float | None = None) -> float:
    """Goodput in Mbit/s of a bulk TCP transfer over 127.0.0.1 inside a fresh namespace shaped by ``link``.

    Bounded by ``seconds`` of sending and ``max_bytes``; the warm-up skipped is 4 x the bucket. ``timeout_s``
    (default ``seconds + 60``) bounds the whole run, start-up included. Compare with ``link.rate_mbit``: goodput is
    TCP payload, so it sits a few per cent under the token rate (headers also spend tokens).
    """
    return run_function(link, bulk_goodput_mbit, (seconds, max_bytes, 4 * link.burst_kb * 1024),
                        timeout_s=seconds + 60 if timeout_s is None else timeout_s)


# --------------------------------------------------------------------------------------------------- child side
class _ChildUnpickler(pickle.Unpickler):
    """Resolves ``repro.netem`` to the running script itself, so that a payload from this module (measure_goodput)
    does not import the repro package and torch; other modules import as usual."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "repro.netem" and "repro.netem" not in sys.modules and __name__ == "__main__":
            return globals()[name]
        return super().find_class(module, name)


def _shape_lo(link: ShapedLink) -> None:
    tc, ip = _which("tc") or "tc", _which("ip") or "ip"
    for cmd in ([ip, "link", "set", "lo", "up"], *([tc, *c] for c in link.tc_commands())):
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {out.stderr.strip()}")


def _child_main(ns: argparse.Namespace, cmd: list[str]) -> int:
    if ns.parent_netns is not None and _netns_inode() == ns.parent_netns:
        print("repro.netem: refusing to shape lo: not in a private network namespace", file=sys.stderr)
        return 97
    link = ShapedLink(rate_mbit=ns.rate, delay_ms=ns.delay, burst_kb=ns.burst, latency_ms=ns.latency)
    try:
        _shape_lo(link)
    except Exception as e:  # noqa: BLE001 - reported as exit status 97
        print(f"repro.netem: shaping failed: {e}", file=sys.stderr)
        return 97
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if ns.call is None:
        if not cmd:
            print("repro.netem: nothing to run", file=sys.stderr)
            return 2
        return subprocess.run(cmd).returncode
    try:
        with open(ns.call, "rb") as f:
            paths, blob = pickle.load(f)
        sys.path.extend(p or os.getcwd() for p in paths if p not in sys.path)
        fn, args, kwargs = _ChildUnpickler(io.BytesIO(blob)).load()
        outcome = ("ok", fn(*args, **kwargs), "")
    except BaseException as e:  # noqa: B036 - the parent re-raises it
        outcome = ("error", e, traceback.format_exc())
    try:
        blob = pickle.dumps(outcome)
    except Exception:  # noqa: BLE001 - an unpicklable exception or result: keep the traceback
        blob = pickle.dumps(("error", None, outcome[2] or f"unpicklable result of type {type(outcome[1])}"))
    with open(ns.result, "wb") as f:
        f.write(blob)
    return 0 if outcome[0] == "ok" else 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m repro.netem",
                                description="Run a command in a private network namespace with a shaped lo.")
    p.add_argument("--rate", type=float, required=True, help="token rate, Mbit/s")
    p.add_argument("--delay", type=float, default=0.0, help="one-way delay per packet, ms (needs sch_netem)")
    p.add_argument("--burst", type=int, default=128, help="token bucket, KiB")
    p.add_argument("--latency", type=float, default=100.0, help="longest tbf queueing, ms")
    p.add_argument("--timeout", type=float, default=None, help="kill the run after this many seconds")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--parent-netns", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--call", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, cmd = argv[:i], argv[i + 1:]
    ns = _parser().parse_args(argv)
    if ns.child:
        return _child_main(ns, cmd)
    link = ShapedLink(rate_mbit=ns.rate, delay_ms=ns.delay, burst_kb=ns.burst, latency_ms=ns.latency)
    ok, reason = available(delay=link.delay_ms > 0)
    if not ok:
        print(reason, file=sys.stderr)
        return 77
    if not cmd:
        print("usage: python -m repro.netem --rate MBIT [--delay MS] -- command [args...]", file=sys.stderr)
        return 2
    return run_command(link, cmd, timeout_s=ns.timeout, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
