"""Stream and processor names, topic frames and subscription prefixes (docs/protocol.md).

A name is ``[A-Za-z0-9][A-Za-z0-9_.-]*`` parts joined by ``/``, at most
:data:`MAX_NAME` bytes. Audio travels on ``b"audio/<stream>\\x00"``, results on
``b"result/<processor>\\x00"``; a ``--topic`` pattern becomes a ZeroMQ prefix with
:func:`subscription`. No I/O here; :mod:`zaudio.protocol` re-exports all of it.
"""

from __future__ import annotations

import os
import re
from typing import Final

from zaudio.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "AUDIO",
    "MAX_NAME",
    "READY",
    "RESULT",
    "audio_topic",
    "new_src",
    "result_topic",
    "subscription",
    "validate_name",
]

MAX_NAME: Final = 128
#: Subscription the proxy's XSUB holds from the start. XSUB replays its stored
#: subscriptions to every new publisher in byte order, so this one (0xff first)
#: arrives last: a publisher that sees it knows every subscriber the proxy had
#: is in effect, and can send block 0 without ZeroMQ's slow-joiner loss. Defined
#: here (and re-exported by zaudio.proxy) so that nodes need not import the proxy.
READY: Final = b"\xff\xffzaudio/ready"
AUDIO: Final = b"audio/"
RESULT: Final = b"result/"
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.-]+)*\Z")


# Topic frame -> (kind, name) for topics already validated; bounded.
_topics: dict[bytes, tuple[bytes, str]] = {}
_TOPIC_CACHE_MAX: Final = 4096


def new_src() -> str:
    """A fresh random publisher-run id (12 hex digits)."""
    # os.urandom is what secrets uses; importing secrets (hashlib, OpenSSL)
    # costs every node ~4 ms of start-up.
    return os.urandom(6).hex()


def validate_name(name: object, what: str = "stream") -> str:
    """Return ``name`` if it is a valid stream or processor name, else raise.

    Raises
    ------
    LocalProtocolError
        If the name breaks docs/protocol.md's rule (``[A-Za-z0-9][A-Za-z0-9_.-]*``,
        ``/``-separated parts, at most 128 bytes).
    """
    if not isinstance(name, str) or not _is_name(name):
        raise LocalProtocolError(
            f"invalid {what} name {name!r}: use letters, digits, '_', '.', '-' and '/' "
            f"between parts, starting with a letter or digit, at most {MAX_NAME} bytes",
            "name",
        )
    return name


def _is_name(name: str) -> bool:
    return len(name) <= MAX_NAME and name.isascii() and _NAME_RE.match(name) is not None


def audio_topic(stream: str) -> bytes:
    """The exact topic frame of an audio stream: ``b"audio/<stream>\\x00"``."""
    return AUDIO + validate_name(stream).encode() + b"\0"


def result_topic(processor: str) -> bytes:
    """The exact topic frame of a processor's results: ``b"result/<name>\\x00"``."""
    return RESULT + validate_name(processor, "processor").encode() + b"\0"


def subscription(pattern: str) -> bytes:
    """The ZeroMQ subscription prefix for a ``--topic`` pattern.

    ``mic`` subscribes exactly to stream ``mic`` (NUL-terminated); ``lab-a/`` or
    ``lab-a/*`` to every stream under ``lab-a/``; ``*`` to every audio stream. A
    pattern starting with ``audio/`` or ``result/`` is taken as a full topic.
    """
    kind = AUDIO
    for prefix in (AUDIO, RESULT):
        if pattern.encode().startswith(prefix):
            kind, pattern = prefix, pattern[len(prefix) :]
            break
    if pattern in ("", "*"):
        return kind
    if pattern.endswith("/*"):
        pattern = pattern[:-1]
    if pattern.endswith("/"):
        validate_name(pattern[:-1])
        return kind + pattern.encode()
    return kind + validate_name(pattern).encode() + b"\0"


def _parse_topic(topic: bytes) -> tuple[bytes, str]:
    cached = _topics.get(topic)
    if cached is not None:
        return cached
    if not topic.endswith(b"\0"):
        raise RemoteProtocolError("topic frame does not end with NUL", "topic")
    if topic.startswith(AUDIO):
        kind = AUDIO
    elif topic.startswith(RESULT):
        kind = RESULT
    else:
        raise RemoteProtocolError("topic is neither audio/ nor result/", "topic")
    try:
        name = topic[len(kind) : -1].decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("topic name is not ASCII", "name") from None
    if not _is_name(name):
        raise RemoteProtocolError(f"invalid name in topic {name!r}", "name")
    if len(_topics) >= _TOPIC_CACHE_MAX:
        _topics.clear()
    _topics[topic] = (kind, name)
    return kind, name
