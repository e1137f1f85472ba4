"""Several hosts for real: proxy, recorder and processors in separate network namespaces.

Hosts ``px`` (the proxy, bound to 0.0.0.0 inside its namespace), ``rec`` (the
recorder) and ``proc`` (a processor and a probe subscriber) share one bridged
/24 and nothing else. The recorder plays a WAV file of random float32 samples
in real time; the probe saves what it receives, which must be the file, sample
for sample, with contiguous ``seq``/``index``. Then the same with random packet
loss (iptables) and with 50 ms added delay (tests/relay.py), and with the
recorder's clock 5 s wrong.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.netns import Lan, stop

RATE = 16000
BLOCK = 160  # 10 ms
SECONDS = 1.5
N = int(RATE * SECONDS) // BLOCK


@pytest.fixture(scope="module")
def wav(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("audio") / "noise.wav"
    data = (np.random.default_rng(6).standard_normal(N * BLOCK) * 0.2).astype(np.float32)
    sf.write(path, data, RATE, subtype="FLOAT")
    return path, data


@pytest.fixture
def lan() -> Iterator[Lan]:
    with Lan("px", "rec", "proc") as net:
        net.zaudio("px", "proxy", "--host", "0.0.0.0", "--heartbeat", "0.2")
        net.wait_answers("proc", net.endpoint("px"))
        yield net


def node_stats(lan: Lan, name: str) -> dict[str, Any]:
    for node in lan.request("proc", lan.endpoint("px"), {"op": "list"})["nodes"]:
        if node["name"] == name:
            return node.get("stats") or {}  # type: ignore[no-any-return]
    return {}


def wait_stats(lan: Lan, name: str, pred: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        s = node_stats(lan, name)
        if s and pred(s):
            return s
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {s}")
        time.sleep(0.1)


def flow(
    lan: Lan,
    wav: tuple[Path, np.ndarray],
    tmp: Path,
    *,
    recorder_proxy: str | None = None,
    recorder_env: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Record the file from ``rec``; check exact delivery at ``proc``; (headers, stats)."""
    path, data = wav
    ep = lan.endpoint("px")
    proc = lan.zaudio("proc", "process", "tests.procs_chaos:quiet", "--name", "far",
                      "--topic", "noise", "--proxy", ep)  # fmt: skip
    probe = lan.listen("proc", ep, "noise", save=str(tmp / "got.npy"))
    wait_stats(lan, "far", lambda s: "received" in s, 15, "the processor to register")
    rec = lan.zaudio("rec", "record", "--source", f"file:{path}", "--stream", "noise",
                     "--block", str(BLOCK), "--proxy", recorder_proxy or ep,
                     env=recorder_env)  # fmt: skip
    assert rec.wait(SECONDS + 15) == 0, rec.stderr.read() if rec.stderr else ""
    probe.wait(lambda m: len(m) >= N, 10, f"{N} blocks at the probe")
    stats = wait_stats(lan, "far", lambda s: s.get("processed") == N, 10, "every block processed")
    headers = probe.close()
    stop(proc)
    got = np.load(tmp / "got.npy")
    # exactly the file: every block once, in order, sample for sample
    assert len(headers) == N
    assert [h["seq"] for h in headers] == list(range(N))
    assert [h["index"] for h in headers] == [k * BLOCK for k in range(N)]
    assert len({h["src"] for h in headers}) == 1
    assert got.shape == (N * BLOCK, 1) and np.array_equal(got[:, 0], data)
    assert stats["received"] == N and stats["gaps"] == stats["dropped"] == 0, stats
    return headers, stats


def latencies(headers: list[dict[str, Any]]) -> list[float]:
    """Receive time minus the time the block's last frame was captured (proxy time base)."""
    return [h["recv"] - (h["t"] + h["frames"] / h["rate"]) for h in headers]


def test_exact_across_hosts_with_a_wrong_recorder_clock(
    lan: Lan, wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    headers, stats = flow(lan, wav, tmp_path, recorder_env={"ZAUDIO_CLOCK_SKEW": "+5"})
    lat = latencies(headers)
    print(f"latency median {median(lat) * 1000:.2f} ms, max {max(lat) * 1000:.2f} ms; "
          f"processor lag {stats['lag'] * 1000:.2f} ms")  # fmt: skip
    # t is right although the recorder's clock is 5 s off: no block seems to arrive
    # more than 2 ms before it was captured (load only delays arrivals, so this
    # one-sided bound is the clock's precision on any machine), and the median is
    # nowhere near the 5 s skew (its upper bound leaves room for a loaded machine).
    assert -0.002 < median(lat) < 0.25, lat
    assert -0.002 < stats["lag"] < 0.5, stats


def test_exact_with_packet_loss(lan: Lan, wav: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    for host in ("px", "proc"):
        lan.drop(host, 0.02)
    headers, _ = flow(lan, wav, tmp_path)
    dropped = lan.dropped("px") + lan.dropped("proc")
    lat = latencies(headers)
    print(f"{dropped} packets dropped; latency median {median(lat) * 1000:.2f} ms, "
          f"max {max(lat) * 1000:.2f} ms")  # fmt: skip
    assert dropped > 0  # TCP retransmitted them: nothing is missing above


def test_added_delay_adds_only_the_delay(
    lan: Lan, wav: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    delay = 0.05
    px = lan.ip("px")
    routes = [f"127.0.0.1:{p}={px}:{p}" for p in (5555, 5556, 5557)]
    relay = lan.spawn("rec", "-m", "tests.relay", "--delay", str(delay), *routes)
    assert relay.stdout is not None and relay.stdout.readline().strip() == "ready"
    headers, stats = flow(lan, wav, tmp_path, recorder_proxy="tcp://127.0.0.1:5555")
    lat = latencies(headers)
    print(f"latency median {median(lat) * 1000:.2f} ms, max {max(lat) * 1000:.2f} ms; "
          f"processor lag {stats['lag'] * 1000:.2f} ms")  # fmt: skip
    # one-way recorder -> proxy crosses the relay once: latency grows by the delay only,
    # and the clock offset (measured through the relay both ways) stays right
    assert delay - 0.002 < median(lat) < delay + 0.01, lat
    assert delay - 0.002 < stats["lag"] < delay + 0.05, stats
