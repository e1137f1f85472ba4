"""A group's audio output as one ordered stream: its members' parts, re-sequenced.

Each member of a processor group (zaudio.groups) processes its own share of the
blocks, so the arrays they return cannot all be one publisher's stream. A member
publishes them on a **part** of its own, ``<output>/part/<src>`` (``src`` fresh
for each run of the member; :func:`part_stream`), carrying the input's ``t`` and
``index``, through its ordinary :class:`~zaudio.publisher.Publisher`. A
:class:`Sequencer` (``zaudio sequence OUTPUT``) subscribes to every part of
``OUTPUT`` with the one subscriber connection (:class:`~zaudio.connection.Connection`),
puts the pieces back in ``index`` order with the one reordering
(:class:`~zaudio.ordered.Reorder`, fed by :func:`~zaudio.ordered.receive`), and
publishes them as the one stream ``OUTPUT`` through the one publishing stack
(:class:`~zaudio.outputs.Outputs`, a Publisher): ``seq`` counts from 0, every
block keeps its ``t`` and ``index``. So a downstream processor reads ``OUTPUT``
as it reads any stream, in order, never a block twice.

A piece missing after the reorder bound (a killed member's share, before its
handover) is skipped: ``seq`` and ``index`` of the stream jump past it (a
receiver sees a ``gap``), counted in ``skipped`` and ``skipped_frames``; a piece
that comes after its place went by is dropped and counted in ``late``, one that
comes twice in ``duplicates``. ``zaudio ls`` shows them (the SEQUENCER table).
Pieces are ordered by ``index`` alone: a group whose audio output is sequenced
reads one input stream. A piece more than the bound plus :data:`RESTART` seconds
of audio behind the output means the input restarted (its ``index`` began
again): the sequencer starts afresh, its stream a new run (a new ``src``) that
receivers see as a restart; what it held then is dropped and counted
(``restart_dropped``), and ``restarts`` counts them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, Final

from zaudio.background import Background
from zaudio.client import NodeClient
from zaudio.connection import Connection
from zaudio.decoding import Decoder
from zaudio.errors import ConfigError, LocalProtocolError
from zaudio.failures import Failures
from zaudio.ordered import Reorder, receive
from zaudio.outputs import Outputs
from zaudio.protocol import AudioHeader, Block, new_src, validate_name
from zaudio.security import Keys
from zaudio.tracking import info_of
from zaudio.units import parse_duration

__all__ = ["PART", "RESTART", "Sequencer", "part_stream", "parts_topic"]

log = logging.getLogger(__name__)

#: The name part between a group's output and a member's part: ``<output>/part/<src>``.
PART: Final = "part"
#: Seconds beyond the reorder bound a piece's index may be behind the output's before
#: it is taken for a restart of the input stream (its index starting again).
RESTART: Final = 1.0
#: Distinct parts remembered for the ``parts`` counter.
_MAX_PARTS: Final = 4096


def parts_topic(output: str) -> str:
    """The ``--topic`` prefix of every part of ``output``: ``<output>/part/``."""
    return f"{output}/{PART}/"


def part_stream(output: str) -> str:
    """The stream a group member publishes its arrays on: ``<output>/part/<a fresh src>``.

    Raises
    ------
    ConfigError
        The name is not valid (``output`` too long to take the suffix).
    """
    name = parts_topic(output) + new_src()
    try:
        return validate_name(name, "output stream")
    except LocalProtocolError as exc:
        raise ConfigError(f"{exc} (a group member publishes on {name!r})") from None


@dataclass(frozen=True)
class _Piece:
    """One member's block of the output: ordered by ``index`` within ``stream``."""

    stream: str
    index: int
    frames: int
    header: AudioHeader
    block: Block


class Sequencer(Background):
    """Publish the parts of a group's audio output as one stream in ``index`` order.

    Parameters
    ----------
    stream : str
        The group's output stream (by default the group's name): parts come from
        ``<stream>/part/``, the ordered stream goes out as ``stream``.
    reorder : str or float
        How long a missing piece is waited for before it is skipped (``"2s"``).
    proxy, keys :
        As for :class:`~zaudio.Processor`.

    Raises
    ------
    ConfigError
        An invalid stream name or ``reorder``.
    """

    def __init__(
        self,
        stream: str,
        *,
        reorder: str | float = "2s",
        proxy: str | None = None,
        keys: Keys | None = None,
    ) -> None:
        try:
            self.stream = validate_name(stream, "stream")
        except LocalProtocolError as exc:
            raise ConfigError(str(exc)) from None
        self.order = Reorder[_Piece](parse_duration(reorder, "reorder"))
        self.proxy, self.keys = proxy, keys
        self.counters = {"received": 0, "malformed": 0, "ignored": 0, "restart_dropped": 0}
        #: times the input's index went back (a source restart): the output restarted too
        self.restarts = 0
        self._decoder = Decoder(log)
        self.parts: set[str] = set()
        self.outputs: Outputs | None = None
        self.client: NodeClient | None = None
        self._skips = 0  # order.skipped already accounted in the published stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: what ended a background run (:meth:`start`) with an error, if anything
        self.error: BaseException | None = None

    def stats(self) -> dict[str, Any]:
        """``received``, the reordering's counters, ``parts`` seen, ``published``/``unsent``."""
        outputs = self.outputs
        return {
            **self.counters,
            **self.order.stats(),  # released, held, skipped, skipped_frames, late, duplicates
            "parts": len(self.parts),
            "restarts": self.restarts,
            **(outputs.stats() if outputs is not None else Outputs.NONE),
        }

    @property
    def ready(self) -> bool:
        """True once subscribed (in effect at the proxy) and registered."""
        return self.client is not None and self.client.registered.is_set()

    def _what(self) -> str:
        return f"sequencer {self.stream!r}"

    def run(self, stop: threading.Event | None = None) -> None:
        """Connect, register, and re-sequence until ``stop`` (or :meth:`stop`) is set.

        Raises
        ------
        RequestRefused
            The proxy refused the registration (another node publishes ``stream``).
        """
        if stop is not None:
            self._stop = stop
        topic = parts_topic(self.stream)
        conn = Connection(self.proxy, [topic], keys=self.keys, stop=self._stop)
        client: NodeClient | None = None
        try:
            if not conn.open():
                return
            client = self.client = NodeClient(
                self.proxy,
                role="sequencer",
                name=self.stream,
                registration=lambda: {"topics": conn.topics(), "outputs": [self.stream]},
                stats=self.stats,
                keys=self.keys,
            ).start()
            while not client.registered.wait(0.05):
                if client.refused is not None:
                    raise client.refused
                if self._stop.is_set():
                    return
            failures = Failures(self.stream, "log")
            outputs = self.outputs = Outputs(
                self.stream, self.stream, conn.outlet, client, failures
            )
            log.info("sequencer %r: parts %s* in index order", self.stream, topic)
            for piece in receive(conn.sock, self._accept, self.order, stop=self._stop):
                skipped = self.order.skipped - self._skips
                if skipped:
                    self._skips += skipped
                    outputs.skip(skipped)
                outputs.publish(piece.block, info_of(piece.header, False, False))
        finally:
            self._stop.set()
            if self.outputs is not None:
                self.outputs.close()
            if client is not None:
                client.close()
            conn.close()

    def _accept(self, frames: list[Any]) -> _Piece | None:
        decoded = self._decoder(frames)
        if decoded is None:
            self.counters["malformed"] = self._decoder.malformed
            return None
        h, block = decoded
        if type(h) is not AudioHeader or block is None:
            self.counters["ignored"] += 1
            return None
        self.counters["received"] += 1
        if len(self.parts) < _MAX_PARTS:
            self.parts.add(h.stream)
        piece = _Piece(self.stream, h.index, h.frames, h, block)
        if self.order.behind(piece) > (self.order.reorder + RESTART) * h.rate:
            # far behind what went out: the input stream restarted (its index went back)
            self.restarts += 1
            self.counters["restart_dropped"] += len(self.order.forget(self.stream))
            if self.outputs is not None:
                self.outputs.restart()  # a new run of the stream, as its source had
        return piece
