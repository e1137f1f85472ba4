"""The processor runtime: Python API, gaps and restarts, overrun policy, slow vs fast."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.helpers import Listener, listing, proxy_process, spawn, wait_node, wait_until
from zaudio.bus import Publisher
from zaudio.errors import ConfigError
from zaudio.overrun import OverrunQueue
from zaudio.protocol import AudioHeader
from zaudio.proxy import Proxy
from zaudio.runtime import Info, Processor, run_processor
from zaudio.subscriber import subscribe
from zaudio.tracking import StreamTracker

RATE = 1000

# every test here runs on the compiled wire and on the Python one (conftest.wire)
pytestmark = pytest.mark.usefixtures("wire")


def block(k: int, frames: int = 8, channels: int = 1) -> np.ndarray:
    return np.full((frames, channels), k, np.float32) + np.arange(frames, dtype=np.float32)[:, None]


def test_processor_api_start_stop_and_counters(proxy: Proxy) -> None:
    seen: list[tuple[np.ndarray, Info]] = []

    def keep(b: np.ndarray, info: Info) -> None:
        seen.append((b, info))

    with Processor(keep, topics=["lab-a/"], proxy=proxy.control, name="keep") as proc:
        wait_until(lambda: proc.ready, 10, "processor ready")
        with (
            Publisher("lab-a/x", rate=RATE, channels=1, proxy=proxy.control) as a,
            Publisher("lab-b/x", rate=RATE, channels=1, proxy=proxy.control) as b,
        ):
            for k in range(10):
                assert b.send(block(k))
                assert a.send(block(k))
            wait_until(lambda: proc.processed == 10, 10, "10 blocks processed")
    assert {i.stream for _, i in seen} == {"lab-a/x"}
    assert [i.seq for _, i in seen] == list(range(10))
    for k, (b_, info) in enumerate(seen):
        assert not b_.flags.writeable  # a read-only view of the received frame
        np.testing.assert_array_equal(b_, block(k))
        assert (info.index, info.frames, info.rate, info.channels) == (8 * k, 8, RATE, 1)
        assert info.v == 1 and not info.gap and not info.restart
    s = proc.stats()
    assert s["received"] == s["processed"] == 10 and s["dropped"] == s["gaps"] == 0


def test_run_processor_gaps_and_restarts(proxy: Proxy) -> None:
    seen: list[Info] = []
    stop = threading.Event()
    done = threading.Event()
    result: dict[str, Processor] = {}

    def keep(b: np.ndarray, info: Info) -> None:
        seen.append(info)

    def runner() -> None:
        result["p"] = run_processor(keep, topics="mic", proxy=proxy.control, stop=stop)
        done.set()

    th = threading.Thread(target=runner)
    th.start()
    try:
        wait_node(proxy.control, "keep")
        with Publisher("mic", rate=RATE, channels=1, proxy=proxy.control) as pub:
            for k in range(5):
                if k == 3:
                    pub.stream.skip(8)  # one block of 8 frames never sent
                assert pub.send(block(k))
        with Publisher("mic", rate=RATE, channels=1, proxy=proxy.control) as pub2:
            assert pub2.send(block(9))
        wait_until(lambda: len(seen) == 6, 10, "six blocks")
    finally:
        stop.set()
        th.join(10)
    assert done.is_set()
    assert [(i.seq, i.gap, i.restart) for i in seen] == [
        (0, False, False),
        (1, False, False),
        (2, False, False),
        (4, True, False),
        (5, False, False),
        (0, False, True),  # a new src is a restart, not a gap
    ]
    s = result["p"].stats()
    assert s["gaps"] == 1 and s["lost_frames"] == 8 and s["received"] == 6


def test_subscribe_yields_exact_read_only_blocks(proxy: Proxy) -> None:
    got: list[tuple[np.ndarray, Info]] = []

    def consume() -> None:
        for b, info in subscribe("mic", proxy=proxy.control, timeout=5, name="sub1"):
            got.append((np.array(b), info))
            assert not b.flags.writeable
            if len(got) == 10:
                break

    th = threading.Thread(target=consume)
    th.start()
    try:
        wait_node(proxy.control, "sub1", role="subscriber")
        with (
            Publisher("mic", rate=RATE, channels=2, proxy=proxy.control) as mic,
            Publisher("mic2", rate=RATE, channels=2, proxy=proxy.control) as mic2,
        ):
            for k in range(10):
                assert mic2.send(block(-k, channels=2))
                assert mic.send(block(k, channels=2))
    finally:
        th.join(10)
    assert [i.seq for _, i in got] == list(range(10))
    for k, (b, info) in enumerate(got):
        assert info.stream == "mic"
        np.testing.assert_array_equal(b, block(k, channels=2))
    # the generator left the registry when it was closed
    wait_until(
        lambda: all(n["name"] != "sub1" for n in listing(proxy.control)["nodes"]), 5, "unregister"
    )


def _header(seq: int) -> AudioHeader:
    return AudioHeader(
        v=1, stream="s", src="x", seq=seq, index=seq, t=0.0, rate=RATE, channels=1, frames=1,
        dtype="float32",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "kept"), [("drop-oldest", [6, 7, 8, 9]), ("drop-newest", [0, 1, 2, 3])]
)
def test_overrun_policy(policy: Any, kept: list[int]) -> None:
    q = OverrunQueue(4, policy, StreamTracker())
    for seq in range(10):
        q.put((_header(seq), None))
    assert [h.seq for h, _ in q.items] == kept
    assert q.dropped == 6


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="on_overrun"):
        Processor(lambda b: None, on_overrun="drop-all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="window"):
        Processor(lambda b: None, window="soon")
    with pytest.raises(ConfigError, match="invalid processor name"):
        Processor(lambda b: None, name="no spaces")


@pytest.fixture
def bus() -> Iterator[str]:
    with proxy_process("--heartbeat", "0.2") as (control, _proc):
        yield control


def test_slow_function_drops_are_counted_fast_one_gets_everything(bus: str) -> None:
    n = 200
    with (
        spawn("process", "tests.procs.basic:slow", "--topic", "mic", "--queue", "4",
              "--proxy", bus) as slow,
        spawn("process", "tests.procs.basic:count", "--topic", "mic", "--name", "fast",
              "--proxy", bus) as fast,
        Listener(bus, "result/fast") as lis,
    ):  # fmt: skip
        wait_node(bus, "slow")
        wait_node(bus, "fast")
        with Publisher("mic", rate=RATE, channels=1, proxy=bus) as pub:
            for k in range(n):
                assert pub.send(block(k))
            got = lis.collect(n, timeout=20)
        assert [h.seq for h, _ in got] == list(range(n))

        def settled() -> dict[str, Any] | None:
            s = {x["name"]: x["stats"] for x in listing(bus)["nodes"]}.get("slow") or {}
            done = s.get("received") == n and s.get("queued") == 0
            return s if done and s["processed"] + s["dropped"] == n else None

        s = wait_until(settled, 20, "the slow processor to drain")
        assert s["dropped"] > n / 2 and s["processed"] >= 4
        assert s["gaps"] == 0  # nothing was lost before it: every loss was its own, counted
        assert s["rtf"] > 1  # slower than real time, and it says so
        fast_stats = {x["name"]: x["stats"] for x in listing(bus)["nodes"]}["fast"]
        assert fast_stats["dropped"] == 0 and fast_stats["processed"] == n
        assert slow.poll() is None and fast.poll() is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hop": "10ms"}, "--hop needs --window"),
        ({"window": "soon"}, "invalid window"),
        ({"topics": "no spaces!"}, "invalid --topic"),
    ],
)
def test_subscribe_rejects_what_processor_rejects_with_config_error(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Processor(lambda b: None, **options)
    with pytest.raises(ConfigError, match=message):
        next(subscribe(proxy="tcp://127.0.0.1:9", timeout=0.1, **options))


def test_output_stream_is_listed_again_after_a_proxy_restart() -> None:
    """kill -9 the proxy, start it again: the processor's output stream is back in `list`."""

    def gain(b: np.ndarray) -> np.ndarray:
        return b * np.float32(0.5)

    def outputs(control: str) -> list[dict[str, Any]]:
        try:
            streams = listing(control)["streams"]
        except Exception:
            return []
        return [(s["name"], s["rate"], s["channels"]) for s in streams if s["name"] == "gain"]

    with proxy_process("--heartbeat", "0.2") as (control, px):
        port = control.rsplit(":", 1)[1]
        with (
            Processor(gain, topics="mic", proxy=control) as proc,
            Publisher("mic", rate=RATE, channels=1, proxy=control) as mic,
        ):
            wait_until(lambda: proc.ready, 10, "processor ready")
            assert mic.send(block(0))
            before = wait_until(lambda: outputs(control), 10, "output stream listed")
            assert before == [("gain", RATE, 1)]
            px.kill()
            px.wait(5)
            with spawn("proxy", "--port", port, "--heartbeat", "0.2"):
                wait_until(lambda: proc.client and proc.client.registrations == 2, 15,
                           "processor registered again")  # fmt: skip
                assert wait_until(lambda: outputs(control), 10, "output listed again") == before
                assert any(n["name"] == "gain" for n in listing(control)["nodes"])
