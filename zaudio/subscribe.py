"""``zaudio.subscribe``: the pull-style counterpart of ``zaudio process``.

::

    for block, info in zaudio.subscribe("mic", window="25ms", hop="10ms"):
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import zmq

from zaudio.client import NodeClient
from zaudio.errors import RemoteProtocolError
from zaudio.protocol import AudioHeader, decode
from zaudio.runtime import Connection, Info, _frames, _topic_patterns, _Track, windows
from zaudio.security import Keys
from zaudio.windows import Windower

__all__ = ["subscribe"]

log = logging.getLogger(__name__)


def subscribe(
    topics: str | Iterable[str] | None = None,
    *,
    proxy: str | None = None,
    window: str | float | None = None,
    hop: str | float | None = None,
    keys: Keys | None = None,
    timeout: float | None = None,
    name: str = "subscribe",
    stats: dict[str, Any] | None = None,
) -> Iterator[tuple[Any, Info]]:
    """Yield ``(block, info)`` for every block (or window) of the matching streams.

    The subscription is in effect at the proxy before the first ``next()``
    returns; the node is registered (role ``subscriber``) while iterating, and
    leaves the registry when the generator is closed (``break``, ``close()``,
    garbage collection).

    Parameters
    ----------
    topics : str or list of str
        Stream names (exact), prefixes (``"lab-a/"``) or ``"*"`` (the default).
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    window, hop : str or float or int, optional
        Re-block into exact windows (durations like ``"25ms"`` or frame counts);
        ``hop`` defaults to ``window``. Windows are copies; plain blocks are
        read-only views of the received message.
    keys : Keys, optional
        CurveZMQ client keys.
    timeout : float, optional
        Stop iterating when nothing arrives for this many seconds (default: never).
    name : str
        The node name shown by ``zaudio ls``.
    stats : dict, optional
        Filled with the counters (``received``, ``gaps``, ``lost_frames``,
        ``malformed``) as they change.

    Yields
    ------
    block : ndarray
        float32, shape ``(frames, channels)``, read-only.
    info : Info
        The header fields, plus ``gap`` and ``restart`` flags.
    """
    if hop is not None and window is None:
        raise ValueError("hop needs window")
    hop = hop if hop is not None else window
    if window is not None:
        _frames(window, 48000, "window")
        _frames(hop, 48000, "hop")  # type: ignore[arg-type]
    counters = stats if stats is not None else {}
    counters.update(received=0, gaps=0, lost_frames=0, malformed=0)
    conn = Connection(proxy, _topic_patterns(topics), keys=keys)
    client: NodeClient | None = None
    try:
        conn.open()
        client = NodeClient(
            proxy,
            role="subscriber",
            name=name,
            registration=lambda: {"topics": [p.decode() for p in conn.prefixes]},
            stats=lambda: dict(counters),
            keys=keys,
        ).start()
        sock = conn.sock
        if timeout is not None:
            sock.rcvtimeo = int(timeout * 1000)
        tracks: dict[str, _Track] = {}
        windowers: dict[str, Windower] = {}
        while True:
            try:
                frames = sock.recv_multipart(copy=False)
            except zmq.Again:
                return
            try:
                h, block = decode(frames)
            except RemoteProtocolError as exc:
                counters["malformed"] += 1
                log.debug("dropped a malformed message: %s", exc)
                continue
            if type(h) is not AudioHeader:
                continue
            counters["received"] += 1
            gap = restart = False
            track = tracks.get(h.stream)
            if track is None or track.src != h.src:
                restart = track is not None
                tracks[h.stream] = _Track(h)
            else:
                if h.seq != track.seq or h.index != track.index:
                    gap = True
                    missing = h.seq - track.seq
                    counters["gaps"] += missing if missing > 0 else 1
                    counters["lost_frames"] += max(h.index - track.index, 0)
                track.seq = h.seq + 1
                track.index = h.index + h.frames
            if window is None:
                yield block, Info(
                    h.v, h.stream, h.src, h.seq, h.index, h.t, h.rate, h.channels, h.frames,
                    gap, restart,
                )  # fmt: skip
            else:
                yield from windows(windowers, h, block, gap, restart, window, hop)
    finally:
        if client is not None:
            client.close()
        conn.close(0)
