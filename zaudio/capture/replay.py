"""Replay: a capture back on the bus, with its original timing (or as fast as it goes).

Every audio block is republished through a :class:`~zaudio.publisher.Publisher`
(the one thing that stamps and sends audio) with a fresh ``src``, the recorded
``index``, ``frames`` and payload bytes, and ``seq`` jumps where the recording had
them, so receivers see the same gaps. A new ``src`` in the recording (the
publisher restarted) is a new Publisher (a restart on replay too). Results are
re-encoded by :class:`~zaudio.protocol.ResultStream` (fresh ``src``, same
``index``, ``frames``, ``stream`` and ``data``). ``t`` is shifted as a whole so
that the first message is stamped "now": relative times are kept exactly.

Pacing: each message leaves at its recorded receive time, relative to the first,
divided by ``speed``. ``fast``: no pacing; the Publishers do not drop
(``live=False``) and replay waits while the bus does not take more, like
``zaudio record --fast``.

All streams are registered by one node (role ``replay``) before anything is sent,
so a name a live recorder owns is refused up front (use ``rename``). One thread:
the one that calls :meth:`Replay.run` owns the outlet.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import zmq

from zaudio.bus import Outlet
from zaudio.capture.summary import Captures
from zaudio.client import NodeClient
from zaudio.errors import ConfigError, LocalProtocolError, ProxyUnreachable
from zaudio.protocol import AudioHeader, ResultHeader, ResultStream, subscription, validate_name
from zaudio.publisher import Publisher
from zaudio.security import Keys

__all__ = ["Replay", "parse_rename"]

log = logging.getLogger(__name__)


def parse_rename(pairs: Sequence[str]) -> dict[str, str]:
    """``["mic=mic2", ...]`` -> ``{"mic": "mic2"}``; ConfigError naming a bad pair."""
    out: dict[str, str] = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        try:
            if not sep:
                raise LocalProtocolError("no '='")
            validate_name(old)
            validate_name(new)
        except LocalProtocolError:
            raise ConfigError(
                f"invalid --rename {pair!r}: use OLD=NEW with two stream names"
            ) from None
        out[old] = new
    return out


class _Stream:
    __slots__ = ("last_seq", "pub", "src")

    def __init__(self, src: str, pub: Publisher, seq: int) -> None:
        self.src = src
        self.pub = pub
        self.last_seq = seq - 1


class Replay:
    """Republish one capture (its rotation parts in order).

    Parameters
    ----------
    paths : sequence of str or Path
        The capture files.
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    keys : Keys, optional
        CurveZMQ client keys.
    speed : float
        1 = real time, 2 = twice as fast.
    fast : bool
        As fast as the bus takes it, without loss.
    loop : bool
        Start again at the end (each pass a new ``src`` for every stream).
    topics : sequence of str, optional
        Audio streams to replay (``--topic`` patterns; default every one).
        Results are replayed when they were computed from a replayed stream.
    results : bool
        Replay results too.
    rename : mapping of str to str
        Stream names to publish under another name (results follow).
    name : str
        The node's name in ``zaudio ls``.
    wait : float
        Seconds to wait for the proxy at the start.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        proxy: str | None = None,
        keys: Keys | None = None,
        speed: float = 1.0,
        fast: bool = False,
        loop: bool = False,
        topics: Sequence[str] | None = None,
        results: bool = True,
        rename: Mapping[str, str] | None = None,
        name: str = "replay",
        wait: float = 5.0,
    ) -> None:
        if not speed > 0:
            raise ConfigError(f"invalid --speed {speed!r}: must be more than 0")
        self.paths = list(paths)
        Captures(self.paths).close()  # every file is a capture, before anything else
        self.prefixes = []
        for pattern in topics or ["*"]:
            try:
                self.prefixes.append(subscription(pattern))
            except LocalProtocolError as exc:
                raise ConfigError(f"invalid --topic {pattern!r}: {exc}") from None
        self.proxy, self.keys, self.name, self.wait = proxy, keys, name, wait
        self.speed, self.fast, self.loop, self.results = speed, fast, loop, results
        self.rename = dict(rename or {})
        self.counters = {"sent": 0, "results": 0, "unsent": 0, "dropped": 0, "passes": 0}
        self.streams = self._streams()
        if not self.streams:
            raise ConfigError(
                f"nothing to replay: {', '.join(map(str, self.paths))} has no audio "
                "matching --topic"
            )
        self._live: dict[str, _Stream] = {}
        self._results: dict[str, tuple[str, ResultStream]] = {}

    def _wanted(self, stream: str) -> bool:
        topic = b"audio/" + stream.encode() + b"\0"
        return any(topic.startswith(p) for p in self.prefixes)

    def _streams(self) -> dict[str, tuple[int, int]]:
        """The streams to register: replayed name -> (rate, channels)."""
        out: dict[str, tuple[int, int]] = {}
        with Captures(self.paths) as caps:
            for _rec, h, _block in caps.decoded():
                if type(h) is AudioHeader and self._wanted(h.stream):
                    out.setdefault(self.rename.get(h.stream, h.stream), (h.rate, h.channels))
        return out

    def stats(self) -> dict[str, Any]:
        """Counters: ``sent`` (audio blocks), ``results``, ``unsent`` (results the bus
        refused), ``dropped`` (audio blocks the Publishers dropped), ``passes``."""
        dropped = sum(s.pub.counters["dropped"] for s in self._live.values())
        return {**self.counters, "dropped": self.counters["dropped"] + dropped}

    def run(self, until: threading.Event | None = None) -> dict[str, Any]:
        """Replay until the end (or forever with ``loop``) or until ``until`` is set.

        Raises
        ------
        RequestRefused
            The proxy refused a stream name (a live node publishes it).
        ProxyUnreachable
            No proxy answered within ``wait`` seconds.
        """
        stop = until or threading.Event()
        client = NodeClient(
            self.proxy,
            role="replay",
            name=self.name,
            registration=lambda: {
                "streams": [
                    {"name": n, "rate": r, "channels": c} for n, (r, c) in self.streams.items()
                ]
            },
            stats=self.stats,
            keys=self.keys,
        ).start()
        outlet = Outlet(keys=self.keys, hwm=1000)
        try:
            self._connect(client, outlet, stop)
            while not stop.is_set():
                self._pass(client, outlet, stop)
                self.counters["passes"] += 1
                if not self.loop:
                    break
                self._close_streams(0.5)
            self._close_streams(2.0)
        finally:
            self._close_streams(0.0)
            outlet.close(1.0)
            client.close()
        return self.stats()

    def _connect(self, client: NodeClient, outlet: Outlet, stop: threading.Event) -> None:
        deadline = time.monotonic() + self.wait
        while not stop.is_set():
            if client.refused is not None:
                raise client.refused
            if client.endpoints is not None:
                outlet.connect(client.endpoints.pub)
                if client.registered.is_set() and outlet.wait_ready(0.05):
                    return
            elif client.registered.wait(0.02):
                continue
            if time.monotonic() > deadline:
                raise ProxyUnreachable(
                    f"no proxy ready at {client.control} within {self.wait:g} s: "
                    "start 'zaudio proxy' or pass --proxy"
                )

    def _pass(self, client: NodeClient, outlet: Outlet, stop: threading.Event) -> None:
        shift: float | None = None
        start = first = 0.0
        with Captures(self.paths) as caps:
            for rec, h, block in caps.decoded():
                audio = type(h) is AudioHeader
                if not self._wanted(h.stream) or (not audio and not self.results):
                    continue
                if shift is None:
                    shift = client.now() - h.t
                    start, first = time.monotonic(), rec.time
                elif not self.fast:
                    self._wait_until(start + (rec.time - first) / self.speed, stop)
                if stop.is_set():
                    return
                if audio:
                    assert isinstance(h, AudioHeader)
                    self._audio(h, block, shift, client, outlet, stop)
                else:
                    assert isinstance(h, ResultHeader)
                    self._result(h, shift, outlet, stop)

    def _wait_until(self, due: float, stop: threading.Event) -> None:
        while (left := due - time.monotonic()) > 0 and not stop.is_set():
            for s in self._live.values():
                s.pub.flush()
            stop.wait(min(left, 0.01))

    def _audio(
        self,
        h: AudioHeader,
        block: Any,
        shift: float,
        client: NodeClient,
        outlet: Outlet,
        stop: threading.Event,
    ) -> None:
        name = self.rename.get(h.stream, h.stream)
        s = self._live.get(name)
        if s is None or s.src != h.src or s.pub.stream.channels != h.channels:
            if s is not None:
                s.pub.close(1.0)
                self.counters["dropped"] += s.pub.counters["dropped"]
            pub = Publisher(
                name,
                rate=h.rate,
                channels=h.channels,
                client=client,
                outlet=outlet,
                live=not self.fast,
            )
            s = self._live[name] = _Stream(h.src, pub, h.seq)
        pub = s.pub
        if h.seq > s.last_seq + 1:
            pub.skip(0, h.seq - s.last_seq - 1)  # the recording's own gap: kept
        s.last_seq = h.seq
        pub.send(block, h.t + shift, index=h.index)
        self.counters["sent"] += 1
        while self.fast and pub.full and not stop.is_set():
            if not pub.flush():
                outlet.sock.poll(5, zmq.POLLOUT)

    def _result(self, h: ResultHeader, shift: float, outlet: Outlet, stop: threading.Event) -> None:
        entry = self._results.get(h.processor)
        if entry is None or entry[0] != h.src:
            entry = self._results[h.processor] = (h.src, ResultStream(h.processor))
        frames = entry[1].encode(
            h.data,
            stream=self.rename.get(h.stream, h.stream),
            index=h.index,
            frames=h.frames,
            t=h.t + shift,
        )
        while True:
            outlet.pump()
            if outlet.send(frames):
                self.counters["results"] += 1
                return
            if not self.fast or stop.is_set():
                self.counters["unsent"] += 1
                return
            outlet.sock.poll(5, zmq.POLLOUT)

    def _close_streams(self, flush: float) -> None:
        for s in self._live.values():
            s.pub.close(flush)
            self.counters["dropped"] += s.pub.counters["dropped"]
        self._live.clear()
        self._results.clear()
