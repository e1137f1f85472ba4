"""Every exception zaudio raises on purpose.

::

    ZaudioError
     ├── ProtocolError (ValueError)         a message that does not fit docs/protocol.md
     │    ├── LocalProtocolError            we were asked to send it
     │    └── RemoteProtocolError           a peer sent it (receivers drop and count it)
     ├── ConfigError                        bad usage: options, names, files, modules (CLI exit 2)
     │    ├── ImportFromStringError         ``module:attr`` that cannot be loaded
     │    ├── DeviceError                   no PortAudio, no such audio device
     │    └── CaptureFileError              a file that is not a readable zaudio capture
     ├── ProxyError                         the control channel failed (CLI exit 1)
     │    ├── ProxyUnreachable              no reply within the timeout
     │    └── RequestRefused                the proxy replied ``ok: false``
     ├── RequestError                       (proxy side) a control request it cannot serve
     ├── ProcessorFailed                    a user function raised with ``on_error="stop"``
     └── CaptureError                       a capture could not write on (disk full): it stopped

Foreign exceptions (zmq, sounddevice, soundfile, json) are translated where they
enter, with ``raise ... from``.
"""

from __future__ import annotations


class ZaudioError(Exception):
    """Base class of every error zaudio raises on purpose."""


class ProtocolError(ZaudioError, ValueError):
    """A message that does not fit the wire protocol.

    ``reason`` is a short word naming what was wrong (``frames``, ``topic``,
    ``header``, ``payload``, ``name``, ``size``), used as a counter key.
    """

    def __init__(self, message: str, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class LocalProtocolError(ProtocolError):
    """We were asked to encode something the protocol cannot carry."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something malformed; receivers drop and count it."""


class ConfigError(ZaudioError):
    """Bad usage: an option, name, file or module that cannot work (exit code 2)."""


class ImportFromStringError(ConfigError):
    """``module:attr`` could not be loaded (the module or attribute does not exist)."""


class DeviceError(ConfigError):
    """Audio devices cannot be used: PortAudio missing, device unknown or busy."""


class CaptureFileError(ConfigError):
    """A file that cannot be read as a zaudio capture (not one, or a newer version)."""


class ProxyError(ZaudioError):
    """The control channel to the proxy failed."""


class ProxyUnreachable(ProxyError):
    """The proxy did not answer within the timeout."""


class RequestRefused(ProxyError):
    """The proxy answered ``ok: false``; ``code`` is set when it gave one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class RequestError(ZaudioError):
    """(Proxy side) a control request that cannot be served.

    The proxy answers it as ``{"ok": false, "error": str(exc), "code": code}``;
    the client raises :class:`RequestRefused` with the same ``code``.
    """

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


class ProcessorFailed(ZaudioError):
    """The user function raised and ``on_error="stop"`` was chosen (CLI exit 1)."""


class CaptureError(ZaudioError):
    """A capture could not write on (disk full, I/O error); it stopped with its file valid."""
