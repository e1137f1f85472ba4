"""Failures survived with nothing lost silently: real processes killed, stopped, restarted.

A proxy process, a real-time ``zaudio record`` (sine, 8 kHz, 10 ms blocks) and
``zaudio process`` nodes running functions from tests/procs_chaos. Every
processor's counters come from the proxy's ``list`` (its heartbeats); the
recorder's final ``sent`` count from its exit line.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Listener, answers, free_ports, listing, spawn, stop, wait_node, wait_until

RATE = 8000
BLOCK = 80  # 10 ms
HEARTBEAT = 0.2


@contextlib.contextmanager
def proxy_on(port: int) -> Iterator[subprocess.Popen[str]]:
    control = f"tcp://127.0.0.1:{port}"
    with spawn("proxy", "--port", str(port), "--heartbeat", str(HEARTBEAT)) as proc:
        wait_until(lambda: answers(control) or proc.poll() is not None, 15, "proxy to answer")
        assert proc.poll() is None
        yield proc


@pytest.fixture
def bus() -> Iterator[tuple[str, int]]:
    port = free_ports(3)
    with proxy_on(port):
        yield f"tcp://127.0.0.1:{port}", port


def record(control: str, stream: str = "mic", *extra: str) -> Any:
    return spawn("record", "--source", "sine:440", "--stream", stream, "--rate", str(RATE),
                 "--block", str(BLOCK), "--proxy", control, *extra)  # fmt: skip


def process(control: str, name: str, fn: str = "quiet", *extra: str) -> Any:
    return spawn("process", f"tests.procs_chaos:{fn}", "--name", name, "--topic", "mic",
                 "--proxy", control, *extra)  # fmt: skip


def stats(control: str) -> dict[str, dict[str, Any]]:
    try:
        nodes = listing(control)["nodes"]
    except Exception:
        return {}
    return {n["name"]: n.get("stats") or {} for n in nodes}


def wait_stats(control: str, pred: Any, what: str, timeout: float = 15) -> dict[str, Any]:
    try:
        return wait_until(lambda: (s := stats(control)) and pred(s) and s, timeout, what)  # type: ignore[no-any-return]
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last stats: {stats(control)}") from None


def flowing(names: list[str], n: int = 20) -> Any:
    return lambda s: all(s.get(p, {}).get("processed", 0) >= n for p in names)


def finish_recorder(proc: subprocess.Popen[str]) -> int:
    """SIGINT the recorder (it flushes and disconnects); return how many blocks it sent."""
    assert stop(proc, signal.SIGINT) == 0
    assert proc.stderr is not None
    err = proc.stderr.read()
    m = re.search(r"sent (\d+) blocks .* dropped (\d+)", err)
    assert m, err
    assert int(m[2]) == 0, err
    return int(m[1])


def all_received(names: list[str], sent: int) -> Any:
    return lambda s: all(s.get(p, {}).get("received") == sent for p in names)


def clean(s: dict[str, Any], sent: int) -> None:
    """A processor that lost nothing: every block received and processed, no gap."""
    assert s["received"] == sent and s["processed"] == sent, s
    assert s["gaps"] == s["lost_frames"] == s["dropped"] == s["malformed"] == 0, s


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_kill_9_a_processor(bus: tuple[str, int]) -> None:
    control, _ = bus
    names = ["p1", "p2"]
    with process(control, "p1"), process(control, "p2"), process(control, "victim") as victim:
        for n in [*names, "victim"]:
            wait_node(control, n)
        with record(control) as rec:
            wait_stats(control, flowing([*names, "victim"]), "audio to flow")
            victim.kill()
            victim.wait(5)
            # the proxy forgets it after 3 missed heartbeats; the others go on
            wait_until(lambda: "victim" not in stats(control), 5, "victim to expire")
            before = stats(control)
            wait_stats(control, lambda s: all(s[p]["processed"] > before[p]["processed"] + 30
                                              for p in names), "more audio")  # fmt: skip
            sent = finish_recorder(rec)
        final = wait_stats(control, all_received(names, sent), "every block to arrive")
        for p in names:
            clean(final[p], sent)


def test_sigstop_a_processor(bus: tuple[str, int]) -> None:
    control, _ = bus
    with process(control, "p1"), process(control, "sleeper") as sleeper:
        for n in ("p1", "sleeper"):
            wait_node(control, n)
        with record(control) as rec:
            wait_stats(control, flowing(["p1", "sleeper"]), "audio to flow")
            hwm_before = vm_hwm_kib(sleeper.pid)
            os.kill(sleeper.pid, signal.SIGSTOP)
            try:
                # the proxy drops the silent node; p1 keeps going
                wait_until(lambda: "sleeper" not in stats(control), 5, "sleeper to expire")
                mid = stats(control)["p1"]
                time.sleep(3 - 3 * HEARTBEAT)  # the stall itself is the point of this test
                assert stats(control)["p1"]["processed"] > mid["processed"] + 150
            finally:
                os.kill(sleeper.pid, signal.SIGCONT)
            # it re-registers by itself, catches up (or counts what it lost), is live again
            wait_stats(
                control,
                lambda s: (
                    (x := s.get("sleeper", {})).get("queued") == 0
                    and x.get("lag") is not None
                    and x["lag"] < 0.2
                ),
                "the sleeper to process live audio again",
            )
            hwm_after = vm_hwm_kib(sleeper.pid)
            sent = finish_recorder(rec)
        final = wait_stats(control, all_received(["p1", "sleeper"], sent), "every block")
    clean(final["p1"], sent)
    s = final["sleeper"]
    print("sleeper after a 3 s stall:", s, "VmHWM KiB", hwm_before, "->", hwm_after)
    # every block sent reached it or is counted as lost; every block it received was
    # processed or dropped (counted): none silently
    assert s["received"] * BLOCK + s["lost_frames"] == sent * BLOCK, s
    assert s["processed"] + s["dropped"] == s["received"], s
    assert hwm_after - hwm_before < 50 * 1024, (hwm_before, hwm_after)


def test_kill_9_the_proxy_and_restart_it(bus: tuple[str, int]) -> None:
    control, port = bus
    names = ["p1", "p2"]
    stack = contextlib.ExitStack()
    with process(control, "p1"), process(control, "p2"):
        for n in names:
            wait_node(control, n)
        rec = stack.enter_context(record(control))
        wait_stats(control, flowing(names), "audio to flow")
        with stack, Listener(control, "mic") as lis:
            old_proxy = _proxy_pid(control)
            os.kill(old_proxy, signal.SIGKILL)
            wait_until(lambda: not answers(control), 5, "the proxy to die")
            time.sleep(0.5)  # an outage: the recorder keeps capturing meanwhile
            with proxy_on(port):
                restarted = time.monotonic()
                lis.recv(2 * HEARTBEAT + 3)
                flowed = time.monotonic() - restarted
                back = wait_stats(control, lambda s: {"mic", *names} <= set(s),
                                  "every node to register again", timeout=10)  # fmt: skip
                reregistered = time.monotonic() - restarted
                del back
                wait_stats(control, flowing(names, 200), "audio to flow again")
                sent = finish_recorder(rec)
                final = wait_stats(
                    control,
                    lambda s: all(
                        s.get(p, {}).get("received", 0) * BLOCK + s[p]["lost_frames"]
                        == sent * BLOCK
                        for p in names
                    ),
                    "every processor to account for every frame",
                )
    print(f"data again after {flowed:.2f} s, all registered after {reregistered:.2f} s")
    assert flowed < 2.0
    for p in names:
        s = final[p]
        # the missing span (if any) is whole blocks, counted exactly (gaps counts blocks)
        assert s["lost_frames"] == s["gaps"] * BLOCK, s
        # ...and only what was in flight when the proxy died: the recorder kept the
        # outage in its buffer and held it until the processors had resubscribed
        assert s["gaps"] <= 10, s
        assert s["dropped"] == s["malformed"] == 0, s
        assert s["processed"] == s["received"], s
        print(p, "lost", s["lost_frames"], "frames in", s["gaps"], "gap(s)")


def _proxy_pid(control: str) -> int:
    pid = listing(control)["proxy"]["pid"]
    assert isinstance(pid, int)
    return pid


def test_slow_processor_drops_and_counts_others_lose_nothing(bus: tuple[str, int]) -> None:
    control, _ = bus
    with process(control, "p1"), process(control, "slow", "slow", "-p", "delay=0.03"):
        for n in ("p1", "slow"):
            wait_node(control, n)
        with record(control) as rec:
            wait_stats(control, lambda s: s.get("slow", {}).get("dropped", 0) > 20,
                       "the slow one to drop")  # fmt: skip
            sent = finish_recorder(rec)
        final = wait_stats(
            control,
            lambda s: (
                s["p1"].get("received") == sent
                and s["slow"].get("received") == sent
                and s["slow"]["processed"] + s["slow"]["dropped"] == sent
            ),
            "every block",
        )
    clean(final["p1"], sent)
    s = final["slow"]
    assert s["processed"] + s["dropped"] == s["received"] == sent, s
    assert s["dropped"] > 0 and s["gaps"] == 0 and s["rtf"] > 1, s


def test_recorder_restart_is_a_new_src_not_a_gap(bus: tuple[str, int]) -> None:
    control, _ = bus
    window = ["--window", str(3 * BLOCK), "--hop", str(BLOCK)]
    with (
        process(control, "win", "span", *window),
        process(control, "blk", "span"),
        Listener(control, "result/win", "result/blk") as lis,
    ):
        wait_node(control, "win")
        wait_node(control, "blk")
        sent: list[int] = []
        for _ in range(2):
            with record(control) as rec:
                wait_stats(control, flowing(["win", "blk"], sum(sent) + 10), "audio")
                sent.append(finish_recorder(rec))
            wait_until(lambda: "mic" not in stats(control), 5, "the recorder to leave")
        total = sum(sent)
        final = wait_stats(control, all_received(["win", "blk"], total), "all blocks")
        n = final["win"]["processed"] + final["blk"]["processed"]
        results = [(h.processor, h.data) for h, _ in lis.collect(n, timeout=5)]
    for name in ("win", "blk"):
        s = final[name]
        assert s["gaps"] == s["lost_frames"] == s["dropped"] == 0, s
    blk = [r for p, r in results if p == "blk"]
    win = [r for p, r in results if p == "win"]
    srcs = list(dict.fromkeys(r["src"] for r in blk))
    assert len(srcs) == 2 and srcs == list(dict.fromkeys(r["src"] for r in win))
    assert not any(r["gap"] for r in blk + win)
    # per block: the first block of the new run is flagged a restart, nothing else is
    assert [r["restart"] for r in blk] == [r is blk[sent[0]] for r in blk]
    assert [r["index"] for r in blk] == [BLOCK * k for k in range(sent[0])] + [
        BLOCK * k for k in range(sent[1])
    ]
    # windows restart from the new run's first frame: no window mixes the two runs
    for src, count in zip(srcs, sent, strict=True):
        spans = [r["index"] for r in win if r["src"] == src]
        assert spans == [BLOCK * k for k in range(count - 2)]
    assert all(r["frames"] == 3 * BLOCK for r in win)
    # the restart is reported on the first window of the new run, though the block
    # that revealed it was too short to complete a window
    assert [r["restart"] for r in win] == [r is win[sent[0] - 2] for r in win]
