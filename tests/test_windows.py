"""Exact re-blocking into windows across message boundaries, and what happens on a gap."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.helpers import Listener, spawn, wait_node
from zaudio.bus import Publisher
from zaudio.proxy import Proxy
from zaudio.subscriber import subscribe
from zaudio.windows import Windower

RATE = 1000


def _feed(
    w: Windower, signal: np.ndarray, sizes: list[int], start: int = 0
) -> list[tuple[np.ndarray, int, int, float]]:
    out = []
    pos = 0
    for seq, n in enumerate(sizes):
        block = signal[pos : pos + n]
        out.extend(w.push(block, start + pos, seq, 100.0 + (start + pos) / RATE, RATE))
        pos += n
    return out


@pytest.mark.parametrize(("window", "hop"), [(50, 50), (50, 20), (30, 70), (1, 1), (200, 200)])
def test_windows_are_exact_slices(window: int, hop: int) -> None:
    rng = np.random.default_rng(window * 1000 + hop)
    sizes = [int(n) for n in rng.integers(1, 90, size=60)]
    total = sum(sizes)
    signal = rng.standard_normal((total, 2)).astype(np.float32)
    got = _feed(Windower(window, hop, 2), signal, sizes, start=1000)
    starts = list(range(0, total - window + 1, hop))
    assert [idx - 1000 for _, idx, _, _ in got] == starts
    for (data, idx, seq, t), s in zip(got, starts, strict=True):
        np.testing.assert_array_equal(data, signal[s : s + window])
        assert t == pytest.approx(100.0 + idx / RATE)
        # seq is that of the block holding the first frame
        assert seq == int(np.searchsorted(np.cumsum(sizes), s, side="right"))
        assert data.flags.writeable and data.base is None  # a copy the user may keep


def test_reset_discards_partial_window() -> None:
    w = Windower(10, 10, 1)
    sig = np.arange(100, dtype=np.float32).reshape(-1, 1)
    assert list(w.push(sig[:7], 0, 0, 0.0, RATE)) == []
    w.reset()
    got = list(w.push(sig[50:65], 50, 5, 0.05, RATE))
    assert len(got) == 1 and got[0][1] == 50
    np.testing.assert_array_equal(got[0][0], sig[50:60])


def test_subscribe_windows_reassemble_and_reset_on_gap(proxy: Proxy) -> None:
    """Python API: subscribe(window=, hop=) rebuilds the source exactly; a gap resets."""
    rng = np.random.default_rng(1)
    sizes = [int(n) for n in rng.integers(5, 40, size=40)]
    signal = rng.standard_normal((sum(sizes), 1)).astype(np.float32)
    skip_after, skipped = 20, 13  # frames lost (never sent) after block 20
    before = sum(sizes[:skip_after])
    resume = before + skipped
    # windows of 16 from 0 up to the gap, then from the first frame after it
    expected = [*range(0, before - 15, 16), *range(resume, sum(sizes) + skipped - 15, 16)]
    got: list[tuple[np.ndarray, object]] = []

    def consume() -> None:
        gen = subscribe("win", proxy=proxy.control, window=16, hop=16, timeout=5)
        for block, info in gen:
            got.append((block, info))
            if info.index == expected[-1]:
                break
        gen.close()

    th = threading.Thread(target=consume)
    th.start()
    try:
        # registration comes after the subscription is confirmed at the proxy
        wait_node(proxy.control, "subscribe")
        with Publisher("win", rate=RATE, channels=1, proxy=proxy.control) as pub:
            pos = 0
            for k, n in enumerate(sizes):
                if k == skip_after:
                    pub.stream.skip(skipped)
                assert pub.send(signal[pos : pos + n])
                pos += n
    finally:
        th.join(10)
    infos: list = [i for _, i in got]
    assert [i.index for i in infos] == expected
    assert [i.gap for i in infos] == [i.index == resume for i in infos]
    for block, info in got:
        src = info.index if info.index < before else info.index - skipped  # type: ignore[attr-defined]
        np.testing.assert_array_equal(block, signal[src : src + 16])


def test_cli_windows_reassemble_exactly(proxy_proc: str) -> None:
    """``zaudio process --window --hop``: windows cut across blocks equal the source."""
    rng = np.random.default_rng(2)
    sizes = [int(n) for n in rng.integers(3, 30, size=50)]
    signal = rng.standard_normal((sum(sizes), 1)).astype(np.float32)
    n_windows = sum(sizes) // 20
    with (
        spawn(
            "process", "tests.procs.basic:samples", "--topic", "w", "--name", "wins",
            "--window", "20", "--hop", "20", "--proxy", proxy_proc,
        ) as proc,
        Listener(proxy_proc, "result/wins") as lis,
    ):  # fmt: skip
        wait_node(proxy_proc, "wins")
        with Publisher("w", rate=RATE, channels=1, proxy=proxy_proc) as pub:
            pos = 0
            for n in sizes:
                assert pub.send(signal[pos : pos + n])
                pos += n
            got = lis.collect(n_windows, timeout=15)
        assert proc.poll() is None
    data = [h.data for h, _ in got]
    assert [d["index"] for d in data] == [20 * k for k in range(n_windows)]
    assert all(d["frames"] == 20 and not d["gap"] for d in data)
    joined = np.array([x for d in data for x in d["samples"]], np.float32)
    np.testing.assert_array_equal(joined, signal[: 20 * n_windows, 0])
