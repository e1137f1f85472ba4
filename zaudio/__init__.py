"""zaudio: a real-time audio bus for Python on ZeroMQ.

Capture once, process anywhere: recorders publish audio blocks through a proxy,
and any number of processors (other processes, containers or hosts) run your
code on them without ever slowing the capture.

Heavy modules load on first use, so ``import zaudio`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zaudio._version import __version__
from zaudio.loader import import_from_string

if TYPE_CHECKING:
    from zaudio.client import NodeClient, request
    from zaudio.errors import (
        CaptureError,
        CaptureFileError,
        ConfigError,
        DeviceError,
        ImportFromStringError,
        LocalProtocolError,
        ProcessorFailed,
        ProtocolError,
        ProxyError,
        ProxyUnreachable,
        RemoteProtocolError,
        RequestError,
        RequestRefused,
        ZaudioError,
    )
    from zaudio.ordered import results
    from zaudio.protocol import AudioHeader, ResultHeader, decode
    from zaudio.proxy import Proxy
    from zaudio.publisher import Publisher
    from zaudio.recorder import Recorder
    from zaudio.runtime import Info, Processor, run_processor
    from zaudio.security import Keys, keygen
    from zaudio.sequencer import Sequencer
    from zaudio.subscriber import subscribe

__all__ = [
    "AudioHeader",
    "CaptureError",
    "CaptureFileError",
    "ConfigError",
    "DeviceError",
    "ImportFromStringError",
    "Info",
    "Keys",
    "LocalProtocolError",
    "NodeClient",
    "ProcessorFailed",
    "ProtocolError",
    "Proxy",
    "ProxyError",
    "ProxyUnreachable",
    "Processor",
    "Publisher",
    "Recorder",
    "RemoteProtocolError",
    "RequestError",
    "RequestRefused",
    "ResultHeader",
    "Sequencer",
    "ZaudioError",
    "__version__",
    "decode",
    "keygen",
    "request",
    "results",
    "run_processor",
    "subscribe",
]

_LAZY = {
    "AudioHeader": "zaudio.protocol",
    "ResultHeader": "zaudio.protocol",
    "decode": "zaudio.protocol",
    "Proxy": "zaudio.proxy",
    "Publisher": "zaudio.publisher",
    "Recorder": "zaudio.recorder",
    "Info": "zaudio.runtime",
    "Processor": "zaudio.runtime",
    "run_processor": "zaudio.runtime",
    "subscribe": "zaudio.subscriber",
    "results": "zaudio.ordered",
    "Sequencer": "zaudio.sequencer",
    "NodeClient": "zaudio.client",
    "request": "zaudio.client",
    "Keys": "zaudio.security",
    "keygen": "zaudio.security",
    **{
        name: "zaudio.errors"
        for name in (
            "CaptureError",
            "CaptureFileError",
            "ConfigError",
            "DeviceError",
            "ImportFromStringError",
            "LocalProtocolError",
            "ProcessorFailed",
            "ProtocolError",
            "ProxyError",
            "ProxyUnreachable",
            "RemoteProtocolError",
            "RequestError",
            "RequestRefused",
            "ZaudioError",
        )
    },
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zaudio' has no attribute {name!r}")
    value = import_from_string(f"{module}:{name}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
