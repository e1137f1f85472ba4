"""Processor groups on the proxy: who shares a group's work, and since when (pure state).

Processors that register with the same ``group`` share the blocks (or windows)
of their topics: each block goes to exactly one live member. The proxy decides
nothing per block; it keeps each group's membership as a list of **epochs**
(docs/protocol.md, "Processor groups")::

    Epoch(number, start, members, left)

An epoch holds from ``start`` (proxy time) until the next one's start. A block
stamped ``t`` belongs to the latest epoch whose ``start <= t``, and within it to
``members[key % len(members)]`` (members sorted by id; ``key`` is the block's
``seq``, or a window's number). Every member computes the same answer for every
block, since it holds the same epochs.

Membership changes only here: a member joins with its registration, leaves with
``disconnect``, the registry's expiry, or :data:`TIMEOUT` heartbeat intervals of
silence (members heartbeat every :data:`BEAT` of the interval). Each change opens
a new epoch starting :data:`LEAD` intervals later (never before the previous
one): by then every live member has heard of it, in a heartbeat reply
(:class:`~zaudio.control.Share`). A killed member's share is so taken over
within ``TIMEOUT + LEAD`` = 1.75 intervals of its last heartbeat (plus the
proxy's expiry sweep, every 0.1 s): within 2 intervals.

Each heartbeat reply also says ``since``: the first epoch of the member's
current, unbroken membership. A member that was declared dead (a SIGSTOP) and
comes back is a new member from a new epoch on; blocks of older epochs are
never its own again, so its late output is dropped (zaudio.share).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field

import msgspec

from zaudio.control import (
    MAX_ITEMS,
    Epoch,
    GroupInfo,
    GroupSpec,
    Heartbeat,
    HeartbeatReply,
    OkReply,
    Register,
    RegisterReply,
    Share,
)
from zaudio.errors import RequestError

__all__ = ["BEAT", "KEEP", "LEAD", "PROGRESS", "TIMEOUT", "Groups"]

#: Heartbeat intervals of silence after which a member is out of its group (2 beats).
TIMEOUT = 1.0
#: Heartbeat intervals between a membership change and the epoch it opens.
LEAD = 0.75
#: A member heartbeats every BEAT heartbeat intervals (so TIMEOUT is 2 beats).
BEAT = 0.5
#: Epochs a heartbeat reply carries at most (the newest ones).
KEEP = 16
#: Seconds an epoch is still sent after the next one started.
HISTORY = 30.0
#: The stats key in which a member reports the last ``seq`` it processed, per stream.
PROGRESS = "share_last"


@dataclass
class _Member:
    id: str
    last_seen: float
    since: int
    last: dict[str, int] = field(default_factory=dict)


@dataclass
class _Group:
    spec: GroupSpec
    topics: list[str]
    members: dict[str, _Member] = field(default_factory=dict)
    epochs: list[Epoch] = field(default_factory=list)


class Groups:
    """Every processor group the proxy knows: members, epochs, and the shares it replies with.

    Parameters
    ----------
    heartbeat : float
        The registry's heartbeat interval, in seconds.
    """

    def __init__(self, heartbeat: float = 1.0) -> None:
        self.heartbeat = heartbeat
        self.groups: dict[str, _Group] = {}
        self._of: dict[str, tuple[str, Register]] = {}  # node id -> (group, registration)
        self._epoch = 0  # numbers are unique across groups for the proxy's lifetime

    # -- requests ------------------------------------------------------------

    def check(self, req: Register) -> None:
        """Refuse a registration that disagrees with its group's live members.

        Raises
        ------
        RequestError
            ``code: "group_mismatch"``, naming the first difference.
        """
        spec = req.group
        if spec is None:
            return
        group = self.groups.get(spec.name)
        if group is None or not group.members:
            return
        problem = _difference(req, group)
        if problem:
            raise RequestError(problem, "group_mismatch")
        if len(group.members) >= MAX_ITEMS:
            raise RequestError(
                f"group {spec.name!r} already has {MAX_ITEMS} members; stop some first", "full"
            )

    def registered(self, req: Register, reply: RegisterReply, now: float) -> RegisterReply:
        """After the registry took ``req``: join its group; members beat faster (:data:`BEAT`)."""
        if req.group is None:
            return reply
        self._of[reply.id] = (req.group.name, req)
        self._join(reply.id, now)
        return msgspec.structs.replace(reply, heartbeat=self.heartbeat * BEAT)

    def beat(self, req: Heartbeat, reply: OkReply, now: float) -> OkReply:
        """After the registry took a heartbeat: the member's share (it rejoins if it was out)."""
        known = self._of.get(req.id)
        if known is None:
            return reply
        group = self.groups.get(known[0])
        member = group.members.get(req.id) if group is not None else None
        if member is None:  # declared dead, yet alive: a new member from a new epoch on
            if group is not None and group.members:
                problem = _difference(known[1], group)  # the group started afresh since
                if problem:
                    raise RequestError(problem, "group_mismatch")
            self._join(req.id, now)
            group = self.groups[known[0]]
            member = group.members[req.id]
        assert group is not None
        member.last_seen = now
        progress = (req.stats or {}).get(PROGRESS)
        if isinstance(progress, dict):
            member.last = {k: v for k, v in progress.items() if isinstance(v, int)}
        share = Share(group=known[0], member=member.id, since=member.since, epochs=group.epochs)
        return HeartbeatReply(share=share)

    def leave(self, node_id: str, now: float) -> None:
        """The node disconnected or the registry dropped it."""
        known = self._of.pop(node_id, None)
        if known is not None:
            self._drop(known[0], [node_id], now)

    def expire(self, now: float, live: Container[str]) -> None:
        """Drop members silent for :data:`TIMEOUT` intervals, and nodes the registry forgot."""
        for node_id in [i for i in self._of if i not in live]:
            self.leave(node_id, now)
        limit = now - TIMEOUT * self.heartbeat
        for name, group in list(self.groups.items()):
            gone = [m.id for m in group.members.values() if m.last_seen < limit]
            if gone:
                self._drop(name, gone, now)

    def infos(self) -> list[GroupInfo]:
        """Every group with live members, for the ``list`` reply."""
        return [
            GroupInfo(
                name=name,
                epoch=g.epochs[-1].number if g.epochs else 0,
                start=g.epochs[-1].start if g.epochs else 0.0,
                members=sorted(g.members),
                spec=g.spec,
                topics=g.topics,
            )
            for name, g in sorted(self.groups.items())
            if g.members
        ]

    # -- membership --------------------------------------------------------------

    def _join(self, node_id: str, now: float) -> None:
        name, req = self._of[node_id]
        assert req.group is not None
        group = self.groups.get(name)
        if group is None or not group.members:
            group = self.groups[name] = _Group(req.group, list(req.topics))
        member = group.members[node_id] = _Member(node_id, now, 0)
        member.since = self._open(group, now, {}).number

    def _drop(self, name: str, ids: list[str], now: float) -> None:
        group = self.groups.get(name)
        if group is None:
            return
        left = {i: group.members.pop(i).last for i in ids if i in group.members}
        if not left:
            return
        if not group.members:
            del self.groups[name]  # the next member starts the group afresh
            return
        self._open(group, now, left)

    def _open(self, group: _Group, now: float, left: dict[str, dict[str, int]]) -> Epoch:
        """A new epoch with the current members, starting LEAD intervals from now."""
        self._epoch += 1
        start = now + LEAD * self.heartbeat
        if group.epochs:
            last = group.epochs[-1]
            if last.start >= start:  # the previous one never takes effect
                start = last.start
                left = {**last.left, **left}
        epoch = Epoch(self._epoch, start, sorted(group.members), left)
        group.epochs.append(epoch)
        # keep what a late block may still need: epochs whose successor started recently
        epochs = group.epochs
        while len(epochs) > KEEP or (len(epochs) > 1 and epochs[1].start < now - HISTORY):
            epochs.pop(0)
        return epoch


def _difference(req: Register, group: _Group) -> str | None:
    """The first way ``req`` disagrees with ``group`` (a sentence), or None."""
    spec, theirs = req.group, group.spec
    assert spec is not None
    for what, mine, other in (
        ("function", spec.function, theirs.function),
        ("params", spec.params, theirs.params),
        ("window", spec.window, theirs.window),
        ("topics", ",".join(req.topics), ",".join(group.topics)),
    ):
        if mine != other:
            return (
                f"group {spec.name!r} runs {what} {other or '(none)'!r}, this member "
                f"{mine or '(none)'!r}: start it with the same {what} or another --group"
            )
    return None
