"""Small helpers shared by the built-in processors: dBFS, parameter checks, info type."""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from zaudio.errors import ConfigError
from zaudio.units import parse_block, parse_duration

__all__ = [
    "FLOOR_DBFS",
    "BlockInfo",
    "Block",
    "amplitude_dbfs",
    "frames_param",
    "number_param",
    "power_dbfs",
    "seconds_param",
]

#: What silence reads in dBFS (instead of -inf, which JSON cannot carry).
FLOOR_DBFS = -120.0

_FLOOR_POWER = 10.0 ** (FLOOR_DBFS / 10.0)

Block = npt.NDArray[np.float32]


class BlockInfo(Protocol):
    """The header fields of a block, as the processor runtime passes them."""

    stream: str
    src: str
    seq: int
    index: int
    t: float
    rate: int
    channels: int
    frames: int
    gap: bool
    restart: bool


def power_dbfs(power: float) -> float:
    """Mean-square ``power`` (full scale 1.0) in dBFS, never below :data:`FLOOR_DBFS`."""
    if power <= _FLOOR_POWER:
        return FLOOR_DBFS
    return 10.0 * math.log10(power)


def amplitude_dbfs(amplitude: float) -> float:
    """An amplitude (RMS or peak, full scale 1.0) in dBFS, never below :data:`FLOOR_DBFS`."""
    return power_dbfs(amplitude * amplitude)


def number_param(
    value: Any, name: str, *, low: float | None = None, high: float | None = None
) -> float:
    """``value`` as a float, or a one-line :class:`ConfigError` naming parameter ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"invalid -p {name}={value!r}: expected a number")
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"invalid -p {name}={value!r}: expected a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"invalid -p {name}={value!r}: expected a finite number")
    if low is not None and number < low:
        raise ConfigError(f"invalid -p {name}={value!r}: must be at least {low:g}")
    if high is not None and number > high:
        raise ConfigError(f"invalid -p {name}={value!r}: must be at most {high:g}")
    return number


def seconds_param(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """A duration (``"250ms"``, ``0.25``) in seconds, or a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"invalid -p {name}={value!r}: expected a duration such as 250ms")
    if allow_zero and isinstance(value, int | float) and value == 0:
        return 0.0
    return parse_duration(value, f"-p {name}")


def frames_param(value: Any, name: str, rate: int) -> int:
    """A length in frames at ``rate``: an int is frames (``1024``), a float seconds, a string
    either (``"1024"``, ``"25ms"``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(
            f"invalid -p {name}={value!r}: expected frames (1024) or a duration (25ms)"
        )
    if isinstance(value, float):
        value = f"{value!r}s"
    return parse_block(value, rate, f"-p {name}")
