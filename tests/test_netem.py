"""Shaped loopback links (repro.netem): the shaping holds its rate, the namespace is private and dies with the run, and
the "not tested" path where the privilege is missing. The shaped runs skip, with the reason, where not available."""
import os
import socket
import subprocess
import time

import pytest

from repro import netem

OK, REASON = netem.available()
needs_netns = pytest.mark.skipif(not OK, reason=REASON)


def _holders(ns_link: str) -> list[int]:
    """Pids (in this PID namespace) whose network namespace is ``ns_link`` ("net:[inode]")."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/ns/net") == ns_link:
                pids.append(int(pid))
        except OSError:
            continue
    return pids


def _wait_gone(ns_link: str, within_s: float = 5.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := _holders(ns_link)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def test_link_validation_and_tc_hierarchy():
    link = netem.ShapedLink(rate_mbit=12.5)
    assert link.rate_bit_s == 12_500_000
    (cmd,) = link.tc_commands()
    assert cmd[:6] == ["qdisc", "add", "dev", "lo", "root", "handle"] and "tbf" in cmd and "12500000bit" in cmd
    root, child = netem.ShapedLink(rate_mbit=100, delay_ms=5).tc_commands()
    assert "netem" in root and "root" in root and ["delay", "5ms"] == root[root.index("delay"):root.index("delay") + 2]
    assert child[4:8] == ["parent", "1:1", "handle", "10:"] and "tbf" in child
    for bad in ({"rate_mbit": 0}, {"rate_mbit": 10, "delay_ms": -1}, {"rate_mbit": 10, "burst_kb": 16}):
        with pytest.raises(ValueError):
            netem.ShapedLink(**bad)


def test_unavailable_reads_not_tested(monkeypatch):
    monkeypatch.setattr(netem, "_PROBE_CACHE", {})
    monkeypatch.setattr(netem, "_has_net_admin", lambda: False)
    assert netem.available(refresh=True) == (False, netem.NEEDS_NET_ADMIN)
    assert netem.NEEDS_NET_ADMIN == "not tested: needs CAP_NET_ADMIN (run as root or in a container with NET_ADMIN)"
    with pytest.raises(netem.ShapingUnavailable, match="not tested: needs CAP_NET_ADMIN"):
        netem.measure_goodput(netem.ShapedLink(rate_mbit=10))
    with pytest.raises(netem.ShapingUnavailable):
        netem.run_command(netem.ShapedLink(rate_mbit=10), ["true"])
    real_which = netem._which
    monkeypatch.setattr(netem, "_which", lambda tool: None if tool == "tc" else real_which(tool))
    ok, reason = netem.available(refresh=True)
    assert not ok and reason.startswith(netem.NEEDS_NET_ADMIN) and "tc" in reason.split("missing:")[1]
    assert netem.main(["--rate", "10", "--", "true"]) == 77  # the CLI says why and runs nothing


def test_main_module_function_is_refused_early():
    def local():  # pragma: no cover - never runs
        return 1

    local.__module__ = "__main__"
    with pytest.raises(ValueError, match="importable module"):
        netem.run_function(netem.ShapedLink(rate_mbit=10), local)


@needs_netns
@pytest.mark.parametrize("rate_mbit", [50.0, 200.0])
def test_bulk_goodput_within_10_percent_of_rate(rate_mbit):
    goodput = netem.measure_goodput(netem.ShapedLink(rate_mbit=rate_mbit), seconds=1.5, timeout_s=60)
    assert abs(goodput - rate_mbit) <= 0.10 * rate_mbit, f"goodput {goodput:.1f} Mbit/s at a {rate_mbit} Mbit/s link"


@needs_netns
def test_namespace_is_private_shaped_and_dies_with_the_run():
    before = netem.qdisc_show("lo")
    own = os.readlink("/proc/self/ns/net")
    # a background sleep outlives the shell: the namespace's PID 1 exiting must take it (and the namespace) along
    script = "sleep 60 & readlink /proc/self/ns/net; tc qdisc show dev lo; ip -o link show"
    t0 = time.monotonic()
    out = netem.run_command(netem.ShapedLink(rate_mbit=20), ["sh", "-c", script], capture_output=True, text=True,
                            timeout_s=30)
    assert time.monotonic() - t0 < 20
    ns_link, qdisc, *links = out.stdout.strip().splitlines()
    assert ns_link.startswith("net:[") and ns_link != own
    assert "tbf" in qdisc and "rate 20Mbit" in qdisc
    assert [line.split(":")[1].strip() for line in links] == ["lo"]  # nothing to leave by
    assert _wait_gone(ns_link) == []
    assert netem.qdisc_show("lo") == before  # the caller's lo was never shaped


@needs_netns
def test_timeout_kills_the_whole_namespace():
    with pytest.raises(subprocess.TimeoutExpired) as info:
        netem.run_command(netem.ShapedLink(rate_mbit=10), ["sh", "-c", "readlink /proc/self/ns/net; exec sleep 60"],
                          capture_output=True, text=True, timeout_s=2)
    partial = info.value.stdout or b""  # subprocess hands back what it had read as bytes, text=True or not
    ns_link = (partial.decode() if isinstance(partial, bytes) else partial).strip()
    assert ns_link.startswith("net:[")
    assert _wait_gone(ns_link) == []


@needs_netns
def test_function_runs_inside_and_errors_carry_the_traceback():
    # builtins travel without importing this test module (which would import torch in the child)
    assert netem.run_function(netem.ShapedLink(rate_mbit=10), socket.if_nameindex, timeout_s=30) == [(1, "lo")]
    with pytest.raises(netem.NamespaceRunError, match="ValueError") as info:
        netem.run_function(netem.ShapedLink(rate_mbit=10), int, ("not a number",), timeout_s=30)
    assert isinstance(info.value.__cause__, ValueError)
