"""``zaudio ls``: live nodes and streams, from the control channel."""

from __future__ import annotations

import json
import time
from typing import Any

import click
from zaudio.cli.options import client_keys, keys_option, proxy_option

from zaudio.listing import group_rows, node_summary, sequencer_rows

# Counters shown as columns, in this order, when any node has them.
COUNTERS = ("sent", "received", "processed", "dropped", "gaps", "errors", "lag")
# Counters shown as columns, after those, when any node's is not zero: what format
# adaptation (zaudio.adapt) dropped (blocks it could not convert) or changed (samples
# clipped to int16), which --json alone showed before.
IF_NONZERO = ("unconvertible", "clipped")
# A column's counter by another name: a processor counts what it sent as "published".
ALIASES = {"sent": "published"}


def _counter(stats: dict[str, Any], column: str) -> Any:
    if column in stats:
        return stats[column]
    alias = ALIASES.get(column)
    return stats.get(alias) if alias is not None else None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _forwarded(counters: Any) -> str:
    """The forwarder's own counters: what came in from publishers and went out to subscribers."""
    if not isinstance(counters, dict):
        return ""
    from zaudio.units import format_bytes

    unit = counters.get("unit", "messages")
    values = [
        counters.get(k)
        for k in (
            "publish_in_received",
            "publish_in_received_bytes",
            "subscribe_out_sent",
            "subscribe_out_sent_bytes",
        )
    ]
    if not all(isinstance(v, int) for v in values):
        return ""
    n_in, b_in, n_out, b_out = (int(v) for v in values)  # type: ignore[arg-type]
    return (
        f"; forwarded {n_in} {unit} ({format_bytes(b_in)}) in, {n_out} ({format_bytes(b_out)}) out"
    )


def _limited(proxy: dict[str, Any]) -> str:
    refused = proxy.get("refused")
    n = refused.get("rate_limited") if isinstance(refused, dict) else None
    return f", {n} rate-limited" if isinstance(n, int) else ""


def _publishers(proxy: dict[str, Any]) -> str:
    """Publish-in connections: open now, cut off (a frame over the cap), refused (handshake)."""
    pubs = proxy.get("publishers")
    if not isinstance(pubs, dict) or not isinstance(pubs.get("cut_off"), int):
        return ""
    return (
        f"; publishers {pubs.get('connected', '?')} connected, {pubs['cut_off']} cut off, "
        f"{pubs.get('refused', 0)} refused"
    )


def _history(proxy: dict[str, Any]) -> list[str]:
    """What ``--history`` keeps, and what the byte bound evicted early (zaudio.history)."""
    h = proxy.get("history")
    if not isinstance(h, dict):
        return []
    from zaudio.units import format_bytes

    line = (
        f"history {h.get('seconds', 0):g} s: {h.get('messages', 0)} messages kept, "
        f"{format_bytes(h.get('bytes', 0))} of {format_bytes(h.get('max_bytes', 0))}, "
        f"oldest {h.get('oldest', 0):.1f} s; evicted {h.get('evicted', 0)} "
        f"({format_bytes(h.get('evicted_bytes', 0))}) by the byte bound; missed {h.get('missed', 0)}"
    )
    out = [line]
    streams = h.get("streams")
    for name, st in sorted(streams.items()) if isinstance(streams, dict) else []:
        if isinstance(st, dict):
            out.append(
                f"  {name}: {st.get('messages', 0)} kept ({format_bytes(st.get('bytes', 0))}), "
                f"{st.get('evicted', 0)} evicted, {st.get('missed', 0)} missed"
            )
    return out


def _upstream(proxy: dict[str, Any]) -> list[str]:
    """The link to a hub (``--upstream``, zaudio.federation): state, losses, traffic."""
    u = proxy.get("upstream")
    if not isinstance(u, dict):
        return []
    from zaudio.units import format_bytes

    state = "up" if u.get("up") else f"DOWN ({u.get('error') or 'disconnected'})"
    return [
        f"upstream {u.get('endpoint', '?')} (hub {u.get('hub') or '?'!r}): {state}; "
        f"{u.get('losses', 0)} losses, {u.get('reconnects', 0)} reconnects; "
        f"{u.get('mirrored', 0)} nodes mirrored, {u.get('conflicts', 0)} refused; "
        f"in {u.get('received', 0)} ({format_bytes(u.get('received_bytes', 0))}), "
        f"out {u.get('sent', 0)} ({format_bytes(u.get('sent_bytes', 0))}), "
        f"{u.get('echoed', 0)} echoed, {u.get('dropped', 0)} dropped; "
        f"clock offset {u.get('offset', 0):+.6f} s"
    ]


def render(listing: dict[str, Any], now: float | None = None) -> str:
    """The human-readable view of a ``list`` reply."""
    now = time.time() if now is None else now
    nodes = listing.get("nodes", [])
    streams = listing.get("streams", [])
    out = []
    proxy = listing.get("proxy")
    if isinstance(proxy, dict):
        since = proxy.get("since")
        uptime = f", up {now - since:.0f}s" if isinstance(since, int | float) else ""
        out.append(
            f"proxy {proxy.get('control', '?')} (zaudio {proxy.get('version', '?')}, "
            f"pid {proxy.get('pid', '?')}{uptime}; {proxy.get('requests', 0)} requests, "
            f"{proxy.get('bad_requests', 0)} refused{_limited(proxy)}"
            f"{_forwarded(proxy.get('forwarded'))}{_publishers(proxy)})"
        )
        out.extend(_history(proxy))
        out.extend(_upstream(proxy))
        out.append("")
    if not nodes:
        out.append("no nodes registered")
    else:
        counters = [
            c for c in COUNTERS if any(_counter(n.get("stats") or {}, c) is not None for n in nodes)
        ] + [c for c in IF_NONZERO if any((n.get("stats") or {}).get(c) for n in nodes)]
        rows = [
            [
                "ROLE",
                "NAME",
                "ID",
                "HOST",
                "PID",
                "UP",
                "STREAMS/TOPICS",
                *(c.upper() for c in counters),
            ]
        ]
        for n in sorted(nodes, key=lambda n: (str(n.get("role")), str(n.get("name")))):
            stats = n.get("stats") or {}
            what = node_summary(n)
            up = now - n["since"] if isinstance(n.get("since"), int | float) else None
            rows.append(
                [
                    str(n.get("role")),
                    str(n.get("name")),
                    str(n.get("id")),
                    str(n.get("host")),
                    str(n.get("pid")),
                    f"{up:.0f}s" if up is not None else "-",
                    what or "-",
                    *(_cell(_counter(stats, c)) for c in counters),
                ]
            )
        out.append(_table(rows))
    for table in (group_rows(listing), sequencer_rows(listing)):
        if table:
            out.append("")
            out.append(_table(table))
    if streams:
        by_id = {n.get("id"): n for n in nodes}
        rows = [["STREAM", "RATE", "CH", "PUBLISHER", "ORIGIN"]]
        for s in sorted(streams, key=lambda s: str(s.get("name"))):
            owner = by_id.get(s.get("node"), {})
            rows.append(
                [
                    str(s.get("name")),
                    str(s.get("rate")),
                    str(s.get("channels")),
                    f"{owner.get('name', '?')} ({s.get('node')})",
                    str(s.get("origin") or "-") + (f" via {s['via']}" if s.get("via") else ""),
                ]
            )
        out.append("")
        out.append(_table(rows))
    return "\n".join(out)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the proxy's reply as JSON.")
@click.option("--timeout", type=float, default=2.0, show_default=True, help="Seconds to wait.")
@proxy_option
@keys_option
def ls(as_json: bool, timeout: float, proxy: str, keys: str | None) -> None:
    """List live nodes and streams with their counters."""
    from zaudio.client import request
    from zaudio.control import List

    reply = request(proxy, List(), timeout=timeout, keys=client_keys(keys))
    if as_json:
        reply.pop("ok", None)
        click.echo(json.dumps(reply, indent=2, sort_keys=True))
    else:
        click.echo(render(reply))
