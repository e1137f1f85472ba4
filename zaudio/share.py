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
of every epoch a block it processes can be in. A block that comes while the
member holds no lease (none yet, or it lapsed: a SIGSTOP, the proxy gone or
restarted) is not processed: it is remembered and judged with the next share.
One of its own then (by the epochs it knows by then, ``since`` saying from
which epoch on it is a member again) is counted in ``late``, never published.

A block stamped before the group's first epoch is nobody's: the group started
after it, or the proxy restarted and its members formed the group afresh (a
proxy's first epoch starts 0.75 heartbeat intervals after the first member
registered with it). It is counted once, in ``unshared``, by the first member
of that first epoch, so that what is lost around a proxy restart is counted
too: ``late`` (blocks of the old epochs whose owner's lease had lapsed) and
``unshared`` (those of the blip before the new first epoch), besides the
``gaps`` of what never arrived.

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
        #: blocks before the group's first epoch (nobody's), counted by its first member
        self.unshared = 0
        self._pending: deque[tuple[str, int, float]] = deque()  # came while we had no lease
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
        key = self.key(info)
        lease = self.client.share
        if lease is None:  # no share yet: judged with the first one
            self._defer(info.stream, key, info.t)
            return False
        sent, share = lease
        if share is not self._share:
            self._learn(share)
        if time.monotonic() - sent > LEASE * self.client.heartbeat:
            # our lease lapsed (stopped, the proxy gone or restarted): we may not know
            # every epoch, nor whether we are still a member; judged with the next share
            self._defer(info.stream, key, info.t)
            return False
        return self._judge(info.stream, key, info.t, share, True)

    def _judge(self, stream: str, key: int, t: float, share: Share, live: bool) -> bool:
        """Whose block this is, by ``share``'s epochs; True if ours to process now (``live``)."""
        epoch = self._epoch(t)
        if epoch is None:
            # before the group's first epoch (it started, or the proxy restarted, since
            # the block was stamped): nobody's. Counted once, by the first member of it.
            first = self._epochs[0].members if self._epochs else []
            if first and first[0] == share.member:
                self.unshared += 1
            return False
        owner = epoch.members[key % len(epoch.members)]
        if owner == share.member:
            if not live or epoch.number < share.since:
                self.late += 1
                return False
            self._last[stream] = key
            return True
        self.others += 1
        self._seen.append((stream, key, owner, epoch.number))
        gone = self._gone.get(owner)
        if gone is not None and epoch.number < gone[0] and key > gone[1].get(stream, -1):
            self.lost_in_handover += 1
        return False

    def _defer(self, stream: str, key: int, t: float) -> None:
        pending = self._pending
        if len(pending) == SEEN:  # never judged: counted as ours and not processed
            pending.popleft()
            self.late += 1
        pending.append((stream, key, t))

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
        # the blocks that came while we had no lease, judged now that we know
        pending, self._pending = self._pending, deque()
        for stream, key, t in pending:
            self._judge(stream, key, t, share, False)

    def stats(self) -> dict[str, Any]:
        """``lost_in_handover``, ``late``, ``unshared``, the share (``group``) and progress."""
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
            "unshared": self.unshared,
            "group": {
                "name": self.group,
                "epoch": epoch,
                "share": f"1/{members}" if members else None,
                "slot": slot,
                "others": self.others,
            },
            PROGRESS: dict(self._last),
        }
