"""Per-peer request limits for the proxy's control channel: pure state, no sockets.

A peer is one connection to the control socket (its ZeroMQ routing id). Each
peer has a token bucket: ``burst`` requests at once, refilled at ``rate`` per
second. A request costs one token; a ``list`` reply, whose cost grows with the
registry, costs one more per 100 nodes and streams it holds. A request beyond
the bucket is answered at once with ``code: "rate_limited"`` and costs the proxy
no more than that reply, so one flooding peer cannot make the others wait: the
control socket serves peers in turn (ZeroMQ fair-queues them), and the
flooder's turns are cheap.

A zaudio node sends about two requests a second; the default limit (500 per
second, 500 at once) leaves room for tools that poll ``list`` and for tests that
fire thousands of requests on one socket, and stops a peer that pipelines
requests without waiting for replies.
"""

from __future__ import annotations

__all__ = ["BURST", "LIST_ENTRIES_PER_TOKEN", "RATE", "PeerLimiter"]

RATE = 500.0
BURST = 500.0
#: A ``list`` reply costs one more token per this many nodes and streams in it.
LIST_ENTRIES_PER_TOKEN = 100
#: Peers remembered at most; idle ones (bucket full again) are forgotten first.
MAX_PEERS = 4096


class PeerLimiter:
    """Token buckets by peer id.

    Parameters
    ----------
    rate : float
        Requests per second each peer may send, sustained.
    burst : float
        Requests a peer may send at once (the bucket's size).
    """

    def __init__(self, rate: float = RATE, burst: float = BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[bytes, tuple[float, float]] = {}  # peer -> (tokens, when)
        self.limited = 0

    def allow(self, peer: bytes, now: float) -> float:
        """Take one token for ``peer``: 0.0 if allowed, else seconds until the next one.

        ``now`` is a monotonic clock (seconds).
        """
        tokens, then = self._buckets.get(peer, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self._buckets[peer] = (tokens, now)
            self.limited += 1
            return (1.0 - tokens) / self.rate
        if peer not in self._buckets and len(self._buckets) >= MAX_PEERS:
            self.forget_idle(now)
        self._buckets[peer] = (tokens - 1.0, now)
        return 0.0

    def charge(self, peer: bytes, tokens: float) -> None:
        """Take ``tokens`` more from ``peer`` for a request that cost more than one.

        The bucket may go below zero: the peer's next requests wait until it
        has refilled.
        """
        left, then = self._buckets.get(peer, (self.burst, 0.0))
        self._buckets[peer] = (left - tokens, then)

    def forget_idle(self, now: float) -> None:
        """Drop the peers whose buckets are full again (they would start full anyway)."""
        refill = self.burst / self.rate
        self._buckets = {p: b for p, b in self._buckets.items() if now - b[1] < refill}
        if len(self._buckets) >= MAX_PEERS:  # all busy: keep the most recent half
            recent = sorted(self._buckets.items(), key=lambda kv: kv[1][1])[MAX_PEERS // 2 :]
            self._buckets = dict(recent)

    def __len__(self) -> int:
        return len(self._buckets)
