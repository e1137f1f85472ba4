"""The compact live view of ``zaudio up``: one line per node.

Each line joins what the supervisor knows (state, pid, restarts, last exit)
with what the proxy's registry says about that pid (registered, counters)::

    NODE   KIND       STATE    PID    UP   RESTARTS  SENT  RECEIVED  DROPPED  GAPS  ERRORS
    proxy  proxy      running  4100   12s  0         -     -         -        -     -
    tone   recorder   running  4102   12s  0         1180  -         0        -     -
    level  processor  running  4107   3s   1         -     355       0        0     0

On a terminal the view is redrawn in place once a second (below any line a
node printed since); elsewhere (a log, systemd) it is printed when a node's
state or restart count changes, and every ``interval`` seconds.
"""

from __future__ import annotations

import time
from typing import Any

from zaudio.pipeline.supervisor import Child, Output, exit_text

__all__ = ["StatusView", "render"]

COLUMNS = ("sent", "received", "dropped", "gaps", "errors")


def _registered(listing: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    if not listing:
        return {}
    return {n["pid"]: n for n in listing.get("nodes", []) if isinstance(n.get("pid"), int)}


def render(
    children: list[Child], listing: dict[str, Any] | None, now: float | None = None
) -> list[str]:
    """The view's lines for ``children`` and a ``list`` reply (None: proxy silent)."""
    now = time.monotonic() if now is None else now
    by_pid = _registered(listing)
    rows = [["NODE", "KIND", "STATE", "PID", "UP", "RESTARTS", *(c.upper() for c in COLUMNS)]]
    for child in children:
        pid = child.pid
        entry = by_pid.get(pid) if pid is not None else None
        state = child.state
        if state == "running" and child.node.kind != "proxy" and entry is None:
            state = "starting"  # not registered (yet)
        elif state == "running" and child.node.kind == "proxy" and listing is None:
            state = "silent"
        elif state in ("exited", "backoff", "stopped") and child.code is not None:
            state = f"{state} ({exit_text(child.code)})"
        stats = (entry or {}).get("stats") or {}
        up = f"{now - child.started:.0f}s" if pid is not None else "-"
        rows.append(
            [
                child.node.name,
                child.node.kind,
                state,
                str(pid or "-"),
                up,
                str(child.restarts),
                *(str(stats[c]) if c in stats else "-" for c in COLUMNS),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


class StatusView:
    """Shows :func:`render` on ``output.out``: redrawn on a terminal, else on change."""

    def __init__(self, output: Output, interval: float | None = None) -> None:
        self.output = output
        self.tty = output.out.isatty()
        self.interval = interval if interval is not None else (1.0 if self.tty else 30.0)
        self._last = float("-inf")
        self._drawn = 0  # lines of the block on screen (terminal only)
        self._seen_lines = -1
        self._signature: tuple[Any, ...] = ()
        self.closed = False

    def update(self, children: list[Child], fetch: Any) -> None:
        """Draw if due; ``fetch()`` returns the proxy's ``list`` reply or None."""
        if self.closed:
            return
        now = time.monotonic()
        signature = tuple((c.state, c.restarts, c.pid) for c in children)
        changed = signature != self._signature
        if not changed and now - self._last < self.interval:
            return
        self._signature, self._last = signature, now
        lines = render(children, fetch(), now)
        with self.output.lock:
            out = self.output.out
            try:
                if self.tty and self._drawn and self._seen_lines == self.output.lines_written:
                    out.write(f"\x1b[{self._drawn}F\x1b[J")  # back over the last block, clear
                out.write("\n".join(lines) + "\n")
                out.flush()
            except (OSError, ValueError):
                self.closed = True  # nowhere to show it (a closed pipe)
                return
            self._drawn = len(lines)
            self._seen_lines = self.output.lines_written
