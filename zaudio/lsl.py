"""The LSL bridge: a bus stream as an LSL outlet, and an LSL stream on the bus.

Lab Streaming Layer (https://labstreaminglayer.org) through pylsl, the optional
``lsl`` extra (``pip install 'zaudio[lsl]'``; its Linux wheel bundles liblsl).

- :func:`lsl_out`: subscribes to one bus stream (:func:`zaudio.subscribe`, so gaps
  are tracked and counted like every subscriber's) and pushes each block to an LSL
  outlet (``float32``, ``nominal_srate`` = rate, type ``Audio``, source id
  ``zaudio:<stream>``), stamped from ``t`` on the LSL clock.
- :func:`lsl_in`: resolves an LSL stream by name and publishes it on the bus with a
  :class:`~zaudio.publisher.Publisher`: the exact samples (``float32`` streams; other
  numeric formats are converted to float32), ``t`` from the LSL timestamp of each
  chunk's first sample, time-corrected (``StreamInlet.time_correction``).

The two clocks: the bus stamps ``t`` in the proxy's time base (Unix seconds); LSL
in ``local_clock()`` (seconds of a monotonic clock). Their difference is read at
each block: ``proxy time - LSL time = (clock.now() + offset) - local_clock()``,
with ``offset`` this node's measured offset to the proxy.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

import numpy as np

from zaudio import clock
from zaudio.client import measure_offset
from zaudio.errors import ConfigError, LocalProtocolError
from zaudio.protocol import validate_name
from zaudio.requester import Requester
from zaudio.security import Keys

__all__ = ["lsl_in", "lsl_out", "pylsl"]

log = logging.getLogger(__name__)

#: Seconds between re-measurements of the proxy clock offset (lsl-out) and of the
#: LSL time correction (lsl-in).
RESYNC: Final = 5.0
#: Frames per block published by lsl-in (at most): 10 ms.
BLOCK: Final = 0.01


def pylsl() -> Any:
    """The pylsl module, or a one-line ConfigError saying how to get it."""
    from zaudio.extras import require

    try:
        return require("pylsl", "zaudio bridge")
    except RuntimeError as exc:  # pylsl found no liblsl
        raise ConfigError(f"pylsl cannot load liblsl ({exc}): pip install 'zaudio[lsl]'") from None


class _ProxyClock:
    """Proxy time minus this host's clock, measured now and every :data:`RESYNC` s."""

    def __init__(self, proxy: str | None, keys: Keys | None) -> None:
        self.req = Requester(proxy, timeout=1.0, keys=keys)
        self.offset = 0.0
        self.next = 0.0

    def now(self) -> float:
        mono = time.monotonic()
        if mono >= self.next:
            self.next = mono + RESYNC
            try:
                self.offset = measure_offset(self.req)[0]
            except Exception as exc:  # keep the last offset; the data path goes on
                log.warning("cannot measure the clock offset to the proxy: %s", exc)
        return clock.now() + self.offset

    def close(self) -> None:
        self.req.close()


def lsl_out(
    stream: str,
    *,
    proxy: str | None = None,
    keys: Keys | None = None,
    name: str | None = None,
    until: threading.Event | None = None,
) -> dict[str, int]:
    """Push bus stream ``stream`` to an LSL outlet called ``name`` (default: the stream)
    until ``until`` is set; return counters (``blocks``, ``frames``, ``gaps``)."""
    lsl = pylsl()
    try:
        validate_name(stream)
    except LocalProtocolError as exc:
        raise ConfigError(str(exc)) from None
    from zaudio.subscriber import subscribe

    stop = until or threading.Event()
    pclock = _ProxyClock(proxy, keys)
    outlet: Any = None
    shape = (0, 0)
    counters = {"blocks": 0, "frames": 0, "gaps": 0}
    stats: dict[str, Any] = {}
    try:
        while not stop.is_set():
            # timeout: the generator ends when idle, so a stop is seen within 1 s
            for block, info in subscribe(
                stream, proxy=proxy, keys=keys, timeout=1.0, name="lsl-out", stats=stats
            ):
                if outlet is None or shape != (info.rate, info.channels):
                    shape = (info.rate, info.channels)
                    lsl_info = lsl.StreamInfo(
                        name or stream,
                        "Audio",
                        info.channels,
                        info.rate,
                        lsl.cf_float32,
                        f"zaudio:{stream}",
                    )
                    outlet = lsl.StreamOutlet(lsl_info)
                    log.info("LSL outlet %r for stream %r", name or stream, stream)
                lsl_minus_proxy = lsl.local_clock() - pclock.now()
                last = info.t + (info.frames - 1) / info.rate + lsl_minus_proxy
                outlet.push_chunk(block, last)
                counters["blocks"] += 1
                counters["frames"] += info.frames
                counters["gaps"] += info.gap
                if stop.is_set():
                    break
    finally:
        pclock.close()
    return counters


def lsl_in(
    lsl_name: str,
    *,
    stream: str | None = None,
    proxy: str | None = None,
    keys: Keys | None = None,
    wait: float = 10.0,
    until: threading.Event | None = None,
) -> dict[str, int]:
    """Publish the LSL stream called ``lsl_name`` as bus stream ``stream`` (default: the
    LSL name) until ``until`` is set; return the Publisher's counters.

    Raises
    ------
    ConfigError
        No such LSL stream within ``wait`` s, an irregular or string stream, or a
        name that is not a valid stream name.
    """
    lsl = pylsl()
    target = stream or lsl_name
    try:
        validate_name(target)
    except LocalProtocolError as exc:
        raise ConfigError(f"{exc} (choose the bus name with --stream)") from None
    found = lsl.resolve_byprop("name", lsl_name, 1, wait)
    if not found:
        raise ConfigError(
            f"no LSL stream called {lsl_name!r} found within {wait:g} s: check its name "
            "(and that LSL discovery reaches it)"
        )
    inlet = lsl.StreamInlet(found[0], max_buflen=30, recover=True)
    info = inlet.info()
    rate = info.nominal_srate()
    channels = info.channel_count()
    if info.channel_format() == lsl.cf_string or rate <= 0 or rate != round(rate):
        inlet.close_stream()
        raise ConfigError(
            f"LSL stream {lsl_name!r} is not regular numeric audio (format "
            f"{info.channel_format()}, nominal_srate {rate:g}): the bus carries float32 "
            "at an integer rate"
        )
    from zaudio.publisher import Publisher

    stop = until or threading.Event()
    frames = max(1, round(int(rate) * BLOCK))
    # liblsl fills a buffer of the stream's own dtype (pylsl >= 1.17 says which)
    dtype = getattr(inlet, "np_dtype", None)
    buf = np.zeros((frames, channels), dtype) if dtype is not None else None
    pub = Publisher(
        target, rate=int(rate), channels=channels, proxy=proxy, keys=keys, name="lsl-in"
    )
    try:
        pub.start()
        inlet.open_stream(wait)
        correction = inlet.time_correction(wait)
        next_sync = time.monotonic() + RESYNC
        while not stop.is_set():
            data, stamps = inlet.pull_chunk(timeout=0.2, max_samples=frames, dest_obj=buf)
            if pub.client.refused is not None:
                raise pub.client.refused
            if not stamps:
                pub.flush()
                continue
            if time.monotonic() >= next_sync:
                next_sync = time.monotonic() + RESYNC
                correction = inlet.time_correction(1.0)
            proxy_minus_lsl = pub.now() - lsl.local_clock()
            # a copy (astype): buf is filled again by the next pull
            block = (buf[: len(stamps)] if buf is not None else np.asarray(data)).astype(np.float32)
            pub.send(block, stamps[0] + correction + proxy_minus_lsl)
    finally:
        pub.close()
        inlet.close_stream()
    return dict(pub.counters)
