"""Results in index order: the pure Reorder, then a real group through zaudio.results and the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import zaudio
from tests.helpers import Listener, run, spawn, wait_until
from tests.test_groups import FRAMES, RATE, Results, member, publish, settled
from zaudio.ordered import Reorder
from zaudio.protocol import ResultHeader
from zaudio.proxy import Proxy
from zaudio.publisher import Publisher


def result(index: int, frames: int = 10, stream: str = "mic") -> ResultHeader:
    return ResultHeader(1, "g", stream, "s", 0, index, frames, 0.0, index)


def indices(out: Iterator[ResultHeader]) -> list[int]:
    return [r.index for r in out]


def test_reorder_releases_in_index_order_and_counts_what_it_skips() -> None:
    o = Reorder(2.0)
    o.push(result(10), 0.0)
    o.push(result(0), 0.1)
    assert indices(o.pop(0.5)) == []  # the first is waited out: an earlier one may come
    assert o.wait(0.5) == pytest.approx(1.5)
    assert indices(o.pop(2.0)) == [0, 10]
    o.push(result(30), 2.1)  # 20 is missing
    o.push(result(40), 2.2)
    assert indices(o.pop(3.0)) == []
    o.push(result(20), 3.0)  # came in time
    assert indices(o.pop(3.0)) == [20, 30, 40]
    o.push(result(60), 3.1)  # 50 never comes
    assert indices(o.pop(5.0)) == []
    assert indices(o.pop(5.2)) == [60]
    o.push(result(50), 5.3)  # after its place went by
    o.push(result(60), 5.4)  # again
    o.push(result(70), 5.5)
    o.push(result(70), 5.6)  # twice while held
    assert indices(o.pop(5.6)) == [70]
    assert o.stats() == {
        "released": 7, "held": 0, "skipped": 1, "skipped_frames": 10, "late": 1, "duplicates": 2,
    }  # fmt: skip


def test_reorder_overlapping_windows_step_by_the_hop() -> None:
    o = Reorder(1.0)
    for i, index in enumerate([0, 5, 15, 10, 20]):  # windows of 10 frames every 5
        o.push(result(index), i * 0.01)
    assert indices(o.pop(1.0)) == [0, 5, 10, 15, 20]
    o.push(result(30), 1.1)  # 25 is missing: one window skipped
    assert indices(o.pop(2.2)) == [30]
    assert o.skipped == 1 and o.skipped_frames == 5


def test_reorder_keeps_streams_apart() -> None:
    o = Reorder(0.5)
    o.push(result(0, stream="a"), 0.0)
    o.push(result(0, stream="b"), 0.0)
    o.push(result(10, stream="b"), 0.0)
    assert [(r.stream, r.index) for r in o.pop(0.5)] == [("a", 0), ("b", 0), ("b", 10)]


@pytest.fixture
def bus() -> Iterator[str]:
    with Proxy(port=0, heartbeat=1.0) as p:
        yield p.control


def test_group_results_come_in_order_through_results_and_the_cli(bus: str) -> None:
    with member(bus), member(bus), member(bus):
        settled(bus, 3)
        got: list[ResultHeader] = []
        stats: dict[str, Any] = {}
        ready = threading.Event()

        def consume() -> None:
            it = zaudio.results("g", ordered=True, reorder="1s", proxy=bus, timeout=3, stats=stats)
            ready.set()
            got.extend(it)

        consumer = threading.Thread(target=consume)
        consumer.start()
        try:
            with spawn(
                "results", "g", "--ordered", "--reorder", "1s", "--timeout", "3", "--proxy", bus
            ) as cli, Listener(bus, "result/g") as listener:  # fmt: skip
                ready.wait(5)
                wait_until(lambda: _consumers(bus) == 2, 15, "both consumers to register")
                with Publisher("mic", rate=RATE, channels=1, proxy=bus) as pub:
                    n = publish(pub, Results(listener), 3.0, {})
                out, err = cli.communicate(timeout=30)
            assert cli.returncode == 0, err
        finally:
            consumer.join(30)
        expected = [i * FRAMES for i in range(n)]
        assert [r.index for r in got] == expected
        assert stats["skipped"] == 0 and stats["duplicates"] == 0 and stats["late"] == 0
        lines = [json.loads(line) for line in out.splitlines()]
        assert [line["index"] for line in lines] == expected
        assert len({line["data"]["pid"] for line in lines}) == 3


def _consumers(control: str) -> int:
    from tests.helpers import listing

    return sum(n["role"] == "consumer" for n in listing(control)["nodes"])


def test_results_rejects_a_bad_reorder() -> None:
    r = run("results", "g", "--ordered", "--reorder", "soon")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "Error: invalid reorder 'soon': use e.g. 250ms, 1.5s, 2m or plain seconds"
    ]
