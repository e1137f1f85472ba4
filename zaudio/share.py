"""A group member's side of a processor group: is this block (or window) ours?

Every member of a group receives every block of its topics and asks
:meth:`Membership.mine` before calling the function. The answer comes from the
epochs of the last heartbeat reply (:class:`~zaudio.control.Share`, see
:mod:`zaudio.groups`): the block's epoch is the latest one whose ``start`` is at
or before the block's ``t``, and its owner ``members[key % len(members)]``
(``key``: the block's ``seq``, or for a window its number ``index // hop``).

A block is processed only while the member holds a **lease**: its last
heartbeat that brought a share was sent less than :data:`LEASE` beats ago. The
proxy drops a member after 2 beats of silence, measured from when a heartbeat
arrived, so a member always stops before its share is given away; and an epoch
starts 1.5 beats after it is announced, so a member holding a lease has heard
of every epoch a block it processes can be in. A member
that was stopped (SIGSTOP) and resumes finds its lease expired; once its next
heartbeat answers, ``since`` says from which epoch on it is a member again.
Either way the blocks it would have taken are dropped and counted in ``late``,
never published.

Blocks a member that is gone did not process are counted, once for the
group, by its **heir** (the first member of the epoch that lists it in
``left``), in ``lost_in_handover``: those of its share whose ``seq`` is past the
last one it reported (``share_last`` in its heartbeats). Blocks it processed
after its last heartbeat are counted too, so the count is an upper bound by at
most one beat of its share.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any, Final

from zaudio.client import NodeClient
from zaudio.control import Epoch, Share
from zaudio.errors import ConfigError, LocalProtocolError
from zaudio.groups import PROGRESS
from zaudio.protocol import encode_json, validate_name
from zaudio.tracking import Info
from zaudio.windows import window_frames

__all__ = ["LEASE", "Membership", "group_spec"]

#: Beats (the member's heartbeat interval) a share holds after its heartbeat was sent.
LEASE: Final = 1.5
#: Blocks of other members remembered, to count what a gone member left undone.
SEEN: Final = 16384


def group_spec(
    group: str,
    fn: Any,
    params: dict[str, Any] | None,
    window: str | float | None,
    hop: str | float | None,
) -> dict[str, str]:
    """The ``group`` field of a member's registration: what its members must agree on.

    Raises
    ------
    ConfigError
        ``group`` is not a valid name.
    """
    try:
        validate_name(group, "group")
    except LocalProtocolError as exc:
        raise ConfigError(str(exc)) from None
    if isinstance(fn, str):
        function = fn
    else:
        function = f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"
    try:
        text = encode_json(dict(sorted((params or {}).items()))).decode()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"group {group!r}: params cannot be compared as JSON: {exc}") from None
    framing = "" if window is None else f"{window}/{hop if hop is not None else window}"
    return {"name": group, "function": function, "params": text, "window": framing}


class Membership:
    """One processor's membership of its group.

    Parameters
    ----------
    client : NodeClient
        The processor's node client (its heartbeats bring the share).
    group : str
        The group's name.
    hop : str or float or int, optional
        The window hop, for a windowed processor (windows are then the unit).
    """

    def __init__(self, client: NodeClient, group: str, hop: str | float | int | None = None):
        self.client = client
        self.group = group
        self.hop = hop
        self._hops: dict[int, int] = {}  # rate -> hop in frames
        #: blocks of ours nobody processed across a handover (counted by the heir)
        self.lost_in_handover = 0
        #: blocks of our share dropped because our lease or membership lapsed
        self.late = 0
        #: blocks of other members
        self.others = 0
        self._last: dict[str, int] = {}
        self._seen: deque[tuple[str, int, str, int]] = deque(maxlen=SEEN)
        self._share: Share | None = None
        self._epochs: list[Epoch] = []
        self._gone: dict[str, tuple[int, dict[str, int]]] = {}  # heir's: id -> (epoch, last)
        self._counted: set[tuple[int, str]] = set()

    def key(self, info: Info) -> int:
        """The number the block is shared by: its ``seq``, or its window's number."""
        if self.hop is None:
            return info.seq
        hop = self._hops.get(info.rate)
        if hop is None:
            hop = self._hops[info.rate] = window_frames(self.hop, info.rate, "hop")
        return info.index // hop

    def mine(self, info: Info) -> bool:
        """True if this block (or window) is ours to process now."""
        lease = self.client.share
        if lease is None:
            return False  # no share yet: the members before us have this block
        sent, share = lease
        if share is not self._share:
            self._learn(share)
        epoch = self._epoch(info.t)
        if epoch is None:
            return False  # before any epoch we know: not ours
        key = self.key(info)
        owner = epoch.members[key % len(epoch.members)]
        if owner == share.member:
            beat = self.client.heartbeat
            if epoch.number < share.since or time.monotonic() - sent > LEASE * beat:
                self.late += 1
                return False
            self._last[info.stream] = key
            return True
        self.others += 1
        self._seen.append((info.stream, key, owner, epoch.number))
        gone = self._gone.get(owner)
        if gone is not None and epoch.number < gone[0] and key > gone[1].get(info.stream, -1):
            self.lost_in_handover += 1
        return False

    def _epoch(self, t: float) -> Epoch | None:
        found = None
        for e in self._epochs:
            if e.start <= t:
                found = e
            else:
                break
        return found

    def _learn(self, share: Share) -> None:
        """A new share: its epochs, and the members gone whose blocks we inherit."""
        self._share = share
        self._epochs = sorted(share.epochs, key=lambda e: (e.start, e.number))
        for e in share.epochs:
            if not e.members or e.members[0] != share.member:
                continue
            for gone, last in e.left.items():
                if (e.number, gone) in self._counted:
                    continue
                self._counted.add((e.number, gone))
                self._gone[gone] = (e.number, last)
                self.lost_in_handover += sum(
                    1
                    for stream, key, owner, number in self._seen
                    if owner == gone and number < e.number and key > last.get(stream, -1)
                )

    def stats(self) -> dict[str, Any]:
        """``lost_in_handover``, ``late``, the share (``group``) and progress for heartbeats."""
        lease = self.client.share
        share = lease[1] if lease is not None else None
        slot = members = epoch = None
        if share is not None and share.epochs:
            current = share.epochs[-1]
            epoch, members = current.number, len(current.members)
            if share.member in current.members:
                slot = current.members.index(share.member)
        return {
            "lost_in_handover": self.lost_in_handover,
            "late": self.late,
            "group": {
                "name": self.group,
                "epoch": epoch,
                "share": f"1/{members}" if members else None,
                "slot": slot,
                "others": self.others,
            },
            PROGRESS: dict(self._last),
        }
