"""The backfill scenario: how fast a late joiner gets 5 s of 48 kHz stereo history.

An in-process proxy with ``history`` keeps 5 s of one stream (500 blocks of 10 ms,
48 kHz stereo float32: 1.9 MB of payload), published unpaced. Each round, a fresh
:class:`~zaudio.backfill.Backfill` asks for it over loopback TCP (the ``history``
op: the reply and its 1500 frames) and decodes it (``fetch``), then every block
goes through a stream tracker as a subscriber delivers it (``replay``); the time
from the request to the last block is the figure (target: < 100 ms p50). The
backfill is not paced: it is the time of one request, not of 5 s of audio.

Baseline, interleaved round by round: the same frames as one multipart reply of a
plain pyzmq ROUTER to a REQ over loopback TCP, received and not decoded.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import zmq

from zaudio.backfill import Backfill
from zaudio.bench.figures import Figure
from zaudio.control import History, HistoryReply
from zaudio.requester import Requester
from zaudio.tracking import StreamTracker

__all__ = ["SECONDS", "backfill"]

SECONDS = 5.0
RATE, CHANNELS, BLOCK = 48000, 2, 480


def backfill(quick: bool) -> list[Figure]:
    """The backfill figures (in process; a few seconds)."""
    from zaudio.proxy import Proxy
    from zaudio.publisher import Publisher

    rounds = 5 if quick else 20
    whole = Figure("backfill_ms", "5 s 48k stereo backfill", "ms", "lower", 100.0, True)
    fetch = Figure("backfill_fetch_ms", "5 s backfill: request + decode", "ms", "lower")
    blocks = round(SECONDS * RATE / BLOCK)
    with Proxy(port=0, history=60.0) as proxy:
        with Publisher("mic", rate=RATE, channels=CHANNELS, proxy=proxy.control, live=False) as pub:
            x = np.zeros((BLOCK, CHANNELS), np.float32)
            for _ in range(blocks):
                pub.send(x)
            pub.flush()
            deadline = time.monotonic() + 10
            while proxy.history is not None and time.monotonic() < deadline:
                if proxy.history.stats()["messages"] >= blocks:
                    break
                time.sleep(0.01)
        req = Requester(proxy.control, timeout=10)
        try:
            frames = [
                bytes(f)
                for f in req.call_frames(History(topics=["audio/"], since=60), HistoryReply)[1]
            ]
        finally:
            req.close()
        plain = _Plain(frames)
        for _ in range(rounds):
            raw = plain.ask()
            bf = Backfill(60.0)
            t0 = time.perf_counter()
            bf.fetch(proxy.control, [b"audio/mic\0"], None, "bench")
            t1 = time.perf_counter()
            got = sum(1 for _ in bf.replay(StreamTracker()))
            t2 = time.perf_counter()
            if got != blocks:
                raise AssertionError(f"backfill delivered {got} blocks of {blocks}")
            whole.add((t2 - t0) * 1000, raw * 1000)
            fetch.add((t1 - t0) * 1000, raw * 1000)
        plain.close()
    for fig in (whole, fetch):
        fig.notes.append(
            f"{blocks} blocks of {BLOCK} x {CHANNELS} float32, loopback TCP; baseline: "
            "the same frames from a plain ROUTER to a REQ, not decoded"
        )
    return [whole, fetch]


class _Plain:
    """A plain pyzmq ROUTER thread answering every request with ``frames``."""

    def __init__(self, frames: list[bytes]) -> None:
        self.ctx: zmq.Context[Any] = zmq.Context()
        router = self.ctx.socket(zmq.ROUTER)
        router.linger = 0
        port = router.bind_to_random_port("tcp://127.0.0.1")
        self.req = self.ctx.socket(zmq.REQ)
        self.req.linger = 0
        self.req.connect(f"tcp://127.0.0.1:{port}")
        self.thread = threading.Thread(target=self._serve, args=(router, frames), daemon=True)
        self.thread.start()

    @staticmethod
    def _serve(router: zmq.Socket[Any], frames: list[bytes]) -> None:
        try:
            while True:
                peer, empty, _ = router.recv_multipart()
                router.send_multipart([peer, empty, b'{"ok":true}', *frames], copy=False)
        except zmq.ContextTerminated:
            router.close(0)

    def ask(self) -> float:
        """Seconds of one request and its whole reply."""
        t0 = time.perf_counter()
        self.req.send(b"{}")
        if not self.req.poll(10_000):
            raise AssertionError("the plain ROUTER did not answer")
        self.req.recv_multipart(copy=False)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.req.close(0)
        self.ctx.term()
        self.thread.join(2)
