"""Which subscriptions cross a federation link, each way: pure functions, no sockets.

A site proxy joined to a hub (zaudio.federation) sees two subscription sets:

- the **site's**, from an XPUB connected to its own publish-in (XSUB): every
  prefix some subscriber at the site holds, merged by ZeroMQ;
- the **hub's**, from an XPUB connected to the hub's publish-in: every prefix a
  subscriber of the hub holds (other sites' links among them).

:func:`upstream` turns the site's set into what the site asks of the hub: an
exact topic (``audio/x\\0``) passes unless the site itself owns ``x``; a
wildcard (``audio/lab-a/``, ``audio/``) becomes the exact topics of the
streams the federation knows elsewhere that it matches. So the hub never sends
a site its own streams back (no loop, no duplicates), and a stream crosses the
link once however many local subscribers want it.

:func:`tap` turns the hub's set into the local subscriptions of the link's tap
(the socket that feeds the uplink with the site's own streams). Each is the
hub's prefix minus its last byte (``audio/x\\0`` -> ``audio/x``): it matches at
least what the hub asked for, and no zaudio client subscribes that way, so the
site's set tells the tap's subscriptions apart from those of real subscribers
(:func:`upstream` skips them). Exact topics of streams known to be owned
elsewhere are left out; those not owned anywhere yet are kept, so a recorder
that starts at the site later sends its first block to the hub too (ZeroMQ
replays the tap's subscription to it before the proxy's ready marker). The
tap's messages pass to the hub only if their stream is the site's own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from zaudio.errors import RemoteProtocolError
from zaudio.names import AUDIO, RESULT, _parse_topic

__all__ = ["Own", "is_data", "owner_check", "tap", "topic_of", "upstream"]

#: Is this topic (``audio/<name>\\0`` or ``result/<name>\\0``) the site's own?
Own = Callable[[bytes], bool]
_KINDS: Final = (AUDIO, RESULT)


def is_data(prefix: bytes) -> bool:
    """True if ``prefix`` can match audio or result topics (not the ready/echo marks)."""
    return prefix.startswith(_KINDS) or any(k.startswith(prefix) for k in _KINDS)


def topic_of(frame: bytes) -> tuple[bytes, str] | None:
    """(kind, name) of a data topic frame, None if it is not one."""
    try:
        return _parse_topic(frame)
    except RemoteProtocolError:
        return None


def owner_check(owns: Callable[[str], bool], processes: Callable[[str], bool]) -> Own:
    """An :data:`Own` from the registry's lookups: streams by owner, results by processor name."""

    def own(topic: bytes) -> bool:
        parsed = topic_of(topic)
        if parsed is None:
            return False
        kind, name = parsed
        return owns(name) if kind == AUDIO else processes(name)

    return own


def upstream(
    site: Iterable[bytes], taps: set[bytes], own: Own, remote: Iterable[bytes]
) -> set[bytes]:
    """The subscriptions the site's downlink holds at the hub.

    ``site`` is the site's subscription set, ``taps`` the tap's own local
    subscriptions (:func:`tap`), ``remote`` the exact topics of everything the
    federation knows outside this site.
    """
    remote = list(remote)
    wanted: set[bytes] = set()
    for prefix in site:
        if prefix in taps or not is_data(prefix):
            continue
        if prefix.endswith(b"\0") and topic_of(prefix) is not None:
            if not own(prefix):
                wanted.add(prefix)
            continue
        wanted.update(t for t in remote if t.startswith(prefix) and not own(t))
    return wanted


def tap(hub: Iterable[bytes], own: Own, remote: set[bytes]) -> set[bytes]:
    """The local subscriptions of the tap for the hub's subscription set ``hub``."""
    forms: set[bytes] = set()
    for prefix in hub:
        if not prefix or not is_data(prefix):
            continue
        if prefix in remote and not own(prefix):
            continue  # a stream another proxy owns: never ours to send
        forms.add(prefix[:-1])
    return forms
