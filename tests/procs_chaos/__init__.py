"""Processors for the chaos, fuzz and multi-host tests (``zaudio process tests.procs_chaos:X``).

Each returns what the test needs to check coverage from ``result/<name>``: the
span it saw (``index``, ``frames``), the publisher run (``src``), the block's
time ``t``, and the flags the runtime set (``gap``, ``restart``).
"""

from __future__ import annotations

import time
from typing import Any


def span(block: Any, info: Any) -> dict[str, Any]:
    """Report the span of every block."""
    return {
        "index": info.index,
        "frames": info.frames,
        "src": info.src,
        "t": info.t,
        "gap": info.gap,
        "restart": info.restart,
    }


def slow(block: Any, info: Any, delay: float = 0.05) -> dict[str, Any]:
    """Like :func:`span`, but slower than real time for 10 ms blocks (``-p delay=S``)."""
    time.sleep(delay)
    return span(block, info)


def quiet(block: Any, info: Any) -> None:
    """Process every block, publish nothing (counters only)."""
    return None
