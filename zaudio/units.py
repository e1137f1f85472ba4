"""Parsing durations (``250ms``, ``1.5s``, ``2m``, ``3``) and block sizes (``10ms``, ``480``);
byte counts (``256MiB``, ``1e6``) and printing them (``2.3 MB``)."""

from __future__ import annotations

import re

from zaudio.errors import ConfigError

__all__ = ["format_bytes", "parse_block", "parse_bytes", "parse_duration"]

_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|min|h)?\s*\Z")
_BYTES_RE = re.compile(r"\s*(\d+(?:\.\d*)?(?:e\d+)?)\s*([kKMGT]i?B?|B)?\s*\Z")
_BYTE_POWER = {"B": 0, "k": 1, "K": 1, "M": 2, "G": 3, "T": 4}
_SCALE = {None: 1.0, "s": 1.0, "ms": 1e-3, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Seconds in ``text``: ``250ms``, ``1.5s``, ``2m``, ``1h`` or plain seconds."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        m = _DURATION_RE.match(text)
        if not m:
            raise ConfigError(f"invalid {what} {text!r}: use e.g. 250ms, 1.5s, 2m or plain seconds")
        seconds = float(m[1]) * _SCALE[m[2]]
    if seconds <= 0:
        raise ConfigError(f"invalid {what} {text!r}: must be more than 0")
    return seconds


def parse_bytes(text: str | int, what: str = "size") -> int:
    """Bytes in ``text``: ``1000000``, ``1e6``, ``500kB``, ``256MiB``, ``2G`` (SI, or ``i`` binary)."""
    if isinstance(text, int):
        n = float(text)
    else:
        m = _BYTES_RE.match(text)
        if not m:
            raise ConfigError(f"invalid {what} {text!r}: use e.g. 1000000, 500kB, 256MiB or 2G")
        unit = m[2] or "B"
        n = float(m[1]) * (1024.0 if "i" in unit else 1000.0) ** _BYTE_POWER[unit[0]]
    if n < 1:
        raise ConfigError(f"invalid {what} {text!r}: must be at least 1 byte")
    return int(n)


def parse_block(text: str | int, rate: int, what: str = "block size") -> int:
    """Frames in a block given as a frame count (``480``) or a duration (``10ms``)."""
    if isinstance(text, int) or (isinstance(text, str) and text.strip().isdigit()):
        frames = int(text)
    else:
        frames = round(parse_duration(text, what) * rate)
    if frames < 1:
        raise ConfigError(f"invalid {what} {text!r}: it is less than one frame at {rate} Hz")
    if frames > rate * 60:
        raise ConfigError(f"invalid {what} {text!r}: more than a minute of audio per block")
    return frames


def format_bytes(n: float) -> str:
    """``n`` bytes for people, in SI units: ``512 B``, ``2.3 kB``, ``41.0 MB``."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")  # pragma: no cover
