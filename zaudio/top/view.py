"""``zaudio top``'s screen: a :class:`~zaudio.top.model.Snapshot` as rich tables.

Fits 80 columns: names are cut with an ellipsis, numbers are short (``12.3k``).
Red is a problem now (dropping, lagging more than 1 s, slower than real time,
errors, a quiet or clipping stream), yellow a warning (gaps upstream, blocks
buffered, real-time factor above 0.8).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from zaudio.top.model import ProcessorRow, PublisherRow, Snapshot, StreamRow
from zaudio.units import format_bytes

__all__ = ["render"]

BAD = "bold red"
WARN = "yellow"


def _count(value: int | None) -> str:
    if value is None:
        return "-"
    if abs(value) < 100_000:
        return str(value)
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return (
                f"{value / scale:.1f}{unit}"
                if abs(value) < 100 * scale
                else f"{value / scale:.0f}{unit}"
            )
    return str(value)  # pragma: no cover


def _rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f}" if value < 1000 else f"{value / 1000:.1f}k"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) < 1:
        return f"{value * 1000:.0f}ms"
    return f"{value:.1f}s" if abs(value) < 100 else f"{value:.0f}s"


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _cell(text: str, bad: bool = False, warn: bool = False) -> Text:
    return Text(text, style=BAD if bad else (WARN if warn else ""))


def _table(title: str, *columns: tuple[str, dict[str, Any]]) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        expand=False,
    )
    for name, options in columns:
        table.add_column(name, no_wrap=True, **options)
    return table


NAME: dict[str, Any] = {"max_width": 18, "overflow": "ellipsis"}
NUM: dict[str, Any] = {"justify": "right"}


def _streams(rows: list[StreamRow]) -> Table:
    t = _table(
        f"STREAMS ({len(rows)})",
        ("STREAM", NAME),
        ("RATE", NUM),
        ("CH", NUM),
        ("BLK/S", NUM),
        ("LEVEL", NUM),
        ("PUBLISHER", {"max_width": 16, "overflow": "ellipsis"}),
    )
    for r in rows:
        quiet = "quiet" in r.problems
        if r.rms_dbfs is None:
            level = _cell("quiet" if quiet else "-", bad=quiet)
        elif "clip" in r.problems:
            level = _cell("clip", bad=True)
        else:
            level = _cell(f"{max(r.rms_dbfs, -99):.1f}dB")
        t.add_row(
            _cell(r.name, bad=bool(r.problems)),
            _count(r.rate),
            _count(r.channels),
            _cell(_rate(r.blocks_per_s), bad=quiet),
            level,
            r.publisher,
        )
    return t


def _processors(rows: list[ProcessorRow]) -> Table:
    t = _table(
        f"PROCESSORS ({len(rows)})",
        ("NAME", NAME),
        ("INPUT", {"max_width": 12, "overflow": "ellipsis"}),
        ("BLK/S", NUM),
        ("LAG", NUM),
        ("RTF", NUM),
        ("DROPS", NUM),
        ("GAPS", NUM),
        ("ERRORS", NUM),
    )
    for r in rows:
        p = r.problems
        rtf = "-" if r.rtf is None else f"{r.rtf:.2f}"
        t.add_row(
            _cell(r.name, bad=bool(p - {"gaps"}), warn="gaps" in p),
            r.topics,
            _rate(r.blocks_per_s),
            _cell(_seconds(r.lag), bad="lag" in p),
            _cell(rtf, bad="rtf" in p, warn=r.rtf is not None and r.rtf > 0.8),
            _cell(_count(r.dropped), bad="dropped" in p),
            _cell(_count(r.gaps), warn="gaps" in p),
            _cell(_count(r.errors), bad="errors" in p),
        )
    return t


def _publishers(rows: list[PublisherRow]) -> Table:
    t = _table(
        f"PUBLISHERS ({len(rows)})",
        ("NAME", NAME),
        ("ROLE", {"max_width": 10, "overflow": "ellipsis"}),
        ("STREAM", NAME),
        ("SENT", NUM),
        ("BLK/S", NUM),
        ("DROPPED", NUM),
        ("BUFFERED", NUM),
    )
    for r in rows:
        p = r.problems
        t.add_row(
            _cell(r.name, bad="dropped" in p, warn="buffered" in p),
            r.role,
            r.stream,
            _count(r.sent),
            _rate(r.blocks_per_s),
            _cell(_count(r.dropped), bad="dropped" in p),
            _cell(_count(r.buffered), warn="buffered" in p),
        )
    return t


def _header(snap: Snapshot, clock: str) -> list[Text]:
    """Two lines, each cut (not wrapped) at the screen's width."""
    first = Text("zaudio top", style="bold", no_wrap=True, overflow="ellipsis")
    p = snap.proxy
    if snap.error is not None or p is None:
        first.append(f"  {clock}  ")
        first.append(snap.error or "no reply from the proxy", style=BAD)
        return [first]
    first.append(f"  {clock}  {p.control}  v{p.version}  up {_uptime(p.uptime)}")
    first.append(f"  {_count(p.requests)} requests")
    unit = "msg" if p.unit == "messages" else "frames"
    rate_in = "-" if p.in_bytes_per_s is None else format_bytes(p.in_bytes_per_s) + "/s"
    rate_out = "-" if p.out_bytes_per_s is None else format_bytes(p.out_bytes_per_s) + "/s"
    second = Text(
        f"forwarded in {_rate(p.in_per_s)} {unit}/s ({rate_in}),"
        f" out {_rate(p.out_per_s)} {unit}/s ({rate_out})",
        no_wrap=True,
        overflow="ellipsis",
    )
    return [first, second]


def render(snap: Snapshot, clock: str = "", *, keys: bool = True) -> RenderableType:
    """The whole screen for one refresh."""
    parts: list[RenderableType] = [*_header(snap, clock), Text("")]
    if snap.proxy is not None:
        for table in (_streams(snap.streams), _processors(snap.processors)):
            parts += [table, Text("")]
        parts.append(_publishers(snap.publishers))
    if keys:
        parts.append(Text("q quits (or Ctrl-C)", style="dim"))
    return Group(*parts)
