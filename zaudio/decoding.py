"""Decode a received data message, counting it when it breaks the protocol.

Every receiver (processors, ``subscribe()``, ``results()``, the capture node, the
history fetch, ``zaudio top``, the web monitor, a capture's reader) decodes with a
:class:`Decoder`: it calls :func:`zaudio.protocol.decode`, and a message that does not
decode is counted in :attr:`Decoder.malformed`, logged (the first one as a warning, each
later one at DEBUG) and given back as None, so that no receiver drops one silently::

    decoder = Decoder(log)
    decoded = decoder(frames)
    if decoded is None:
        continue  # counted in decoder.malformed
    h, block = decoded
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, TypeAlias

from zaudio.errors import RemoteProtocolError
from zaudio.protocol import AudioHeader, Block, ResultHeader, decode

__all__ = ["Decoded", "Decoder"]

Decoded: TypeAlias = tuple[AudioHeader, Block] | tuple[ResultHeader, None]


class Decoder:
    """:func:`~zaudio.protocol.decode` that counts (and logs) what does not decode.

    Parameters
    ----------
    log : logging.Logger
        Where the first malformed message is a warning (the rest are DEBUG lines).
    dropped : str
        What the receiver does with a malformed message, for the log line
        (``"dropped"``; the capture node says ``"recorded"``).

    Attributes
    ----------
    malformed : int
        The messages that did not decode (a receiver may add its own, such as the
        capture node's messages that are not three frames).
    """

    __slots__ = ("_dropped", "_log", "malformed")

    def __init__(self, log: logging.Logger, dropped: str = "dropped") -> None:
        self._log = log
        self._dropped = dropped
        self.malformed = 0

    def __call__(self, frames: Sequence[Any]) -> Decoded | None:
        """The decoded ``(header, block)``, or None (counted) for a malformed message."""
        try:
            return decode(frames)
        except RemoteProtocolError as exc:
            self.malformed += 1
            if self.malformed == 1:
                self._log.warning(
                    "%s a malformed message (%s); counting the rest", self._dropped, exc
                )
            else:
                self._log.debug("%s a malformed message: %s", self._dropped, exc)
            return None
