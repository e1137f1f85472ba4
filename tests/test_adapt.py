"""Format adaptation: the resampler's exactness and quality, channels, int16, the
per-stream converter on gaps and restarts, and the Processor/subscribe/CLI wiring."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from tests.helpers import node_stats, run, wait_node, wait_until
from zaudio.adapt import Adapter, Format, Resampler, adapted, check_format, to_int16
from zaudio.bus import Publisher
from zaudio.errors import ConfigError
from zaudio.protocol import AudioHeader
from zaudio.proxy import Proxy
from zaudio.runtime import Info, Processor
from zaudio.subscriber import subscribe
from zaudio.windows import Windows


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5, start: int = 0) -> np.ndarray:
    n = np.arange(start, start + round(rate * seconds))
    return (amp * np.sin(2 * np.pi * freq * n / rate)).astype(np.float32)[:, None]


def blocks_of(x: np.ndarray, frames: int) -> list[np.ndarray]:
    return [x[i : i + frames] for i in range(0, x.shape[0], frames)]


def convert(x: np.ndarray, rate_in: int, rate_out: int, frames: int | None = None) -> np.ndarray:
    r = Resampler(rate_in, rate_out, x.shape[1], 0)
    parts = [r.feed(b) for b in blocks_of(x, frames or x.shape[0])]
    return np.concatenate([*parts, r.flush()])


def snr_db(got: np.ndarray, ideal: np.ndarray) -> float:
    err = got.astype(np.float64) - ideal
    return float(10 * np.log10(np.mean(ideal**2) / np.mean(err**2)))


# -- the resampler -------------------------------------------------------------------


def test_60_s_at_48k_gives_60_s_at_16k_frame_exact() -> None:
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (48000 * 60, 1)).astype(np.float32)
    r = Resampler(48000, 16000, 1, 0)
    total = sum(r.feed(b).shape[0] for b in blocks_of(x, 480)) + r.flush().shape[0]
    assert abs(total - 60 * 16000) <= 1
    assert total == 60 * 16000  # exactly, for an integer ratio


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 16000), (44100, 16000), (16000, 48000)])
def test_1_khz_sine_snr_at_least_90_db(rate_in: int, rate_out: int) -> None:
    got = convert(sine(1000, rate_in, 2.0), rate_in, rate_out, rate_in // 100)
    ideal = sine(1000, rate_out, 2.0).astype(np.float64)
    assert got.shape == ideal.shape
    edge = rate_out // 20  # the first and last 50 ms see the silence outside the signal
    snr = snr_db(got[edge:-edge], ideal[edge:-edge])
    assert snr >= 90, snr


def test_12_khz_sine_is_attenuated_at_least_80_db_at_16k() -> None:
    got = convert(sine(12000, 48000, 2.0), 48000, 16000, 480)[800:-800].astype(np.float64)
    attenuation = 10 * np.log10(0.125 / np.mean(got**2))  # 0.125: the 0.5 sine's power
    assert attenuation >= 80, attenuation


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 16000), (44100, 16000), (8000, 16000)])
def test_10_ms_blocks_equal_the_whole_signal_at_once(rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(2)
    x = (rng.standard_normal((rate_in * 3, 2)) * 0.2).astype(np.float32)
    whole = convert(x, rate_in, rate_out)
    blocked = convert(x, rate_in, rate_out, rate_in // 100)
    odd = convert(x, rate_in, rate_out, 997)  # any block size, not only 10 ms
    assert whole.shape == blocked.shape == odd.shape
    assert np.abs(whole - blocked).max() <= 1e-4
    assert np.abs(whole - odd).max() <= 1e-4


def test_added_latency_is_at_most_5_ms() -> None:
    """After each 10 ms block every output frame whose source position is more than
    5 ms before the block's end has been emitted."""
    r = Resampler(48000, 16000, 1, 0)
    assert r.delay / 48000 <= 0.005
    emitted = 0
    for k, b in enumerate(blocks_of(sine(440, 48000, 1.0), 480), start=1):
        emitted += r.feed(b).shape[0]
        owed = k * 160  # output frames whose positions lie in the audio fed so far
        assert owed - emitted <= 0.005 * 16000, (k, owed, emitted)


def test_a_stream_started_mid_way_is_on_the_absolute_output_grid() -> None:
    x = sine(1000, 48000, 1.0, start=4801)  # index 4801: not a multiple of 3
    r = Resampler(48000, 16000, 1, 4801)
    assert r.next == 1601  # ceil(4801 / 3): the first output frame inside the segment
    got = np.concatenate([r.feed(x), r.flush()])
    assert got.shape[0] == -(-(4801 + 48000) // 3) - 1601
    ideal = sine(1000, 16000, got.shape[0] / 16000, start=1601).astype(np.float64)
    assert snr_db(got[800:-800], ideal[800:-800]) >= 90


# -- channels, int16, the converter ---------------------------------------------------


def header(index: int, frames: int, *, rate: int = 48000, channels: int = 2, src: str = "a",
           seq: int = 0, stream: str = "mic") -> AudioHeader:  # fmt: skip
    return AudioHeader(1, stream, src, seq, index, 100.0 + index / rate, rate, channels, frames,
                       "float32")  # fmt: skip


def test_int16_rounds_clips_and_counts() -> None:
    x = np.array([[0.0], [0.5], [-0.5], [1.0], [-1.0], [1.5], [-2.0], [1e-5]], np.float32)
    y, clips = to_int16(x)
    assert y.dtype == np.int16
    assert y[:, 0].tolist() == [0, 16384, -16384, 32767, -32767, 32767, -32768, 0]
    assert clips == 2
    z, clips = to_int16(np.array([[np.nan], [0.25]], np.float32))
    assert z[:, 0].tolist() == [0, 8192] and clips == 0


def test_same_format_passes_the_same_block_through() -> None:
    adapter = Adapter(Format(rate=48000, channels=2))
    h = header(0, 480)
    b = np.zeros((480, 2), np.float32)
    [(h2, b2, gap, restart)] = adapter.feed(h, b, False, False)
    assert h2 is h and b2 is b and not gap and not restart


def test_downmix_pick_and_upmix() -> None:
    x = np.array([[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]], np.float32)
    h = header(0, 2, rate=1000, channels=3)
    [(h1, mono, _, _)] = Adapter(Format(channels=1)).feed(h, x, False, False)
    assert mono[:, 0].tolist() == [3.0, 4.0] and h1.channels == 1
    [(_, picked, _, _)] = Adapter(Format(pick=(0, 2))).feed(h, x, False, False)
    assert picked.tolist() == [[1.0, 5.0], [2.0, 6.0]]
    [(_, both, _, _)] = Adapter(Format(channels=1, pick=(0, 2))).feed(h, x, False, False)
    assert both[:, 0].tolist() == [3.0, 4.0]
    m = header(0, 2, rate=1000, channels=1)
    [(h3, up, _, _)] = Adapter(Format(channels=2)).feed(m, x[:, :1], False, False)
    assert up.tolist() == [[1.0, 1.0], [2.0, 2.0]] and h3.channels == 2


def test_converter_info_index_t_and_a_gap_flushes_the_old_segment() -> None:
    adapter = Adapter(Format(rate=16000, channels=1))
    x = np.repeat(sine(1000, 48000, 0.1), 2, axis=1)  # 100 ms stereo
    items = [it for k in range(10) for it in adapter.feed(
        header(480 * k, 480, seq=k), x[480 * k : 480 * (k + 1)], False, False)]  # fmt: skip
    indices = [h.index for h, *_ in items]
    frames = [h.frames for h, *_ in items]
    assert indices[0] == 0 and all(
        a + n == b for a, n, b in zip(indices[:-1], frames, indices[1:], strict=False)
    )
    for h, b, _, _ in items:
        assert (h.rate, h.channels, b.shape[1]) == (16000, 1, 1)
        assert h.t == pytest.approx(100.0 + h.index / 16000, abs=1e-9)  # t of its first frame
    before = indices[-1] + frames[-1]
    # frames 4800..9599 lost: the tail of the first segment comes out, then a new segment
    out = adapter.feed(header(9600, 480, seq=11), x[:480], True, False)
    (tail, tb, tgap, _), (h2, _, gap, _) = out[0], out[-1]
    assert tail.index == before and not tgap and tail.index + tail.frames == 1600
    assert tb.shape[0] == tail.frames
    assert gap and h2.index == 3200


def test_rate_change_with_a_new_src_gets_a_new_resampler() -> None:
    adapter = Adapter(Format(rate=16000))
    a = adapter.feed(header(0, 4800, channels=1), np.zeros((4800, 1), np.float32), False, False)
    assert a[0][0].rate == 16000
    b = adapter.feed(
        header(0, 4410, rate=44100, channels=1, src="b"),
        np.zeros((4410, 1), np.float32),
        False,
        True,
    )
    tail, new = b[0][0], b[-1][0]
    assert tail.src == "a" and tail.index + tail.frames == 1600  # the old run, finished
    assert new.src == "b" and new.rate == 16000 and b[-1][3]  # restart
    assert new.index == 0


def test_unconvertible_blocks_are_counted_and_other_streams_go_on() -> None:
    adapter = Adapter(Format(pick=(5,)))
    x = np.zeros((480, 2), np.float32)
    assert adapter.feed(header(0, 480), x, False, False) == []
    assert adapter.feed(header(480, 480, seq=1), x, False, False) == []
    assert adapter.unconvertible == 2
    wide = np.zeros((480, 6), np.float32)
    [(_, b, _, _)] = adapter.feed(header(0, 480, channels=6, stream="wide"), wide, False, False)
    assert b.shape == (480, 1)
    with pytest.raises(ConfigError, match=r"'mic'.*pick 5 needs 6 channels"):
        adapter.check([{"name": "mic", "rate": 48000, "channels": 2}])


def test_windows_apply_after_conversion_and_int16_last() -> None:
    adapter = Adapter(Format(rate=16000, channels=1, dtype="int16"))
    windows = Windows("1024ms", "1024ms")
    x = np.repeat(sine(1000, 48000, 2.5), 2, axis=1)
    got: list[tuple[Any, Info]] = []
    for k, b in enumerate(blocks_of(x, 480)):
        got += adapted(adapter, windows, header(480 * k, 480, seq=k), b, False, False)
    assert [d.shape for d, _ in got] == [(16384, 1), (16384, 1)]
    assert all(d.dtype == np.int16 for d, _ in got)
    assert [(i.index, i.frames, i.rate, i.dtype) for _, i in got] == [
        (0, 16384, 16000, "int16"),
        (16384, 16384, 16000, "int16"),
    ]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"rate": 0}, "invalid rate 0"),
        ({"dtype": "int8"}, "invalid dtype 'int8': use float32 or int16"),
        ({"channels": 0}, "invalid channels 0"),
        ({"pick": "a,b"}, "invalid pick 'a,b'"),
        ({"pick": "0,0"}, "invalid pick '0,0'"),
        ({"pick": "0,1", "channels": 3}, "invalid channels 3 with pick"),
        ({"rate": 16000, "window": "0.01ms"}, "less than one frame at 16000 Hz"),
    ],
)
def test_bad_formats_are_one_line_config_errors(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_format(**kw)


def test_nothing_asked_is_no_adaptation() -> None:
    assert check_format() is None
    assert check_format(dtype="float32") is None
    assert check_format(rate=16000) == Format(rate=16000)


# -- wiring: Processor, subscribe, the CLI -------------------------------------------


def test_processor_receives_16k_mono_from_a_48k_stereo_stream(proxy: Proxy) -> None:
    seen: list[tuple[np.ndarray, Info]] = []
    x = np.repeat(sine(1000, 48000, 0.5), 2, axis=1)

    def keep(b: np.ndarray, info: Info) -> None:
        seen.append((b.copy(), info))

    with Processor(keep, topics="mic", proxy=proxy.control, rate=16000, channels=1) as proc:
        wait_until(lambda: proc.ready, 10, "processor ready")
        with Publisher("mic", rate=48000, channels=2, proxy=proxy.control) as pub:
            for b in blocks_of(x, 480):
                assert pub.send(b)
            # every output frame whose source lies 2.1 ms before the end has come out
            wait_until(lambda: sum(i.frames for _, i in seen) >= 8000 - 34, 10, "converted frames")
    infos = [i for _, i in seen]
    assert all((i.rate, i.channels, i.dtype) == (16000, 1, "float32") for i in infos)
    assert infos[0].index == 0
    assert all(a.index + a.frames == b.index for a, b in zip(infos, infos[1:], strict=False))
    got = np.concatenate([b for b, _ in seen])
    ideal = sine(1000, 16000, got.shape[0] / 16000).astype(np.float64)
    assert snr_db(got[800:], ideal[800:]) >= 90
    t0 = infos[0].t
    for i in infos:
        assert i.t == pytest.approx(t0 + i.index / 16000, abs=1e-6)
    s = proc.stats()
    assert s["unconvertible"] == 0 and s["clipped"] == 0


def test_subscribe_gives_int16_windows(proxy: Proxy) -> None:
    got: list[tuple[np.ndarray, Info]] = []
    stats: dict[str, Any] = {}
    ready = threading.Event()

    def consume() -> None:
        gen = subscribe("mic", proxy=proxy.control, timeout=5, name="pcm", rate=16000,
                        channels=1, dtype="int16", window="20ms", stats=stats)  # fmt: skip
        ready.set()
        for b, info in gen:
            got.append((b, info))
            if len(got) == 5:
                break

    th = threading.Thread(target=consume)
    th.start()
    try:
        ready.wait(5)
        wait_node(proxy.control, "pcm", role="subscriber")
        with Publisher("mic", rate=48000, channels=2, proxy=proxy.control) as pub:
            for b in blocks_of(np.full((48000 // 5, 2), 2.0, np.float32), 480):
                assert pub.send(b)  # full scale twice over: every sample clips
    finally:
        th.join(10)
    assert [(b.dtype, b.shape) for b, _ in got] == [(np.int16, (320, 1))] * 5
    assert [i.index for _, i in got] == [0, 320, 640, 960, 1280]
    assert all(i.dtype == "int16" and i.rate == 16000 for _, i in got)
    assert int(got[-1][0].max()) == 32767
    assert stats["clipped"] >= 5 * 320


def test_cli_bad_formats_exit_2_with_one_line(proxy: Proxy) -> None:
    for args, message in [
        (["--rate", "0"], "invalid rate 0"),
        (["--dtype", "int8"], "'int8' is not one of"),
        (["--rate", "16000", "--window", "0.02ms"], "less than one frame at 16000 Hz"),
    ]:
        r = run("process", "level", "--topic", "mic", "--proxy", proxy.control, *args)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    with Publisher("mic", rate=48000, channels=2, proxy=proxy.control) as pub:
        assert pub.send(np.zeros((480, 2), np.float32))
        r = run("process", "level", "--topic", "mic", "--proxy", proxy.control, "--pick", "5")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert "stream 'mic' (2 ch): pick 5 needs 6 channels" in line, r.stderr
    assert "Traceback" not in r.stderr


def test_a_later_stream_that_cannot_be_picked_is_counted_and_the_others_go_on(
    proxy: Proxy,
) -> None:
    seen: list[tuple[np.ndarray, Info]] = []

    def keep(b: np.ndarray, info: Info) -> None:
        seen.append((b.copy(), info))

    x = np.arange(960, dtype=np.float32).reshape(480, 2)
    with Processor(keep, topics="lab/", proxy=proxy.control, pick="1") as proc:
        wait_until(lambda: proc.ready, 10, "processor ready")
        with (
            Publisher("lab/mono", rate=48000, channels=1, proxy=proxy.control) as mono,
            Publisher("lab/stereo", rate=48000, channels=2, proxy=proxy.control) as stereo,
        ):
            for _ in range(5):
                assert mono.send(x[:, :1])
                assert stereo.send(x)
            wait_until(lambda: len(seen) == 5 and proc.stats()["unconvertible"] == 5, 10, "5+5")
            # every drop visible in `zaudio ls` (not only in --json), once a heartbeat carried it
            wait_until(
                lambda: node_stats(proxy.control, proc.name).get("unconvertible") == 5,
                10,
                "the heartbeat with the count",
            )
            r = run("ls", "--proxy", proxy.control)
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    head = next(cells for cells in lines if cells[:2] == ["ROLE", "NAME"])
    row = next(cells for cells in lines if cells[:2] == ["processor", proc.name])
    assert row[head.index("UNCONVERTIBLE")] == "5", r.stdout
    assert {i.stream for _, i in seen} == {"lab/stereo"}
    for b, info in seen:
        assert info.channels == 1 and np.array_equal(b, x[:, 1:])
