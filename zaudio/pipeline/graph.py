"""Checks on the graph a pipeline file draws: who publishes what, who reads it.

A recorder publishes its ``stream`` (default: its table name); a processor
publishes audio under ``output`` when it sets one (without it, the runtime
falls back to its name only if that name is free, so only explicit outputs are
edges here). A processor reads every stream its ``topics`` match (default
``*``: all), matched with the same subscription rule the bus uses.

Two mistakes are found: two nodes publishing one stream name, and a chain of
processors that feeds itself (``a -> b -> a``, or ``a`` reading its own output).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zaudio.errors import ProtocolError

if TYPE_CHECKING:
    from zaudio.pipeline.config import _Checker

__all__ = ["check_graph", "reads"]


def reads(topics: list[str], stream: str) -> bool:
    """True if a processor subscribed to ``topics`` receives audio ``stream``."""
    from zaudio.protocol import audio_topic, subscription

    try:
        topic = audio_topic(stream)
        return any(topic.startswith(subscription(t)) for t in topics)
    except ProtocolError:
        return False  # reported where the name is checked


def _tables(data: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    section = data.get(kind)
    if not isinstance(section, dict):
        return {}
    return {k: v for k, v in section.items() if isinstance(v, dict)}


def check_graph(c: _Checker, data: dict[str, Any]) -> None:
    """Add a problem for each stream published twice and each processor cycle."""
    publishers: dict[str, tuple[str, str]] = {}  # stream -> (what, key) of its first publisher

    def publish(stream: Any, kind: str, name: str, key: str) -> None:
        if not isinstance(stream, str):
            return
        where = (kind, name, key)
        first = publishers.get(stream)
        if first is None:
            publishers[stream] = (f"{kind} '{name}' (line {c.lines.of(*where)})", key)
            return
        c.bad(
            where,
            f"stream '{stream}' is published twice: by {first[0]} and by {kind} '{name}'",
            f"give one of them another {key}",
        )

    for name, table in _tables(data, "recorder").items():
        publish(table.get("stream", name), "recorder", name, "stream")
    processors = _tables(data, "processor")
    outputs: dict[str, str] = {}
    topics: dict[str, list[str]] = {}
    for name, table in processors.items():
        if "output" in table:
            publish(table["output"], "processor", name, "output")
            if isinstance(table["output"], str):
                outputs[name] = table["output"]
        raw = table.get("topics", ["*"])
        topics[name] = (
            [raw]
            if isinstance(raw, str)
            else [t for t in raw if isinstance(t, str)]
            if isinstance(raw, list)
            else []
        )

    feeds = {
        a: [b for b in processors if b in topics and reads(topics[b], out)]
        for a, out in outputs.items()
    }
    reported: set[frozenset[str]] = set()
    for start in feeds:
        cycle = _cycle(start, feeds)
        if cycle is None or frozenset(cycle) in reported:
            continue
        reported.add(frozenset(cycle))
        chain = " -> ".join([*cycle, cycle[0]])
        last = cycle[-1]
        c.bad(
            ("processor", cycle[0], "output"),
            f"processor chain feeds itself: {chain} ('{cycle[0]}' reads '{outputs[last]}')",
            f"give '{cycle[0]}' topics that exclude '{outputs[last]}'"
            if len(cycle) == 1
            else f"change the topics of '{cycle[0]}' or the output of '{last}'",
        )


def _cycle(start: str, feeds: dict[str, list[str]]) -> list[str] | None:
    """A path start -> ... -> start through ``feeds``, or None (iterative DFS)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in feeds.get(node, []):
            if nxt == start:
                return path
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None
