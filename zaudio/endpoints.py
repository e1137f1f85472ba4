"""Endpoint strings: defaults, normalisation, and resolving wildcard hosts."""

from __future__ import annotations

import ipaddress
import re
import socket

from zaudio.errors import ConfigError

__all__ = ["DEFAULT_PROXY", "control_endpoint", "free_ports", "is_loopback", "resolve"]

DEFAULT_PROXY = "tcp://127.0.0.1:5555"
_EP_RE = re.compile(r"(?P<scheme>tcp|ipc|inproc)://(?P<rest>.+)\Z")
_HOST_PORT_RE = re.compile(r"(?P<host>\[[^\]]+\]|[^:/\s\[\]]+)(?::(?P<port>[^:]*))?\Z")
_USE = "use tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555)"


def _port(proxy: str, port: str, what: str) -> int:
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"invalid {what} {proxy!r}: the port must be 1-65535; {_USE}")
    return int(port)


def control_endpoint(proxy: str | None, what: str = "proxy address") -> str:
    """Normalise and check a ``--proxy`` value: ``HOST``, ``HOST:PORT`` or ``tcp://HOST:PORT``.

    ``ipc://PATH`` and ``inproc://NAME`` pass as they are. A ``tcp://`` endpoint
    must name its port (1-65535); a bare ``HOST`` means port 5555.

    Raises
    ------
    ConfigError
        The value cannot be a control endpoint (one line saying what to use).
    """
    if not proxy:
        return DEFAULT_PROXY
    proxy = proxy.strip()
    m = _EP_RE.match(proxy)
    if m is None and "://" in proxy:
        raise ConfigError(f"invalid {what} {proxy!r}: {_USE}")
    if m and m["scheme"] != "tcp":
        return proxy
    rest = m["rest"] if m else proxy
    hp = _HOST_PORT_RE.match(rest)
    if not hp:
        raise ConfigError(f"invalid {what} {proxy!r}: {_USE}")
    if hp["port"] is None:
        if m:  # tcp:// without a port: zmq cannot connect to it
            raise ConfigError(f"invalid {what} {proxy!r}: no port; {_USE}")
        return f"tcp://{hp['host']}:5555"
    return f"tcp://{hp['host']}:{_port(proxy, hp['port'], what)}"


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


def is_loopback(host: str) -> bool:
    """True if ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
