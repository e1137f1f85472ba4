"""Endpoint strings: defaults, normalisation, and resolving wildcard hosts."""

from __future__ import annotations

import re
import socket

from zaudio.errors import ConfigError

__all__ = ["DEFAULT_PROXY", "control_endpoint", "free_ports", "resolve"]

DEFAULT_PROXY = "tcp://127.0.0.1:5555"
_EP_RE = re.compile(r"(?P<scheme>tcp|ipc|inproc)://(?P<rest>.+)\Z")
_HOST_PORT_RE = re.compile(r"(?P<host>\[[^\]]+\]|[^:/\s]+)(?::(?P<port>\d+))?\Z")


def control_endpoint(proxy: str | None) -> str:
    """Normalise a ``--proxy`` value: ``HOST``, ``HOST:PORT`` or ``tcp://HOST:PORT``."""
    if not proxy:
        return DEFAULT_PROXY
    proxy = proxy.strip()
    if _EP_RE.match(proxy):
        return proxy
    m = _HOST_PORT_RE.match(proxy)
    if not m:
        raise ConfigError(
            f"invalid proxy address {proxy!r}: use tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555)"
        )
    return f"tcp://{m['host']}:{m['port'] or 5555}"


def _split(endpoint: str) -> tuple[str, str, str]:
    m = _EP_RE.match(endpoint)
    if not m:
        raise ConfigError(f"invalid endpoint {endpoint!r}")
    host, _, port = m["rest"].rpartition(":")
    return m["scheme"], host, port


def resolve(data_endpoint: str, control: str) -> str:
    """The endpoint to connect to for a data endpoint ``hello`` returned.

    A wildcard host (``*``, ``0.0.0.0``, ``::``) means "the host you reached the
    control channel on", at the port given.
    """
    scheme, host, port = _split(data_endpoint)
    if scheme != "tcp" or host not in ("*", "0.0.0.0", "::", "[::]", ""):
        return data_endpoint
    _, control_host, _ = _split(control)
    return f"tcp://{control_host}:{port}"


def free_ports(n: int = 3, preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """First of ``n`` consecutive free TCP ports on ``host``: ``preferred`` if free.

    For tests, benchmarks and the demo, which start proxies of their own (a
    proxy needs its control port and the next two).
    """
    for attempt in range(200):
        base = preferred if attempt == 0 and preferred else 0
        if not base:
            with socket.socket() as s:
                s.bind((host, 0))
                base = int(s.getsockname()[1])
        if base + n > 65536:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind((host, port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise ConfigError(f"no {n} consecutive free ports on {host}")
