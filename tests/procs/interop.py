"""A processor for the interop test: the RMS of each block."""

from __future__ import annotations

from typing import Any

import numpy as np


def rms(block: Any) -> dict[str, float]:
    return {"rms": float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))}
