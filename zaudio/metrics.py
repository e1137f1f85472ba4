"""Prometheus metrics of a running proxy: ``zaudio proxy --metrics HOST:PORT``.

A custom collector reads the proxy's registry at scrape time, so every series
is what the nodes' last heartbeats said, and a node that leaves (disconnects or
misses its heartbeats) is gone from the next scrape. The proxy adds its own
counters: control requests and the forwarder's messages and bytes each way
(libzmq's steerable-proxy statistics, :mod:`zaudio.forwarder`).

Needs the ``metrics`` extra (``pip install 'zaudio[metrics]'``, for
``prometheus_client``); it is imported only here, when metrics are served.
The metric names and labels are listed in docs/operations.md.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zaudio._version import __version__
from zaudio.errors import ConfigError, ZaudioError
from zaudio.extras import require
from zaudio.metricspecs import KINDS, PER_STREAM, ROLES, STREAM_BREAKDOWN
from zaudio.registry import MISSES, Node

if TYPE_CHECKING:
    from zaudio.proxy import Proxy

__all__ = ["MetricsServer", "collect", "families", "metrics_address"]


def kind(node: Node) -> str | None:
    """Which family a node's counters belong to: its role, or what its stats look like."""
    if node.role == "processor":
        return "processor"
    if "sent" in node.stats:
        return "publisher"
    if "received" in node.stats:
        return "subscriber"
    return None


def _labels(node: Node, k: str) -> dict[str, str]:
    labels = {"name": node.name, "node": node.id, "role": node.role, "host": node.host}
    if k == "publisher":
        labels["stream"] = ",".join(s.name for s in node.streams) or node.name
    else:
        labels["topics"] = ",".join(node.topics)
    return labels


def _number(value: Any, counter: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or (counter and number < 0):
        return None
    return number


def live_nodes(proxy: Proxy, now: float) -> list[Node]:
    """The registry's nodes that are still live at ``now`` (a copy: safe off the control thread)."""
    limit = now - MISSES * proxy.registry.heartbeat
    return [n for n in list(proxy.registry.nodes.values()) if n.last_seen >= limit]


@dataclass
class _Family:
    name: str
    kind: str  # counter, gauge
    help: str
    samples: list[tuple[dict[str, str], float]]


def families(proxy: Proxy, now: float | None = None) -> Iterator[_Family]:
    """Every family this proxy exports now, as plain data (no prometheus_client)."""
    now = time.time() if now is None else now
    nodes = live_nodes(proxy, now)
    roles = dict.fromkeys(ROLES, 0)
    for n in nodes:
        roles[n.role] = roles.get(n.role, 0) + 1
    yield _Family(
        "zaudio_nodes",
        "gauge",
        "Live nodes registered with the proxy, by role.",
        [({"role": r}, float(c)) for r, c in sorted(roles.items())],
    )
    yield _Family(
        "zaudio_node_start_time_seconds",
        "gauge",
        "When the node registered, seconds since the Unix epoch.",
        [({"name": n.name, "node": n.id, "role": n.role, "host": n.host}, n.since) for n in nodes],
    )
    streams = [(s, n) for n in nodes for s in n.streams]
    for metric, field, text in (
        ("zaudio_stream_rate_hertz", "rate", "Sample rate of a live stream."),
        ("zaudio_stream_channels", "channels", "Channel count of a live stream."),
    ):
        yield _Family(
            metric,
            "gauge",
            text,
            [
                ({"stream": s.name, "name": n.name, "node": n.id}, float(getattr(s, field)))
                for s, n in streams
            ],
        )
    for k, specs in KINDS.items():
        mine = [n for n in nodes if kind(n) == k]
        for key, (suffix, mtype, text) in specs.items():
            samples = []
            for n in mine:
                found = next((k for k in key.split("|") if k in n.stats), None)
                value = _number(n.stats.get(found or ""), mtype == "counter")
                if value is not None:
                    samples.append((_labels(n, k), value))
            yield _Family(f"zaudio_{k}_{suffix}", mtype, text, samples)
    processors = [n for n in nodes if kind(n) == "processor"]
    for key, (suffix, mtype, text) in PER_STREAM.items():
        per = []
        for n in processors:
            counts = n.stats.get(key)
            for stream, count in counts.items() if isinstance(counts, dict) else ():
                value = _number(count, True)
                if value is not None:
                    per.append(({**_labels(n, "processor"), "stream": str(stream)}, value))
        yield _Family(f"zaudio_processor_{suffix}", mtype, text, per)
    yield from _breakdown_families(processors)
    yield from _proxy_families(proxy)


def _breakdown_families(processors: list[Node]) -> Iterator[_Family]:
    """The processors' per-stream breakdown (``stats["streams"]``), one series per stream."""
    for key, (suffix, mtype, text) in STREAM_BREAKDOWN.items():
        samples = []
        for n in processors:
            streams = n.stats.get("streams")
            for stream, counts in streams.items() if isinstance(streams, dict) else ():
                value = _number(counts.get(key), True) if isinstance(counts, dict) else None
                if value is not None:
                    samples.append(({**_labels(n, "processor"), "stream": str(stream)}, value))
        yield _Family(f"zaudio_processor_stream_{suffix}", mtype, text, samples)


def _proxy_families(proxy: Proxy) -> Iterator[_Family]:
    yield _Family(
        "zaudio_proxy_requests", "counter", "Control requests served.", [({}, proxy.requests)]
    )
    yield _Family(
        "zaudio_proxy_refused_requests",
        "counter",
        "Control requests answered with an error.",
        [({}, proxy.bad_requests)],
    )
    yield _Family(
        "zaudio_proxy_start_time_seconds",
        "gauge",
        "When the proxy started, seconds since the Unix epoch.",
        [({}, proxy.started)],
    )
    if proxy.history is not None:
        yield from _history_families(proxy.history.stats())
    if proxy.federation is not None:
        yield from _upstream_families(proxy.federation.info())
    counters = proxy.forwarder.counters(0.5) if proxy.forwarder is not None else None
    if counters is None:
        return
    c = counters.as_dict()
    sides = [
        ({"socket": "publish_in", "direction": "received"}, "publish_in_received"),
        ({"socket": "publish_in", "direction": "sent"}, "publish_in_sent"),
        ({"socket": "subscribe_out", "direction": "received"}, "subscribe_out_received"),
        ({"socket": "subscribe_out", "direction": "sent"}, "subscribe_out_sent"),
    ]
    unit = counters.unit  # "messages" or "frames": what this libzmq counts
    yield _Family(
        f"zaudio_proxy_{unit}",
        "counter",
        f"{unit.capitalize()} the forwarder moved, per socket and direction "
        "(publish_in received = audio from publishers, subscribe_out sent = audio to subscribers).",
        [(labels, float(c[key])) for labels, key in sides],
    )
    yield _Family(
        "zaudio_proxy_bytes",
        "counter",
        "Bytes the forwarder moved, per socket and direction.",
        [(labels, float(c[key + "_bytes"])) for labels, key in sides],
    )


def _upstream_families(u: dict[str, Any]) -> Iterator[_Family]:
    """The link to a hub (``--upstream``, zaudio.federation)."""
    yield _Family("zaudio_upstream_up", "gauge", "1 while the link to the hub is up.",
                  [({}, float(bool(u["up"])))])  # fmt: skip
    for key, text in (
        ("losses", "Times the link to the hub went down."),
        ("reconnects", "Times the link to the hub came back."),
        ("timeouts", "Control rounds the hub did not answer in time."),
        ("conflicts", "Site nodes the hub refused (a stream name taken elsewhere): evicted."),
    ):
        yield _Family(f"zaudio_upstream_{key}", "counter", text, [({}, float(u[key]))])
    ways = ("received", "sent", "echoed", "dropped")
    yield _Family(
        "zaudio_upstream_messages",
        "counter",
        "Messages over the link: received from the hub, sent to it, echoed (our own "
        "stream back from the hub, dropped), dropped (a full queue).",
        [({"direction": w}, float(u[w])) for w in ways],
    )
    yield _Family(
        "zaudio_upstream_bytes",
        "counter",
        "Bytes of the messages received from and sent to the hub.",
        [({"direction": w}, float(u[w + "_bytes"])) for w in ("received", "sent")],
    )
    yield _Family("zaudio_upstream_clock_offset_seconds", "gauge",
                  "The hub's clock minus this proxy's.", [({}, float(u["offset"]))])  # fmt: skip


def _history_families(h: dict[str, Any]) -> Iterator[_Family]:
    """What ``--history`` keeps and evicted, per stream (zaudio.history)."""
    streams = h["streams"]
    for key, mtype, text in (
        ("messages", "gauge", "Messages the history keeps now, per stream."),
        ("bytes", "gauge", "Bytes the history keeps now, per stream."),
        ("evicted", "counter", "Messages the byte bound evicted before they were D old."),
        ("evicted_bytes", "counter", "Bytes the byte bound evicted before they were D old."),
        ("missed", "counter", "Messages the history never received (a jump of seq)."),
    ):
        name = "zaudio_proxy_history_" + ("kept_" + key if mtype == "gauge" else key)
        yield _Family(
            name, mtype, text, [({"stream": s}, float(v[key])) for s, v in streams.items()]
        )


def collect(proxy: Proxy) -> list[Any]:
    """The proxy's metrics as prometheus_client families (what a scrape returns)."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        InfoMetricFamily,
    )

    out: list[Any] = [
        InfoMetricFamily("zaudio_proxy", "The proxy's version.", value={"version": __version__})
    ]
    for fam in families(proxy):
        names = sorted({k for labels, _ in fam.samples for k in labels})
        cls = CounterMetricFamily if fam.kind == "counter" else GaugeMetricFamily
        # counters are named without _total here; prometheus_client adds it
        metric = cls(fam.name, fam.help, labels=names)
        for labels, value in fam.samples:
            metric.add_metric([labels.get(k, "") for k in names], value)
        out.append(metric)
    return out


class _Collector:
    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy

    def describe(self) -> list[Any]:
        return []  # the families depend on who is live: collected at scrape time only

    def collect(self) -> list[Any]:
        return collect(self.proxy)


def _require() -> Any:
    return require("prometheus_client", "zaudio proxy --metrics")


def metrics_address(text: str, what: str = "--metrics") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT``; a bare ``PORT`` is loopback) -> (host, port).

    Also checks that the ``metrics`` extra is installed, so both mistakes are
    reported before anything is started.
    """
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text.strip()
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"invalid {what} {text!r}: use HOST:PORT, e.g. 127.0.0.1:9105")
    _require()
    return host, int(port)


class MetricsServer:
    """An HTTP server answering ``GET /metrics`` for one proxy, in its own threads."""

    def __init__(self, proxy: Proxy, host: str = "127.0.0.1", port: int = 9105) -> None:
        client = _require()
        registry = client.CollectorRegistry()
        client.ProcessCollector(registry=registry)
        registry.register(_Collector(proxy))
        self._thread: threading.Thread | None
        try:
            self._server, self._thread = client.start_http_server(
                port, addr=host, registry=registry
            )
        except OSError as exc:
            raise ZaudioError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc} "
                "(pick another --metrics HOST:PORT)"
            ) from exc
        bound = self._server.server_address
        self.host, self.port = str(bound[0]), int(bound[1])
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{shown}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and close the socket. Safe to call twice."""
        if self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(2)
        self._thread = None

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
