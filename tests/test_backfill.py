"""History for late joiners on the subscriber side (``since=``, ``--since``): the seam, the fallback.

Real processes: a ``zaudio proxy --history`` and a paced ``zaudio record`` at 100
blocks a second; the subscribers are ``zaudio.subscribe`` generators, a
``zaudio.Processor`` and ``zaudio process`` processes.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import Listener, proxy_process, run, spawn, stop, wait_node, wait_until
from zaudio.client import request
from zaudio.runtime import Processor
from zaudio.subscriber import subscribe

RATE = 48000


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    """A proxy keeping 10 s, and a recorder publishing ``mic`` (stereo, 10 ms blocks)."""
    with (
        proxy_process("--history", "10s") as (control, _),
        spawn(
            "record", "--source", "sine:440", "--stream", "mic", "--channels", "2",
            "--block", "10ms", "--proxy", control,
        ),
    ):  # fmt: skip
        wait_until(lambda: kept(control) >= 100, 20, "a second of history")
        yield control


def kept(control: str) -> int:
    try:
        history = request(control, {"op": "list"}, timeout=1.0)["proxy"]["history"]
    except Exception:
        return 0
    return int(history["streams"].get("mic", {}).get("messages", 0)) if history else 0


def check_seam(infos: list[Any]) -> None:
    """History first, then live; one src; seq and index contiguous: no gap, no duplicate."""
    flags = [i.history for i in infos]
    n = flags.count(True)
    assert n >= 1 and flags == [True] * n + [False] * (len(flags) - n), flags
    for a, b in zip(infos, infos[1:], strict=False):
        assert (b.src, b.seq, b.index) == (a.src, a.seq + 1, a.index + a.frames), (a, b)
        assert not b.gap and not b.restart


def take(since: str, live_blocks: int, control: str, **kw: Any) -> tuple[list[Any], dict[str, Any]]:
    """Infos of one short ``subscribe(since=...)``: its history and ``live_blocks`` live ones."""
    infos: list[Any] = []
    stats: dict[str, Any] = {}
    gen = subscribe("mic", proxy=control, since=since, timeout=5, stats=stats, **kw)
    try:
        for _, info in gen:
            infos.append(info)
            if sum(not i.history for i in infos) >= live_blocks:
                break
    finally:
        gen.close()
    return infos, stats


def test_the_seam_is_exact_in_100_of_100_trials(live: str) -> None:
    spans = []
    overlapped = 0
    for _ in range(100):
        infos, stats = take("0.5s", 3, live)
        check_seam(infos)
        assert stats["rejected"] == 0 and stats["gaps"] == 0, stats
        assert stats["history"] == "full", stats
        assert stats["history_blocks"] >= sum(i.history for i in infos)
        overlapped += stats["history_overlapped"]
        first_live = next(i for i in infos if not i.history)
        spans.append((first_live.index - infos[0].index) / RATE)
    # the first block starts `since` before live (arrival times at the proxy: median)
    assert 0.4 <= statistics.median(spans) <= 0.6, spans
    print(f"\n100 trials: history span median {statistics.median(spans):.3f} s, "
          f"live blocks dropped as overlapped: {overlapped}")  # fmt: skip


def test_since_longer_than_kept_gets_what_is_kept(live: str) -> None:
    infos, stats = take("1h", 2, live)
    check_seam(infos)
    assert stats["history"] == "short"
    assert sum(i.history for i in infos) >= 100  # the second kept before the test began


def test_windows_and_format_apply_to_history_as_to_live(live: str) -> None:
    infos: list[Any] = []
    shapes = set()
    gen = subscribe(
        "mic", proxy=live, since="0.3s", window="25ms", rate=16000, channels=1, timeout=5
    )
    try:
        for block, info in gen:
            infos.append(info)
            shapes.add((block.shape, block.dtype))
            if sum(not i.history for i in infos) >= 4:
                break
    finally:
        gen.close()
    assert shapes == {((400, 1), np.dtype(np.float32))}
    flags = [i.history for i in infos]
    n = flags.count(True)
    assert n >= 8 and flags == [True] * n + [False] * (len(flags) - n)
    for a, b in zip(infos, infos[1:], strict=False):
        assert b.index == a.index + 400 and not b.gap, (a, b)
        assert (b.rate, b.channels, b.frames) == (16000, 1, 400)


def test_processor_since(live: str) -> None:
    infos: list[Any] = []
    done = Processor(lambda block, info: infos.append(info), topics="mic", proxy=live,
                            since="0.5s", name="hist-proc")  # fmt: skip
    with done:
        wait_until(lambda: sum(not i.history for i in list(infos)) >= 5, 10, "live blocks")
    check_seam(list(infos))
    stats = done.stats()
    assert stats["history"] == "full" and stats["rejected"] == 0 and stats["gaps"] == 0
    assert stats["history_blocks"] >= 40


def test_since_without_history_starts_live_and_says_so(
    proxy_proc: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "zaudio.backfill")
    with spawn("record", "--source", "sine:440", "--stream", "mic", "--proxy", proxy_proc):
        wait_node(proxy_proc, "mic")
        infos, stats = take("2s", 3, proxy_proc)
    assert [i.history for i in infos] == [False, False, False]
    assert stats["history"] == "off" and stats["history_blocks"] == 0
    assert any("keeps no history" in r.getMessage() for r in caplog.records)


def test_a_processor_restarted_with_since_loses_nothing_of_its_outage(live: str) -> None:
    args = ("process", "tests.procs.history:position", "--topic", "mic", "--name", "pos",
            "--proxy", live)  # fmt: skip
    with Listener(live, "result/pos") as results:
        with spawn(*args) as first:
            wait_until(lambda: results.inlet.recv(5) is not None, 15, "a first result")
            got = [h.data for h, _ in results.collect(20)]
            stop(first, 9)  # SIGKILL: no disconnect, nothing flushed
        # the outage: from the kill until the new process has started and asked (~1-2 s)
        outage_start = got[-1]["seq"]
        with spawn(*args, "--since", "8s"):
            # until the restarted processor is past its history, and 50 blocks more
            for _ in range(5000):
                h, _ = results.recv(15)
                data: dict[str, Any] = h.data  # type: ignore[union-attr]
                got.append(data)
                if not data["history"] and data["seq"] > outage_start + 50:
                    break
    seqs = {d["seq"] for d in got if d["src"] == got[0]["src"]}
    assert set(range(got[0]["seq"], max(seqs) + 1)) <= seqs  # every block is covered
    assert any(d["history"] and d["seq"] > outage_start for d in got)  # the outage, replayed


def test_the_backfill_bench_prints_its_table(tmp_path: Path) -> None:
    """5 s of 48 kHz stereo history, measured (no timing assertion: the table is the output)."""
    out = tmp_path / "bench.json"
    proc = run("bench", "--scenario", "backfill", "--quick", "--json", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    print("\n" + proc.stdout[proc.stdout.index("| figure") :])
    figures = {f["key"]: f for f in json.loads(out.read_text())["figures"]}
    assert set(figures) == {"backfill_ms", "backfill_fetch_ms"}
    assert all(len(f["zaudio"]) == 5 == len(f["baseline"]) for f in figures.values())


def test_a_slow_processor_gets_the_whole_backfill_and_live_under_its_overrun_policy(
    live: str,
) -> None:
    infos: list[Any] = []

    def slow(block: Any, info: Any) -> None:
        infos.append(info)
        time.sleep(0.02)  # twice as slow as real time: the work, not a synchronisation

    proc = Processor(slow, topics="mic", proxy=live, since="0.5s", queue=10, name="hist-slow")
    with proc:
        wait_until(lambda: proc.stats()["dropped"] > 0, 20, "the overrun policy to drop")
        wait_until(lambda: any(not i.history and i.gap for i in list(infos)), 20, "a gap")
    got = list(infos)
    stats = proc.stats()
    history = [i for i in got if i.history]
    assert len(history) == stats["history_blocks"] >= 40  # the backfill, every block of it
    check_seam(history)
    first_gap = next(k for k, i in enumerate(got) if i.gap)
    assert not got[first_gap].history
    check_seam(got[:first_gap])  # history, then live in order, until the policy dropped
    assert stats["dropped"] > 0 and stats["rejected"] == 0 and stats["gaps"] == 0


def test_bad_since_exits_2_in_one_line() -> None:
    for value, message in (("soon", "invalid since 'soon'"), ("-1s", "invalid since '-1s'")):
        result = run("process", "tests.procs.history:position", "--since", value)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr


def test_a_pipeline_file_takes_history_and_since(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(
        '[proxy]\nhistory = "30s"\nhistory_bytes = "100MB"\n\n'
        '[recorder.mic]\nsource = "sine:440"\n\n'
        '[processor.lvl]\nfunction = "level"\ntopics = ["mic"]\nsince = "2s"\n'
    )
    result = run("check", str(path))
    assert result.returncode == 0, result.stderr
    bad = path.read_text().replace('since = "2s"', 'since = "2 fortnights"')
    path.write_text(bad)
    result = run("check", str(path))
    assert result.returncode == 2 and "since" in result.stderr + result.stdout
