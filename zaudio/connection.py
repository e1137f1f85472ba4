"""The subscriber connection: hello → connect → subscribe → confirm.

Every receiving node opens its data sockets the same way, through
:class:`Connection`: :class:`~zaudio.Processor`, :func:`zaudio.subscribe`,
:func:`zaudio.results`, the capture node, the demo, ``zaudio top``'s level tap, the
web monitor and the test helpers. It asks the proxy where its data sockets are
(``hello``), connects an :class:`~zaudio.bus.Inlet` (SUB) and an
:class:`~zaudio.bus.Outlet` (XPUB), subscribes the inlet, and waits until the
proxy confirms the subscriptions are in effect
(:func:`~zaudio.bus.confirm_subscriptions`): a handshake, not a sleep. From then
on, any publisher that connects receives them before its first block.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from zaudio.bus import Inlet, Outlet, confirm_subscriptions
from zaudio.client import request
from zaudio.endpoints import control_endpoint, resolve
from zaudio.errors import ConfigError, LocalProtocolError, ProxyUnreachable, ZaudioError
from zaudio.protocol import subscription
from zaudio.security import Keys

__all__ = ["Connection", "subscriptions", "topic_patterns"]

log = logging.getLogger(__name__)


def topic_patterns(topics: str | Iterable[str] | None) -> list[str]:
    """The ``--topic`` patterns as a list; ``["*"]`` (every audio stream) when none."""
    if topics is None:
        return ["*"]
    if isinstance(topics, str):
        return [topics]
    return list(topics) or ["*"]


def subscriptions(patterns: Sequence[str]) -> list[bytes]:
    """The subscription prefixes of ``--topic`` patterns; ConfigError for an invalid one."""
    prefixes = []
    for pattern in patterns:
        try:
            prefixes.append(subscription(pattern))
        except LocalProtocolError as exc:
            raise ConfigError(f"invalid --topic {pattern!r}: {exc}") from None
    return prefixes


class Connection:
    """The data sockets of a receiving node: an inlet subscribed and confirmed, an outlet.

    Both sockets belong to the thread that calls :meth:`open` and uses them
    (the processor runtime lends the inlet to its drain helper under a lock; see
    :mod:`zaudio.overrun`).

    Parameters
    ----------
    proxy : str, optional
        Control endpoint; ``ZAUDIO_PROXY`` or ``tcp://127.0.0.1:5555`` by default.
    topics : sequence of str
        ``--topic`` patterns (see :func:`zaudio.protocol.subscription`); raises
        ConfigError for an invalid one.
    keys : Keys, optional
        CurveZMQ client keys.
    hwm : int
        The inlet's receive high-water mark, in messages.
    stop : threading.Event, optional
        :meth:`open` gives up when it is set.
    """

    def __init__(
        self,
        proxy: str | None,
        topics: Sequence[str],
        *,
        keys: Keys | None,
        hwm: int = 10_000,
        stop: threading.Event | None = None,
    ) -> None:
        self.control = control_endpoint(proxy or os.environ.get("ZAUDIO_PROXY"))
        self.prefixes = subscriptions(topics)
        self.keys = keys
        self.stop = stop or threading.Event()
        self.inlet = Inlet(keys=keys, hwm=hwm)
        self.outlet = Outlet(keys=keys)
        self.sock = self.inlet.sock
        self._warned = False

    def open(self, timeout: float | None = None) -> bool:
        """Hello, connect, subscribe, confirm.

        Retries while the proxy does not answer (warning once, until it answers).
        False if ``stop`` was set, or ``timeout`` seconds passed, before it
        completed. It may be called again, after a False or after the proxy was
        away: the sockets follow the proxy's data endpoints if they moved, and
        each subscription is made once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def going() -> bool:
            return not self.stop.is_set() and (deadline is None or time.monotonic() < deadline)

        while going():
            try:
                hello = request(self.control, {"op": "hello"}, timeout=1.0, keys=self.keys)
                break
            except ProxyUnreachable as exc:
                if not self._warned:
                    log.warning("%s; retrying", exc)
                    self._warned = True
                self.stop.wait(0.2)
        else:
            return False
        self._warned = False
        self.inlet.connect(resolve(str(hello["sub"]), self.control))
        self.outlet.connect(resolve(str(hello["pub"]), self.control))
        for prefix in self.prefixes:
            if prefix not in self.inlet.topics:
                self.inlet.subscribe(prefix)
        while going():
            if confirm_subscriptions(self.inlet, self.outlet, 0.5):
                return True
        return False

    def lost(self) -> bool:
        """True if the proxy went away since :meth:`open` (it withdrew its READY
        subscription from the outlet, or never gave it): :meth:`open` again, as the
        proxy that comes back may have moved its data endpoints. Never blocks."""
        self.outlet.pump()
        return not self.outlet.ready

    def topics(self) -> list[str]:
        """The subscription prefixes, as the registration carries them."""
        return [p.decode() for p in self.prefixes]

    def matching_streams(self) -> list[dict[str, Any]]:
        """Streams the proxy lists now that these subscriptions receive (best effort)."""
        try:
            streams = request(self.control, {"op": "list"}, timeout=1.0, keys=self.keys)["streams"]
        except (ZaudioError, KeyError):
            return []
        out = []
        for s in streams if isinstance(streams, list) else []:
            topic = b"audio/" + str(s.get("name")).encode() + b"\0"
            if any(topic.startswith(p) for p in self.prefixes):
                out.append(s)
        return out

    def close(self, linger: float = 0.5) -> None:
        """Close both sockets (the outlet waits up to ``linger`` s for what it queued)."""
        self.inlet.close()
        self.outlet.close(linger)
