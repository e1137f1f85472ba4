"""The node's wall clock.

``ZAUDIO_CLOCK_SKEW`` (seconds, default 0) shifts it: a documented test hook that
makes a node's clock wrong by a known amount, to show that stamping ``t`` in the
proxy's time base (see :mod:`zaudio.client`) corrects it.
"""

from __future__ import annotations

import os
import time

__all__ = ["SKEW", "now"]


def _skew() -> float:
    raw = os.environ.get("ZAUDIO_CLOCK_SKEW", "")
    try:
        return float(raw) if raw else 0.0
    except ValueError:
        return 0.0


SKEW = _skew()


def now() -> float:
    """Seconds since the Unix epoch on this node's (possibly skewed) clock."""
    return time.time() + SKEW
