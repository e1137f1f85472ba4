"""Federation for real: a hub and two site proxies in network namespaces, 20 ms apart.

Hosts ``hub``, ``a`` and ``b`` share one bridged /24. Each site runs its own
proxy on loopback (``--upstream`` to the hub) and its nodes; its only traffic
on ``eth0`` is its link to the hub, which goes through a relay in the site's
namespace (tests/relay.py) adding 20 ms each way. The site proxies' clocks are
wrong on purpose (``ZAUDIO_CLOCK_SKEW`` +5 s at A, -3 s at B): offsets chain,
so ``t`` is in the hub's time base anyway.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.netns import Lan, Probe, sh, stop

RATE = 16000
BLOCK = 160  # 10 ms
SECONDS = 1.0
N = int(RATE * SECONDS) // BLOCK
DELAY = 0.02
HEARTBEAT = 0.5
HUB_PORT = 6555
SITE = "tcp://127.0.0.1:5555"  # each site's own proxy, inside its namespace
SKEW = {"a": "+5", "b": "-3"}


class Federated:
    """The running federation: the lan, and each site's relay (which the tests may cut)."""

    def __init__(self, lan: Lan) -> None:
        self.lan = lan
        self.relays: dict[str, subprocess.Popen[str]] = {}

    def relay(self, site: str) -> None:
        hub = self.lan.ip("hub")
        routes = [f"127.0.0.1:{p}={hub}:{p}" for p in range(HUB_PORT, HUB_PORT + 3)]
        proc = self.lan.spawn(site, "-m", "tests.relay", "--delay", str(DELAY), *routes)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        self.relays[site] = proc

    def listing(self, host: str) -> dict[str, Any]:
        ep = self.lan.endpoint("hub", HUB_PORT) if host == "hub" else SITE
        return self.lan.request(host, ep, {"op": "list"})

    def upstream(self, site: str) -> dict[str, Any]:
        info: dict[str, Any] = self.listing(site)["proxy"]["upstream"]
        return info

    def wait(self, what: str, pred: Any, timeout: float = 15) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = pred()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.05)

    def link_bytes(self, site: str) -> int:
        """Bytes both ways on ``site``'s eth0: its link to the hub, and nothing else."""
        ns = self.lan.ns[site]
        total = 0
        for key in ("rx_bytes", "tx_bytes"):
            out = sh("ip", "netns", "exec", ns, "cat", f"/sys/class/net/eth0/statistics/{key}")
            total += int(out.stdout)
        return total


@pytest.fixture(scope="module")
def fed() -> Iterator[Federated]:
    with Lan("hub", "a", "b") as lan:
        f = Federated(lan)
        lan.zaudio("hub", "proxy", "--host", "0.0.0.0", "--port", str(HUB_PORT), "--name", "hub",
                   "--heartbeat", str(HEARTBEAT))  # fmt: skip
        lan.wait_answers("a", lan.endpoint("hub", HUB_PORT))
        for site in ("a", "b"):
            f.relay(site)
            lan.zaudio(site, "proxy", "--name", f"site-{site}", "--heartbeat", str(HEARTBEAT),
                       "--upstream", f"tcp://127.0.0.1:{HUB_PORT}",
                       env={"ZAUDIO_CLOCK_SKEW": SKEW[site]})  # fmt: skip
            lan.wait_answers(site, SITE)
        for site in ("a", "b"):
            f.wait(f"site {site}'s link up", lambda s=site: f.upstream(s)["up"])
        yield f


@pytest.fixture(autouse=True)
def _stop_what_the_test_started(fed: Federated) -> Iterator[None]:
    """Stop every node and probe a test started (even when it failed); the relays stay."""
    first = len(fed.lan.procs)
    yield
    relays = set(map(id, fed.relays.values()))
    for proc in fed.lan.procs[first:]:
        if id(proc) not in relays:
            stop(proc)
    fed.lan.procs[first:] = [p for p in fed.lan.procs[first:] if id(p) in relays]


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("audio") / "noise.wav"
    data = (np.random.default_rng(19).standard_normal(N * BLOCK) * 0.2).astype(np.float32)
    sf.write(path, data, RATE, subtype="FLOAT")
    return path, data


def record(fed: Federated, wav: Path, stream: str, seconds: float | None = None) -> Any:
    args = ["record", "--source", f"file:{wav}", "--stream", stream, "--block", str(BLOCK),
            "--proxy", SITE]  # fmt: skip
    if seconds is not None:
        args += ["--loop", "--duration", f"{seconds}s"]
    return fed.lan.zaudio("a", *args)


def hub_wants(fed: Federated, stream: str) -> None:
    """Wait until B's subscription reached site A through the hub (A's link holds it)."""
    fed.wait(
        f"the hub's subscription to {stream!r} at site A",
        lambda: f"audio/{stream}\0" in fed.upstream("a")["hub_topics"],
    )


def latencies(headers: list[dict[str, Any]]) -> list[float]:
    return [h["recv"] - (h["t"] + h["frames"] / h["rate"]) for h in headers]


def test_a_stream_from_site_a_reaches_site_b_exactly(
    fed: Federated, wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, data = wav
    lan = fed.lan
    proc = lan.zaudio("b", "process", "tests.procs_chaos:span", "--name", "far",
                      "--topic", "noise", "--proxy", SITE)  # fmt: skip
    probe = lan.listen("b", SITE, "noise", save=str(tmp_path / "got.npy"))
    fed.wait("the processor at B", lambda: any(
        n["name"] == "far" for n in fed.listing("b")["nodes"]))  # fmt: skip
    hub_wants(fed, "noise")
    rec = record(fed, path, "noise", seconds=30)  # runs on while we look around
    probe.wait(lambda m: len(m) >= N, 15, f"{N} blocks at B")
    # list on every side: the stream, where it comes from, and through whom
    for host, via in (("hub", ""), ("b", "hub"), ("a", "")):
        streams = fed.wait(f"noise in {host}'s list", lambda h=host: [
            s for s in fed.listing(h)["streams"] if s["name"] == "noise"])  # fmt: skip
        assert [(s["origin"], s["via"]) for s in streams] == [("site-a", via)], streams
    # the name is site A's across the federation: refused at B with the ownership error
    taken = lan.run("b", "-m", "zaudio", "record", "--source", "sine:440", "--stream", "noise",
                    "--duration", "1s", "--proxy", SITE)  # fmt: skip
    assert taken.returncode != 0
    assert "stream 'noise' is already published by recorder" in taken.stderr, taken.stderr
    assert "at proxy 'site-a'" in taken.stderr, taken.stderr
    stop(rec)
    headers = probe.close()[:N]
    far = next(n for n in fed.listing("b")["nodes"] if n["name"] == "far")["stats"]
    stop(proc)
    got = np.load(tmp_path / "got.npy")[: N * BLOCK]
    assert [h["seq"] for h in headers] == list(range(N))
    assert [h["index"] for h in headers] == [k * BLOCK for k in range(N)]
    assert len({h["src"] for h in headers}) == 1
    assert got.shape == (N * BLOCK, 1) and np.array_equal(got[:, 0], data)
    assert far["gaps"] == 0 and far["dropped"] == 0, far
    # t in the hub's time base although A's clock is 5 s ahead and B's 3 s behind:
    # latency is the two 20 ms relays and little more, at the probe and at the processor
    lat = latencies(headers)
    print(f"A -> hub -> B latency median {median(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f}"
          f" ms; processor lag {far['lag'] * 1000:.1f} ms")  # fmt: skip
    assert 2 * DELAY - 0.002 < median(lat) < 2 * DELAY + 0.03, lat
    assert 2 * DELAY - 0.002 < far["lag"] < 2 * DELAY + 0.1, far
    for site, skew in SKEW.items():
        assert abs(fed.upstream(site)["offset"] + float(skew)) < 0.01


def test_one_or_five_subscribers_at_b_cost_the_links_the_same(
    fed: Federated, wav: tuple[Path, np.ndarray]
) -> None:
    path, _ = wav
    used, moved = {}, {}
    for k in (1, 5):
        stream = f"fan{k}"
        probes = [fed.lan.listen("b", SITE, stream) for _ in range(k)]
        hub_wants(fed, stream)
        before = {s: fed.link_bytes(s) for s in ("a", "b")}
        sent = fed.upstream("a")["sent_bytes"]
        rec = record(fed, path, stream)
        assert rec.wait(20) == 0, rec.stderr.read() if rec.stderr else ""
        for p in probes:
            p.wait(lambda m: len(m) >= N, 15, f"{N} blocks of {stream}")
        used[k] = {s: fed.link_bytes(s) - before[s] for s in ("a", "b")}
        moved[k] = fed.upstream("a")["sent_bytes"] - sent  # the stream's messages, in bytes
        for p in probes:
            assert len(p.close()) == N
        fed.wait(f"the hub's subscription to {stream!r} gone", lambda s=stream: (
            f"audio/{s}\0" not in fed.upstream("a")["hub_topics"]))  # fmt: skip
    print(f"link bytes (both ways) for {moved} B of messages: 1 subscriber {used[1]}, "
          f"5 subscribers {used[5]}")  # fmt: skip
    assert moved[1] > 0 and abs(moved[1] - moved[5]) < 0.01 * moved[1]  # headers' digits vary
    for site in ("a", "b"):
        one, five = used[1][site], used[5][site]
        # the stream crossed once: its bytes plus TCP/IP and control traffic, not twice them
        assert moved[1] < one < 1.5 * moved[1], (site, used, moved)
        assert abs(five - one) < 0.1 * one, (site, used)  # and once for five subscribers


def test_a_dropped_link_comes_back_within_two_heartbeats_and_counts_the_loss(
    fed: Federated, wav: tuple[Path, np.ndarray]
) -> None:
    path, _ = wav
    lan = fed.lan
    proc = lan.zaudio("b", "process", "tests.procs_chaos:span", "--name", "cutter",
                      "--topic", "cut", "--proxy", SITE)  # fmt: skip
    probe: Probe = lan.listen("b", SITE, "cut")
    hub_wants(fed, "cut")
    before = fed.upstream("b")
    rec = record(fed, path, "cut", seconds=6)
    probe.wait(lambda m: len(m) >= 20, 15, "the stream at B")
    stop(fed.relays.pop("b"), timeout=5)  # the link is cut: every connection through it resets
    down = fed.wait("B's link down", lambda: not fed.upstream("b")["up"] and fed.upstream("b"))
    cut_at = len(probe.messages)
    fed.relay("b")
    restored = time.time()
    msgs = probe.wait(lambda m: any(h["recv"] > restored for h in m[cut_at:]), 10, "data again")
    back = min(h["recv"] for h in msgs[cut_at:] if h["recv"] > restored) - restored
    after = fed.wait("B's link up", lambda: fed.upstream("b")["up"] and fed.upstream("b"))
    print(f"data back {back * 1000:.0f} ms after the link; upstream {after}")
    assert back < 2 * HEARTBEAT, back
    assert (
        down["losses"] == before["losses"] + 1 and after["reconnects"] == before["reconnects"] + 1
    )
    seqs = [h["seq"] for h in msgs]
    assert seqs != list(range(seqs[0], seqs[0] + len(seqs)))  # blocks lost while cut...
    cut = fed.wait("the loss in B's processor's counters", lambda: [
        n["stats"] for n in fed.listing("b")["nodes"]
        if n["name"] == "cutter" and n["stats"].get("gaps", 0) > 0])[0]  # fmt: skip
    assert cut["lost_frames"] > 0, cut  # ...and counted where they were missed
    ls = lan.run("b", "-m", "zaudio", "ls", "--proxy", SITE)
    assert f"{after['losses']} losses, {after['reconnects']} reconnects" in ls.stdout, ls.stdout
    probe.close()
    stop(rec)
    stop(proc)


def test_a_link_that_goes_silent_is_noticed_and_comes_back(
    fed: Federated, wav: tuple[Path, np.ndarray]
) -> None:
    """No reset this time: B's interface goes down (packets vanish) and up again."""
    path, _ = wav
    lan = fed.lan
    probe = lan.listen("b", SITE, "mute")
    hub_wants(fed, "mute")
    before = fed.upstream("b")
    rec = record(fed, path, "mute", seconds=8)
    probe.wait(lambda m: len(m) >= 20, 15, "the stream at B")
    sh("ip", "-n", lan.ns["b"], "link", "set", "eth0", "down")
    try:
        # ZeroMQ's heartbeats on the link notice within about a heartbeat
        fed.wait("B's link down", lambda: not fed.upstream("b")["up"], timeout=3 * HEARTBEAT + 2)
        cut_at = len(probe.messages)
    finally:
        sh("ip", "-n", lan.ns["b"], "link", "set", "eth0", "up")
    restored = time.time()
    msgs = probe.wait(lambda m: any(h["recv"] > restored for h in m[cut_at:]), 10, "data again")
    back = min(h["recv"] for h in msgs[cut_at:] if h["recv"] > restored) - restored
    after = fed.wait("B's link up", lambda: fed.upstream("b")["up"] and fed.upstream("b"))
    print(f"silent link: data back {back * 1000:.0f} ms after the interface came up")
    assert back < 2 * HEARTBEAT, back
    assert after["losses"] == before["losses"] + 1, (before, after)
    probe.close()
    stop(rec)
