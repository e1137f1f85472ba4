"""An example user processor: the peak level of each block, in dBFS.

Run it without Docker against any proxy::

    zaudio process mymod:peak --topic mic

or build it into an image ``FROM`` the zaudio image (see Dockerfile here).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def peak(block: np.ndarray, info: Any) -> dict[str, float]:
    """Peak absolute sample of ``block`` in dBFS (published as a result)."""
    value = float(np.max(np.abs(block))) if block.size else 0.0
    return {"peak_db": 20 * math.log10(value) if value > 0 else -120.0}
