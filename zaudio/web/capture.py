"""A browser tab as a recorder: the capture WebSocket's handshake, limits and clock.

The page (``static/capture.js``) opens ``/ws/capture`` and sends one JSON text
message, the *hello*::

    {"type": "hello", "stream": "browser", "sampleRate": 48000, "channels": 1,
     "firstFrameTime": 1.234, "contextTime": 1.256, "inputLatency": 0.01,
     "timeOrigin": 1717000000000.0, "performanceTime": 5000.0, "dateNow": 1717000005000}

then binary messages, each ``frames x channels`` little-endian float32 values
(interleaved), every one published as one block. ``firstFrameTime`` and
``contextTime`` are AudioContext times (seconds): the first sample that will be
sent, and the moment the hello was sent. The server maps them to its own clock
when the hello arrives (browser wall clocks, on phones especially, can be off by
seconds; the arrival time is not) and then to the proxy's time base with the
node client's offset. ``timeOrigin``/``dateNow`` are kept for the log only.

Everything here is pure (no sockets) and testable; ``zaudio.web.server`` publishes
each checked block with a :class:`~zaudio.publisher.Publisher`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from zaudio.errors import RemoteProtocolError
from zaudio.protocol import decode_json, validate_name

__all__ = ["MAX_CHANNELS", "MAX_RATE", "MIN_RATE", "Hello", "TokenBucket", "parse_hello"]

MIN_RATE = 8_000
MAX_RATE = 384_000
MAX_CHANNELS = 8
#: Longest block a browser may send in one message, in seconds of audio.
MAX_BLOCK_SECONDS = 1.0


@dataclass(frozen=True)
class Hello:
    """The validated handshake of one capture connection."""

    stream: str
    rate: int
    channels: int
    #: AudioContext time of the first frame minus the context time at sending (<= 0)
    lead: float
    #: browser wall clock minus ours at arrival (seconds), for the log only
    skew: float | None


def _number(msg: dict[str, Any], key: str, default: float | None = None) -> float:
    value = msg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RemoteProtocolError(f"field {key!r} must be a finite number", "handshake")
    return float(value)


def parse_hello(raw: str | bytes, arrival: float) -> Hello:
    """Validate the page's hello message (received at ``arrival``, our clock).

    Raises
    ------
    RemoteProtocolError
        With ``reason`` ``"handshake"`` or ``"rate"``, and a message for the page.
    """
    if not isinstance(raw, str):
        raise RemoteProtocolError("the first message must be the JSON hello (text)", "handshake")
    if len(raw) > 4096:
        raise RemoteProtocolError("the hello is longer than 4 KiB", "handshake")
    try:
        msg = decode_json(raw.encode())
    except RemoteProtocolError:
        raise RemoteProtocolError("the hello is not JSON", "handshake") from None
    if not isinstance(msg, dict) or msg.get("type") != "hello":
        raise RemoteProtocolError('the hello must be an object with "type": "hello"', "handshake")
    try:
        stream = validate_name(msg.get("stream"))
    except ValueError as exc:
        raise RemoteProtocolError(str(exc), "handshake") from None
    rate = msg.get("sampleRate")
    if isinstance(rate, float) and rate.is_integer():
        rate = int(rate)
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise RemoteProtocolError(
            f"sampleRate {rate!r} is not an integer between {MIN_RATE} and {MAX_RATE} Hz", "rate"
        )
    channels = msg.get("channels", 1)
    if (
        isinstance(channels, bool)
        or not isinstance(channels, int)
        or not 1 <= channels <= MAX_CHANNELS
    ):
        raise RemoteProtocolError(
            f"channels {channels!r} is not an integer between 1 and {MAX_CHANNELS}", "handshake"
        )
    context = _number(msg, "contextTime", 0.0)
    first = _number(msg, "firstFrameTime", context)
    latency = _number(msg, "inputLatency", 0.0)
    # The first frame was captured before the hello left, by at most a few seconds.
    lead = min(0.0, first - context) - min(max(latency, 0.0), 1.0)
    lead = max(lead, -10.0)
    skew = None
    if isinstance(msg.get("dateNow"), int | float) and not isinstance(msg.get("dateNow"), bool):
        skew = float(msg["dateNow"]) / 1000.0 - arrival
    return Hello(stream=stream, rate=rate, channels=channels, lead=lead, skew=skew)


class TokenBucket:
    """A rate limit: ``rate`` units per second with bursts up to ``burst`` units."""

    __slots__ = ("_last", "burst", "level", "rate")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self._last = time.monotonic()

    def take(self, n: float, now: float | None = None) -> bool:
        """Take ``n`` units if there are enough; False (nothing taken) if not."""
        now = time.monotonic() if now is None else now
        self.level = min(self.burst, self.level + (now - self._last) * self.rate)
        self._last = now
        if self.level < n:
            return False
        self.level -= n
        return True


class FrameChecker:
    """Checks each binary message of one connection; returns a block or raises.

    Limits: the payload is a whole number of ``4 x channels`` bytes, at most
    :data:`MAX_BLOCK_SECONDS` of audio, finite values; the connection may send
    at most 1.5x real time on average (bursts of 2 s, for a network stall that
    clears) and 1000 messages per second.
    """

    def __init__(self, rate: int, channels: int) -> None:
        self.channels = channels
        self.stride = 4 * channels
        self.max_bytes = int(rate * MAX_BLOCK_SECONDS) * self.stride
        self.frames = TokenBucket(1.5 * rate, 2.0 * rate)
        self.messages = TokenBucket(1000.0, 1000.0)

    def check(self, data: Any) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The block of shape ``(frames, channels)`` in ``data``.

        Raises
        ------
        RemoteProtocolError
            ``reason`` is ``"text"``, ``"size"``, ``"values"`` or ``"flood"``.
        """
        if not isinstance(data, bytes | bytearray | memoryview):
            raise RemoteProtocolError("text message after the hello: send binary float32", "text")
        n = len(data)
        if n == 0 or n % self.stride:
            raise RemoteProtocolError(
                f"message of {n} bytes is not a whole number of frames "
                f"({self.channels} channel(s) x 4 bytes)",
                "size",
            )
        if n > self.max_bytes:
            raise RemoteProtocolError(
                f"message of {n} bytes is more than {MAX_BLOCK_SECONDS:g} s of audio", "size"
            )
        frames = n // self.stride
        if not self.messages.take(1) or not self.frames.take(frames):
            raise RemoteProtocolError("sending faster than the declared sample rate", "flood")
        block = np.frombuffer(data, dtype="<f4").reshape(frames, self.channels)
        if not np.isfinite(block).all():
            raise RemoteProtocolError("block holds NaN or infinite samples", "values")
        return block
