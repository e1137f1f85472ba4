"""The compiled receive and send of a data message (zaudio/_wire.c), when it is there.

:data:`WIRE` is the C module, ready to use, or None: then every node runs the same
logic in Python (:func:`zaudio.bus.recv_message`, :meth:`zaudio.expected.Expected.match`,
:meth:`zaudio.bus.Outlet.send`). The two are interchangeable (tests/test_wire.py runs
both on the same messages); the C one only costs less per block (docs/benchmarks.md).

The C module calls the libzmq that pyzmq itself loaded, on pyzmq's own socket
handles: its functions' addresses are read here from that library (found in
``/proc/self/maps``), so the extension links to no libzmq at build time and cannot
meet another copy of it. It is not used when:

- it was not built (a source install without a C compiler: the build skips it);
- ``ZAUDIO_WIRE=python`` is set (to compare, or to rule it out);
- the libzmq pyzmq uses cannot be found (not Linux, a static pyzmq).
"""

from __future__ import annotations

import ctypes
import logging
import os
from types import ModuleType

import msgspec
import numpy as np
import zmq

__all__ = ["WIRE", "libzmq_path"]

log = logging.getLogger(__name__)

_FUNCTIONS = (
    "zmq_msg_init",
    "zmq_msg_recv",
    "zmq_msg_close",
    "zmq_msg_data",
    "zmq_msg_size",
    "zmq_msg_more",
    "zmq_errno",
    "zmq_send",
    "zmq_getsockopt",
)


def libzmq_path() -> str | None:
    """The file of the libzmq this process has loaded (pyzmq's), or None."""
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(None, 1)[-1]
                if "libzmq" in os.path.basename(path) and path.startswith("/"):
                    return path
    except OSError:
        pass
    return None


def _load() -> ModuleType | None:
    if os.environ.get("ZAUDIO_WIRE", "").lower() == "python":
        return None
    try:
        from zaudio import _wire
    except ImportError:
        return None
    path = libzmq_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD)  # the copy pyzmq loaded, not a new one
        addresses = tuple(ctypes.cast(getattr(lib, f), ctypes.c_void_p).value for f in _FUNCTIONS)
    except (OSError, AttributeError) as exc:
        log.debug("zaudio._wire not used: %s", exc)
        return None
    if zmq.zmq_version_info() < (4, 1) or None in addresses:
        return None
    from zaudio.tracking import Info

    decode_float = msgspec.json.Decoder(float).decode
    _wire.init(addresses, zmq.ZMQError, decode_float, np.ndarray, np.dtype("<f4"), Info)
    return _wire  # type: ignore[no-any-return]


#: The C module (``recv``, ``send``), or None: use the Python path.
WIRE: ModuleType | None = _load()
