"""The proxy's ``list`` reply: its registry, its own counters, and what its hub knows.

Built for :class:`zaudio.proxy.Proxy` on its control thread (docs/protocol.md,
``list``); with ``--upstream`` the nodes and streams the hub knows from
elsewhere are added (zaudio.federation).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from zaudio._version import __version__
from zaudio.control import ListReply, ProxyInfo

if TYPE_CHECKING:
    from zaudio.proxy import Proxy

__all__ = ["listing"]


def listing(proxy: Proxy, now: float) -> ListReply:
    """The ``list`` reply of ``proxy`` at ``now``."""
    counters = proxy.forwarder.counters(0.5) if proxy.forwarder is not None else None
    watch = proxy.watch
    info = ProxyInfo(
        version=__version__,
        pid=os.getpid(),
        control=proxy.control,
        pub=proxy.pub,
        sub=proxy.sub,
        since=proxy.started,
        requests=proxy.requests,
        bad_requests=proxy.bad_requests,
        refused={
            "requests": proxy.bad_requests,
            "rate_limited": proxy.limiter.limited,
            "publishers": watch.cut_off + watch.refused if watch is not None else 0,
        },
        publishers=watch.counters() if watch is not None else {},
        forwarded=counters.as_dict() if counters is not None else None,
        history=proxy.history.stats() if proxy.history is not None else None,
        name=proxy.name,
        upstream=proxy.federation.info() if proxy.federation is not None else None,
    )
    listed = proxy.registry.listing(now)
    proxy.groups.expire(now, proxy.registry.nodes)
    if proxy.federation is not None:
        listed = proxy.federation.merge(listed)
    return msgspec.structs.replace(listed, proxy=info, groups=proxy.groups.infos())
