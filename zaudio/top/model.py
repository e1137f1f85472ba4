"""``zaudio top``'s rows, from successive ``list`` replies: pure state, no sockets, no terminal.

:class:`Model` keeps the previous value of every node counter with the time of
the heartbeat that carried it, so a rate is the change between two heartbeats
over the time between them (not between two refreshes). A row's ``problems``
name what is wrong now; the view colours them and sorts rows with problems
first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from zaudio.listing import topic_label
from zaudio.top.levels import Heard

__all__ = ["Model", "ProcessorRow", "ProxyRow", "PublisherRow", "Snapshot", "StreamRow"]

LAG_LIMIT = 1.0  # seconds behind live before a processor's lag is a problem
QUIET_AFTER = 2.0  # seconds without a block before a stream counts as quiet
CLIP = 0.999  # peak at or above: clipping


@dataclass
class StreamRow:
    name: str
    rate: int | None
    channels: int | None
    publisher: str
    blocks_per_s: float | None
    rms_dbfs: float | None
    peak: float | None
    problems: set[str] = field(default_factory=set)  # "quiet", "clip"


@dataclass
class ProcessorRow:
    name: str
    topics: str
    blocks_per_s: float | None
    lag: float | None
    rtf: float | None
    dropped: int | None
    gaps: int | None
    errors: int | None
    queued: int | None
    problems: set[str] = field(default_factory=set)  # "dropped", "lag", "rtf", "gaps", "errors"


@dataclass
class PublisherRow:
    name: str
    role: str
    stream: str
    sent: int | None
    blocks_per_s: float | None
    dropped: int | None
    buffered: int | None
    problems: set[str] = field(default_factory=set)  # "dropped", "buffered"


@dataclass
class ProxyRow:
    control: str
    version: str
    uptime: float | None
    requests: int | None
    unit: str
    in_per_s: float | None
    in_bytes_per_s: float | None
    out_per_s: float | None
    out_bytes_per_s: float | None


@dataclass
class Snapshot:
    proxy: ProxyRow | None
    streams: list[StreamRow]
    processors: list[ProcessorRow]
    publishers: list[PublisherRow]
    error: str | None = None  # the proxy did not answer this time


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _key(row: Any) -> tuple[bool, str]:
    return (not row.problems, row.name)


class Model:
    """Rows for the dashboard from each ``list`` reply (see the module docstring)."""

    def __init__(self) -> None:
        # (node id, counter) -> (heartbeat time, value) at the last change of heartbeat
        self._last: dict[tuple[str, str], tuple[float, float]] = {}
        self._rates: dict[tuple[str, str], float] = {}

    def rate(self, node: str, key: str, at: float, value: float | None) -> float | None:
        """Per-second change of a counter between the heartbeats that carried it."""
        if value is None:
            return None
        k = (node, key)
        prev = self._last.get(k)
        if prev is None or value < prev[1]:  # first sight, or the node restarted
            self._last[k] = (at, value)
            return None
        if at > prev[0]:
            self._rates[k] = (value - prev[1]) / (at - prev[0])
            self._last[k] = (at, value)
        return self._rates.get(k)

    def update(
        self,
        listing: dict[str, Any] | None,
        heard: dict[str, Heard] | None = None,
        *,
        heard_for: float = 0.0,
        now: float | None = None,
        error: str | None = None,
    ) -> Snapshot:
        """The rows for one refresh; ``listing`` None (with ``error``) if the proxy did not answer.

        ``heard`` is what the level tap heard (None without one), listening for
        ``heard_for`` seconds: a stream is quiet only once the tap had time to hear it.
        """
        if listing is None:
            return Snapshot(None, [], [], [], error)
        now = time.time() if now is None else now
        nodes = [n for n in listing.get("nodes", []) if isinstance(n, dict)]
        live = {str(n.get("id")) for n in nodes}
        for k in [k for k in self._last if k[0] not in live and k[0] != "proxy"]:
            self._last.pop(k, None)
            self._rates.pop(k, None)
        proxy = self._proxy(listing.get("proxy"), now)
        processors, publishers = [], []
        sent_rate: dict[str, float | None] = {}
        for n in nodes:
            stats = n.get("stats") or {}
            at = _float(n.get("last_seen")) or now
            node = str(n.get("id"))
            if n.get("role") == "processor":
                processors.append(self._processor(n, stats, node, at))
            elif "sent" in stats:
                row = self._publisher(n, stats, node, at)
                publishers.append(row)
                for s in n.get("streams", []):
                    sent_rate[str(s.get("name"))] = row.blocks_per_s
        streams = self._streams(listing, nodes, heard, heard_for, sent_rate)
        return Snapshot(
            proxy,
            sorted(streams, key=_key),
            sorted(processors, key=_key),
            sorted(publishers, key=_key),
            error,
        )

    def _proxy(self, p: Any, now: float) -> ProxyRow | None:
        if not isinstance(p, dict):
            return None
        since = _float(p.get("since"))
        forwarded = p.get("forwarded")
        f: dict[str, Any] = forwarded if isinstance(forwarded, dict) else {}

        def r(key: str) -> float | None:
            return self.rate("proxy", key, now, _float(f.get(key)))

        return ProxyRow(
            control=str(p.get("control", "?")),
            version=str(p.get("version", "?")),
            uptime=now - since if since is not None else None,
            requests=_int(p.get("requests")),
            unit=str(f.get("unit", "messages")),
            in_per_s=r("publish_in_received"),
            in_bytes_per_s=r("publish_in_received_bytes"),
            out_per_s=r("subscribe_out_sent"),
            out_bytes_per_s=r("subscribe_out_sent_bytes"),
        )

    def _processor(
        self, n: dict[str, Any], stats: dict[str, Any], node: str, at: float
    ) -> ProcessorRow:
        counts = {k: _int(stats.get(k)) for k in ("dropped", "gaps", "errors", "processed")}
        growing = {
            k: (self.rate(node, k, at, _float(counts[k])) or 0) > 0
            for k in ("dropped", "gaps", "errors")
        }
        row = ProcessorRow(
            name=str(n.get("name")),
            topics=",".join(topic_label(str(t)) for t in n.get("topics", [])) or "-",
            blocks_per_s=self.rate(node, "processed", at, _float(counts["processed"])),
            lag=_float(stats.get("lag")),
            rtf=_float(stats.get("rtf")),
            dropped=counts["dropped"],
            gaps=counts["gaps"],
            errors=counts["errors"],
            queued=_int(stats.get("queued")),
        )
        row.problems = {k for k, grew in growing.items() if grew}
        if row.lag is not None and row.lag > LAG_LIMIT:
            row.problems.add("lag")
        if row.rtf is not None and row.rtf > 1:
            row.problems.add("rtf")
        return row

    def _publisher(
        self, n: dict[str, Any], stats: dict[str, Any], node: str, at: float
    ) -> PublisherRow:
        dropped = _int(stats.get("dropped"))
        buffered = _int(stats.get("queue", stats.get("queued")))
        row = PublisherRow(
            name=str(n.get("name")),
            role=str(n.get("role")),
            stream=",".join(str(s.get("name")) for s in n.get("streams", [])) or "-",
            sent=_int(stats.get("sent")),
            blocks_per_s=self.rate(node, "sent", at, _float(stats.get("sent"))),
            dropped=dropped,
            buffered=buffered,
        )
        if (self.rate(node, "dropped", at, _float(dropped)) or 0) > 0:
            row.problems.add("dropped")
        if buffered is not None and buffered > 1:  # a block or so is in flight
            row.problems.add("buffered")
        return row

    def _streams(
        self,
        listing: dict[str, Any],
        nodes: list[dict[str, Any]],
        heard: dict[str, Heard] | None,
        heard_for: float,
        sent_rate: dict[str, float | None],
    ) -> list[StreamRow]:
        names = {str(n.get("id")): str(n.get("name")) for n in nodes}
        rows = []
        now = time.monotonic()
        for s in listing.get("streams", []):
            if not isinstance(s, dict):
                continue
            name = str(s.get("name"))
            h = heard.get(name) if heard is not None else None
            row = StreamRow(
                name=name,
                rate=_int(s.get("rate")),
                channels=_int(s.get("channels")),
                publisher=names.get(str(s.get("node")), "?"),
                blocks_per_s=h.blocks_per_s if h is not None else sent_rate.get(name),
                rms_dbfs=h.rms_dbfs if h is not None else None,
                peak=h.peak if h is not None else None,
            )
            silent = h is None or now - h.last_block > QUIET_AFTER
            if heard is not None and heard_for > QUIET_AFTER and silent:
                row.problems.add("quiet")
            if row.peak is not None and row.peak >= CLIP:
                row.problems.add("clip")
            rows.append(row)
        return rows
