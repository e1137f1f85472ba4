"""Container health check: is this container's zaudio node alive on the bus?

``python -m zaudio.health`` is the Docker image's ``HEALTHCHECK``. It asks the
proxy (``ZAUDIO_PROXY``, with ``ZAUDIO_KEYS`` when set) for its ``list`` of live
nodes and exits

- 0 when a node whose ``host`` is this machine's host name is registered (a
  container's host name is its own, so each replica of a scaled service checks
  itself; the proxy drops a node that misses its heartbeats, so a hung node turns
  unhealthy too);
- 0 when no node of ours is registered but the proxy endpoint is a loopback
  address and the proxy answered: this container is the proxy (``--role auto``,
  the default; ``--role node`` or ``--role proxy`` decide explicitly);
- 1 otherwise, with one line on stderr saying why.

Options: ``--proxy EP``, ``--keys DIR``, ``--timeout SECONDS``, ``--role``,
``--name NAME`` (the node must also have this name).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from typing import Any

from zaudio.endpoints import control_endpoint
from zaudio.errors import ZaudioError

__all__ = ["check", "main"]

LOOPBACK = ("127.", "localhost", "[::1]", "::1")


def _is_loopback(endpoint: str) -> bool:
    host = endpoint.partition("://")[2].rpartition(":")[0]
    return host.startswith(LOOPBACK)


def check(
    proxy: str | None = None,
    *,
    keys: Any = None,
    role: str = "auto",
    name: str | None = None,
    hostname: str | None = None,
    timeout: float = 2.0,
) -> tuple[bool, str]:
    """Whether this host's node (or, for the proxy, the proxy) is healthy.

    Parameters
    ----------
    proxy : str, optional
        Control endpoint of the proxy (default ``tcp://127.0.0.1:5555``).
    keys : zaudio.security.Keys, optional
        Client keys when the proxy uses CurveZMQ.
    role : {"auto", "node", "proxy"}
        ``node``: a node of this host must be registered; ``proxy``: the proxy
        answering is enough; ``auto``: ``proxy`` when the endpoint is loopback and
        no node of this host is registered, else ``node``.
    name : str, optional
        Only count nodes with this name.
    hostname : str, optional
        Host name to look for (default: ``socket.gethostname()``).
    timeout : float
        Seconds to wait for the proxy's reply.

    Returns
    -------
    (bool, str)
        Healthy or not, and one line saying why.
    """
    from zaudio.client import request
    from zaudio.control import List

    endpoint = control_endpoint(proxy)
    host = hostname or socket.gethostname()
    try:
        reply = request(endpoint, List(), timeout=timeout, keys=keys)
    except ZaudioError as exc:
        return False, f"proxy {endpoint} did not answer: {exc}"
    mine = [
        n
        for n in reply.get("nodes", [])
        if n.get("host") == host and (name is None or n.get("name") == name)
    ]
    if role != "proxy" and mine:
        what = ", ".join(f"{n.get('role')} {n.get('name')!r}" for n in mine)
        return True, f"registered with {endpoint}: {what}"
    if role == "proxy" or (role == "auto" and _is_loopback(endpoint)):
        return True, f"proxy {endpoint} answers"
    named = f" named {name!r}" if name else ""
    return False, f"no node{named} from host {host!r} is registered with {endpoint}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m zaudio.health", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--proxy", default=os.environ.get("ZAUDIO_PROXY"))
    parser.add_argument("--keys", default=os.environ.get("ZAUDIO_KEYS") or None)
    parser.add_argument("--role", choices=("auto", "node", "proxy"), default="auto")
    parser.add_argument("--name", default=None)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("-q", "--quiet", action="store_true", help="Print nothing when healthy.")
    args = parser.parse_args(argv)
    try:
        keys = None
        if args.keys:
            from zaudio.security import Keys

            keys = Keys.for_client(args.keys)
        ok, why = check(args.proxy, keys=keys, role=args.role, name=args.name, timeout=args.timeout)
    except ZaudioError as exc:
        ok, why = False, str(exc)
    if not ok:
        print(f"unhealthy: {why}", file=sys.stderr)
    elif not args.quiet:
        print(f"healthy: {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
