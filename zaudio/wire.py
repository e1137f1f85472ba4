"""The compiled receive and send of a data message (zaudio/_wire*.c), when it is there.

:data:`WIRE` is the C module, ready to use, or None: then every node runs the same
logic in Python (:func:`zaudio.bus.recv_message`, :meth:`zaudio.expected.Expected.match`,
:meth:`zaudio.bus.Outlet.send`). The two are interchangeable (tests/test_wire.py runs
both on the same messages); the C one only costs less per block (docs/benchmarks.md).

The C module calls the libzmq that pyzmq itself loaded, on pyzmq's own socket
handles: it finds that library among the objects the process has loaded and looks
its functions up in it, so the extension links to no libzmq at build time and cannot
meet another copy of it. It is not used when:

- it was not built (a source install without a C compiler: the build skips it);
- ``ZAUDIO_WIRE=python`` is set (to compare, or to rule it out);
- the libzmq pyzmq uses cannot be found (not Linux, a static pyzmq).
"""

from __future__ import annotations

import logging
import os
from types import ModuleType

import msgspec
import numpy as np
import zmq

__all__ = ["WIRE", "libzmq_path"]

log = logging.getLogger(__name__)


def libzmq_path() -> str | None:
    """The file of the libzmq this process has loaded (pyzmq's), or None."""
    try:
        from zaudio import _wire
    except ImportError:
        return None
    path: str | None = _wire.libzmq()
    return path


def _load() -> ModuleType | None:
    if os.environ.get("ZAUDIO_WIRE", "").lower() == "python":
        return None
    try:
        from zaudio import _wire
    except ImportError:
        return None
    if zmq.zmq_version_info() < (4, 1):
        return None
    from zaudio.tracking import Info

    decode_float = msgspec.json.Decoder(float).decode
    if _wire.init(zmq.ZMQError, decode_float, np.ndarray, np.dtype("<f4"), Info) is None:
        log.debug("zaudio._wire not used: pyzmq's libzmq not found")
        return None
    return _wire  # type: ignore[no-any-return]


#: The C module (``recv``, ``send``), or None: use the Python path.
WIRE: ModuleType | None = _load()
