"""How an entry of the proxy's ``list`` reads to a person, for ``zaudio ls`` and the monitor page.

Sans-I/O: dicts in, strings out. A recorder is what it publishes (its streams); a
processor is what it reads (its topics), then ``->`` and the streams it has
published, if any: the output name it only reserved is not shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["group_rows", "node_summary", "sequencer_rows", "topic_label"]


def topic_label(topic: str) -> str:
    """``audio/mic\\0`` -> ``mic``; ``audio/lab-a/`` -> ``lab-a/*``; ``audio/`` -> ``*``."""
    kind, _, rest = topic.partition("/")
    exact = rest.endswith("\x00")
    rest = rest.rstrip("\x00")
    name = rest if exact else rest + "*"
    return name if kind == "audio" else f"{kind}/{name}"


def node_summary(node: Mapping[str, Any]) -> str:
    """What a node publishes (streams) or reads (topics -> published streams); ``-`` if none."""
    published = [str(s.get("name", "?")) for s in node.get("streams") or []]
    topics = [topic_label(str(t)) for t in node.get("topics") or []]
    if topics:
        return ",".join(topics) + (" -> " + ",".join(published) if published else "")
    return ",".join(published) or "-"


def group_rows(listing: Mapping[str, Any]) -> list[list[str]]:
    """One row per member of each processor group (zaudio.groups), header first; [] if none.

    SHARE is the member's slot in the current epoch (``2/3``: every third block,
    the second); LOST is ``lost_in_handover`` (counted by the heir of a member that
    went), LATE the blocks it dropped because its lease or membership lapsed,
    UNSHARED those stamped before the group's first epoch (after a proxy restart).
    """
    groups = listing.get("groups") or []
    if not groups:
        return []
    nodes = {n.get("id"): n for n in listing.get("nodes") or []}
    rows = [["GROUP", "EPOCH", "MEMBER", "PID", "SHARE", "PROCESSED", "LOST", "LATE", "UNSHARED"]]
    for g in groups:
        members = list(g.get("members") or [])
        for slot, member in enumerate(members):
            node = nodes.get(member, {})
            stats = node.get("stats") or {}
            rows.append(
                [
                    str(g.get("name")),
                    str(g.get("epoch")),
                    f"{node.get('name', '?')} ({member})",
                    str(node.get("pid", "?")),
                    f"{slot + 1}/{len(members)}",
                    str(stats.get("processed", "-")),
                    str(stats.get("lost_in_handover", "-")),
                    str(stats.get("late", "-")),
                    str(stats.get("unshared", "-")),
                ]
            )
    return rows


def sequencer_rows(listing: Mapping[str, Any]) -> list[list[str]]:
    """One row per sequencer (zaudio.sequencer), header first; [] if none.

    PARTS is how many members' parts it has read, RELEASED the blocks it
    published in order, HELD those waiting for a missing one, SKIPPED the blocks
    it gave up waiting for (the stream's ``seq`` jumps over them), LATE those that
    came after their place went by, DUPLICATES those that came twice.
    """
    nodes = [n for n in listing.get("nodes") or [] if n.get("role") == "sequencer"]
    if not nodes:
        return []
    columns = ["parts", "received", "released", "held", "skipped", "late", "duplicates"]
    rows = [["SEQUENCER", *(c.upper() for c in columns)]]
    for n in sorted(nodes, key=lambda n: str(n.get("name"))):
        stats = n.get("stats") or {}
        rows.append([str(n.get("name")), *(str(stats.get(c, "-")) for c in columns)])
    return rows
