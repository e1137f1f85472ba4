"""``zaudio web`` with a real browser: capture page -> bus, bus -> monitor page, bad input.

One proxy and one ``zaudio web`` process serve the whole module; each test uses
its own stream names and its own headless Chromium.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from selenium.webdriver.support.ui import WebDriverWait
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.helpers import (
    Listener,
    free_ports,
    listing,
    proxy_process,
    spawn,
    wait_node,
    wait_until,
)
from tests.web_helpers import chromium, page_state, web_process
from zaudio.bus import Outlet, Publisher
from zaudio.client import request
from zaudio.protocol import ResultStream
from zaudio.web.capture import FrameChecker, parse_hello
from zaudio.web.monitor import Meter

RATE = 48_000


@pytest.fixture(scope="module")
def bus() -> Iterator[tuple[str, str]]:
    """(proxy control endpoint, web base URL)."""
    with proxy_process() as (control, _), web_process(control) as (url, _):
        yield control, url


def dominant(x: np.ndarray[Any, Any], rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spec[1:])) + 1
    return k * rate / len(x)


def sine(freq: float, seconds: float, amp: float = 0.5) -> np.ndarray[Any, Any]:
    t = np.arange(int(RATE * seconds)) / RATE
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def web_stats(control: str) -> dict[str, Any]:
    for node in listing(control)["nodes"]:
        if node["role"] == "web":
            return node["stats"]  # type: ignore[no-any-return]
    return {}


# -- pure parts ---------------------------------------------------------------


def test_hello_and_frame_checks() -> None:
    ok = {"type": "hello", "stream": "b", "sampleRate": 48000, "channels": 2}
    hello = parse_hello(json.dumps({**ok, "firstFrameTime": 1.0, "contextTime": 1.25}), 0.0)
    assert (hello.stream, hello.rate, hello.channels, hello.lead) == ("b", 48000, 2, -0.25)
    for bad, reason in [
        ({**ok, "sampleRate": 0}, "rate"),
        ({**ok, "sampleRate": 10_000_000}, "rate"),
        ({**ok, "sampleRate": "48000"}, "rate"),
        ({**ok, "channels": 0}, "handshake"),
        ({**ok, "stream": "../x"}, "handshake"),
        ({**ok, "type": "hi"}, "handshake"),
    ]:
        with pytest.raises(ValueError) as info:
            parse_hello(json.dumps(bad), 0.0)
        assert getattr(info.value, "reason", None) == reason, bad
    with pytest.raises(ValueError):
        parse_hello(b"\x00\x01", 0.0)
    check = FrameChecker(48000, 2)
    assert check.check(np.zeros((480, 2), np.float32).tobytes()).shape == (480, 2)
    for data, reason in [
        ("text", "text"),
        (b"\0" * 12, "size"),
        (b"\0" * (48001 * 8), "size"),
        (np.full((4, 2), np.nan, np.float32).tobytes(), "values"),
    ]:
        with pytest.raises(ValueError) as info:
            check.check(data)
        assert getattr(info.value, "reason", None) == reason
    flood = [check.check(np.zeros((960, 2), np.float32).tobytes()) for _ in range(99)]
    assert len(flood) == 99  # 2 s burst allowed
    with pytest.raises(ValueError, match="faster"):
        for _ in range(20):
            check.check(np.zeros((960, 2), np.float32).tobytes())


def test_meter_level_and_frequency() -> None:
    from zaudio.protocol import AudioStream, decode

    s = AudioStream("m", RATE, 1)
    meter = Meter(RATE, 1)
    x = sine(1000.0, 0.2)
    for block in np.split(x, 20):
        header, b = decode(s.encode(block, 0.0))
        meter.feed(header, b)  # type: ignore[arg-type]
    snap = meter.snapshot()
    assert snap["rms"][0] == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    assert snap["freq"] == pytest.approx(1000.0, abs=5)
    assert len(snap["spec"]) == 64 and max(snap["spec"]) > 200
    assert not meter.fresh


# -- the capture page ------------------------------------------------------------


def test_capture_page_publishes_the_microphone(bus: tuple[str, str], tmp_path: Path) -> None:
    control, url = bus
    wav = tmp_path / "a440.wav"
    sf.write(wav, sine(440.0, 3.0), RATE, subtype="FLOAT")
    with Listener(control, "browser") as listener, chromium(wav) as driver:
        started = time.time()
        driver.get(f"{url}/capture?stream=browser&autostart=1")
        WebDriverWait(driver, 15).until(lambda d: page_state(d)[0] == "live", page_state(driver))
        blocks = listener.collect(60, timeout=15)  # 1.2 s of 20 ms blocks
        node = wait_node(control, "browser:browser", role="recorder")
        assert node["streams"] == [{"name": "browser", "rate": RATE, "channels": 1}]
        level = float(driver.find_element("id", "meter").get_attribute("data-level") or 0)
        assert level == pytest.approx(0.3536, abs=0.03)

        headers = [h for h, _ in blocks]
        assert {h.rate for h in headers} == {RATE}
        assert {h.channels for h in headers} == {1}
        assert len({h.src for h in headers}) == 1
        assert [h.seq for h in headers] == list(range(60))
        index = 0
        for h in headers:
            assert h.index == index
            index += h.frames
        # t follows the sample clock, near the time the page started (same host)
        t = np.array([h.t for h in headers])
        idx = np.array([h.index for h in headers])
        assert np.allclose(t - idx / RATE, t[0], atol=1e-6)
        assert started - 1 < t[0] < time.time()
        x = np.concatenate([b[:, 0] for _, b in blocks])
        steady = x[len(x) // 4 :]
        assert float(np.sqrt(np.mean(steady**2))) == pytest.approx(0.3536, abs=0.02)
        assert dominant(steady, RATE) == pytest.approx(440.0, abs=3)
        first_src = headers[0].src

        # leaving the page disconnects the stream at once (not by heartbeat expiry)
        driver.get("about:blank")
        wait_until(
            lambda: all(n["name"] != "browser:browser" for n in listing(control)["nodes"]),
            2.5,
            "the browser's node to disconnect",
        )
        # and coming back is a new run: a new src, seq and index from 0
        driver.get(f"{url}/capture?stream=browser&autostart=1")
        WebDriverWait(driver, 15).until(lambda d: page_state(d)[0] == "live", page_state(driver))
        while True:
            h, _ = listener.recv(10)
            if h.src != first_src:
                break
        assert (h.seq, h.index) == (0, 0)
        driver.find_element("id", "stop").click()
        WebDriverWait(driver, 5).until(lambda d: page_state(d)[0] == "idle")


# -- the monitor page --------------------------------------------------------------


def _synth(control: str, stop: threading.Event, ready: threading.Event) -> None:
    """A 1 kHz stream paced in real time and a processor-like result, until ``stop``."""
    hello = request(control, {"op": "hello"})
    outlet = Outlet()
    outlet.connect(hello["pub"])
    results = ResultStream("vad")
    with Publisher("synth", rate=RATE, proxy=control) as pub:
        outlet.wait_ready(5)
        ready.set()
        x = sine(1000.0, 0.02, amp=0.25)
        start = time.monotonic()
        n = 0
        while not stop.is_set():
            pub.send(x)
            if n % 10 == 0:
                data = {"speech": n % 20 == 0, "n": n}
                outlet.send(results.encode(data, stream="synth", index=n * 960, frames=960, t=0))
            n += 1
            time.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
    outlet.close(0)


def test_monitor_page_moves(bus: tuple[str, str]) -> None:
    control, url = bus
    stop, ready = threading.Event(), threading.Event()
    synth = threading.Thread(target=_synth, args=(control, stop, ready), daemon=True)
    synth.start()
    try:
        assert ready.wait(10)
        with chromium() as driver:
            driver.get(f"{url}/monitor")
            wait = WebDriverWait(driver, 15)
            wait.until(lambda d: page_state(d)[0] == "live", page_state(driver))
            meter = "document.querySelector('[data-stream=\"synth\"] .meter')"
            wait.until(lambda d: d.execute_script(f"return {meter} !== null"))
            attrs = (
                f"const m = {meter}; return [m.dataset.level, m.dataset.freq, m.dataset.updates];"
            )
            level, freq, updates = driver.execute_script(attrs)
            assert float(level) == pytest.approx(0.25 / np.sqrt(2), rel=0.1)
            assert float(freq) == pytest.approx(1000.0, abs=10)
            pixels = (
                "const c = document.querySelector('[data-stream=\"synth\"] canvas');"
                "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                "let h = 0; for (let i = 0; i < d.length; i++) h = (h * 31 + d[i]) | 0;"
                "return h;"
            )
            before = driver.execute_script(pixels)
            wait.until(lambda d: int(d.execute_script(attrs)[2]) >= int(updates) + 3)
            assert driver.execute_script(pixels) != before, "the spectrogram did not scroll"
            # the processor result and the node list arrive too
            wait.until(
                lambda d: d.execute_script(
                    "const r = document.querySelector('[data-processor=\"vad\"]');"
                    "return r && r.cells[3].textContent;"
                )
            )
            assert "speech" in driver.execute_script(
                "return document.querySelector('[data-processor=\"vad\"]').cells[3].textContent"
            )
            wait.until(
                lambda d: d.execute_script(
                    "return !!document.querySelector('[data-node=\"synth\"]')"
                )
            )
            # a processor's row says what it reads (its topics), as `zaudio ls` does
            with spawn("process", "level", "--topic", "synth", "--name", "lvl", "--proxy", control):
                cell = (
                    "const r = document.querySelector('[data-node=\"lvl\"]');"
                    "return r && r.cells[4].textContent;"
                )
                wait.until(lambda d: d.execute_script(cell))
                assert driver.execute_script(cell) == "synth"
    finally:
        stop.set()
        synth.join(10)


# -- bad input ---------------------------------------------------------------------


HELLO = {"type": "hello", "stream": "raw", "sampleRate": RATE, "channels": 1}


async def _refused(ws_url: str, first: str, then: Any = None) -> tuple[int, str]:
    """Send a hello (and one more message); return the close code and error reason."""
    async with connect(ws_url, max_size=None) as ws:
        await ws.send(first)
        reason = ""
        try:
            if then is not None:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                assert reply["type"] == "ready", reply
                await ws.send(then)
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if msg["type"] == "error":
                    reason = msg["reason"]
        except ConnectionClosed:
            pass
        assert ws.close_code is not None
        return ws.close_code, reason


async def _bad_clients(ws_url: str) -> None:
    code, reason = await _refused(ws_url, json.dumps({**HELLO, "sampleRate": 0}))
    assert code == 4400 and "sampleRate" in reason
    code, reason = await _refused(ws_url, json.dumps({**HELLO, "sampleRate": 10_000_000}))
    assert code == 4400 and "sampleRate" in reason
    code, reason = await _refused(ws_url, json.dumps(HELLO), then="not audio")
    assert code == 4400 and "binary" in reason
    code, reason = await _refused(ws_url, json.dumps(HELLO), then=b"\0" * 6)
    assert code == 4400 and "whole number" in reason
    code, _ = await _refused(ws_url, json.dumps(HELLO), then=b"\0" * (2 << 20))
    assert code == 1009  # larger than the server takes at all
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url, origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert info.value.response.status_code == 403
    # a flood: 4 s of audio at once is cut at the 2 s burst, the rest counted
    async with connect(ws_url) as ws:
        await ws.send(json.dumps(HELLO))
        assert json.loads(await ws.recv())["type"] == "ready"
        block = np.zeros(960, np.float32).tobytes()
        for _ in range(200):
            await ws.send(block)
        await ws.close()


async def _good_client(ws_url: str, blocks: int) -> None:
    async with connect(ws_url) as ws:
        await ws.send(json.dumps({**HELLO, "stream": "good"}))
        assert json.loads(await ws.recv())["type"] == "ready"
        x = sine(440.0, blocks * 0.02)
        for chunk in np.split(x, blocks):
            await ws.send(chunk.tobytes())
        await ws.close()


def test_bad_input_is_rejected_and_counted(bus: tuple[str, str]) -> None:
    control, url = bus
    ws_url = url.replace("http://", "ws://") + "/ws/capture"
    asyncio.run(asyncio.wait_for(_bad_clients(ws_url), 30))
    # the server still serves a good client, contiguously
    with Listener(control, "good") as listener:
        asyncio.run(asyncio.wait_for(_good_client(ws_url, 20), 15))
        headers = [h for h, _ in listener.collect(20, timeout=10)]
    assert [h.seq for h in headers] == list(range(20))
    assert [h.index for h in headers] == [960 * i for i in range(20)]

    def counted() -> bool:
        rejected = web_stats(control).get("rejected", {})
        return (
            rejected.get("rate", 0) >= 2
            and rejected.get("text", 0) >= 1
            and rejected.get("size", 0) >= 2
            and rejected.get("origin", 0) >= 1
            and rejected.get("flood", 0) >= 50
        )

    wait_until(counted, 5, "the web node's heartbeat to count the rejections")
    assert web_stats(control)["errors"] >= 56


async def _unavailable(ws_url: str) -> tuple[int, str]:
    return await _refused(ws_url, json.dumps(HELLO))


def test_capture_without_a_proxy_says_so() -> None:
    dead = f"tcp://127.0.0.1:{free_ports(3)}"
    with web_process(dead) as (url, _):
        ws_url = url.replace("http://", "ws://") + "/ws/capture"
        code, reason = asyncio.run(asyncio.wait_for(_unavailable(ws_url), 10))
    assert code == 4503 and "no proxy" in reason
