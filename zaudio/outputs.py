"""A processor's outputs: what its function returns goes back on the bus.

A float32 array becomes a block of the processor's audio stream (``output``),
sent by a :class:`~zaudio.publisher.Publisher` (which buffers a proxy outage
like every publisher) carrying the input's ``t`` and ``index``; the stream is
announced with ``client.update`` when its first array goes out. Anything else
JSON-able becomes a result on ``result/<name>``. Both leave through the
processor's :class:`~zaudio.bus.Outlet`, from the worker thread that owns it.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from zaudio.bus import Outlet
from zaudio.client import NodeClient
from zaudio.errors import LocalProtocolError
from zaudio.failures import Failures
from zaudio.protocol import ResultStream
from zaudio.publisher import Publisher
from zaudio.tracking import Info

__all__ = ["Outputs"]


class Outputs:
    """Results and audio of one processor, sent on its outlet.

    Parameters
    ----------
    name : str
        The processor's name (results go to ``result/<name>``).
    output : str or None
        The audio stream arrays are published as; None: arrays are not published
        (counted in :attr:`unsent`).
    outlet : Outlet
        The processor's connected outlet.
    client : NodeClient
        The processor's node client, which announces the audio stream.
    failures : Failures
        Counts (and logs) a returned value that cannot be published.

    Attributes
    ----------
    results_sent, results_unsent : int
        Results sent; refused by the proxy's queue.
    no_output : int
        Arrays returned while the processor has no audio output (name taken).
    """

    #: :meth:`stats` of a processor that has not published yet
    NONE: Final = {"published": 0, "unsent": 0, "result_nonfinite": 0}

    def __init__(
        self,
        name: str,
        output: str | None,
        outlet: Outlet,
        client: NodeClient,
        failures: Failures,
    ) -> None:
        self.output = output
        self.outlet = outlet
        self.client = client
        self.results = ResultStream(name)
        self.name = name
        #: the audio output, once the function returned its first array
        self.audio: Publisher | None = None
        self.results_sent = 0
        self.results_unsent = 0
        self.no_output = 0
        self._earlier_sent = self._earlier_dropped = 0  # by audio outputs replaced since
        self.failures = failures

    def publish(self, out: Any, info: Info) -> None:
        """Send what the function returned for the block (or window) ``info`` describes."""
        try:
            if isinstance(out, np.ndarray) and out.dtype == np.float32:
                self._send_audio(out, info)
                return
            frames = self.results.encode(
                out, stream=info.stream, index=info.index, frames=info.frames, t=info.t
            )
        except LocalProtocolError as exc:
            self.failures.unpublishable(exc, info)
            return
        outlet = self.outlet
        outlet.pump()
        if outlet.send(frames):
            self.results_sent += 1
        else:
            self.results_unsent += 1

    def stats(self) -> dict[str, int]:
        """``published``, ``unsent`` and ``result_nonfinite`` (NaN/inf sent as null)."""
        return {
            "published": self.published,
            "unsent": self.unsent,
            "result_nonfinite": self.results.nonfinite,
        }

    @property
    def published(self) -> int:
        """Results and audio blocks sent."""
        audio = self.audio.counters["sent"] if self.audio is not None else 0
        return self.results_sent + self._earlier_sent + audio

    @property
    def unsent(self) -> int:
        """Results the proxy's queue refused, arrays with no output, audio blocks dropped."""
        audio = self.audio.counters["dropped"] if self.audio is not None else 0
        return self.results_unsent + self.no_output + self._earlier_dropped + audio

    def _send_audio(self, out: np.ndarray[Any, Any], info: Info) -> None:
        if self.output is None:
            self.no_output += 1
            return
        channels = out.shape[1] if out.ndim == 2 else 1
        pub = self.audio
        if pub is None or pub.stream.rate != info.rate or pub.stream.channels != channels:
            if pub is not None:  # the input's format changed: a new stream run
                self.restart()
            pub = self.audio = Publisher(
                self.output,
                rate=info.rate,
                channels=channels,
                client=self.client,
                outlet=self.outlet,
            )
            # the one path by which a node announces a stream after registering
            self.client.update(streams=pub.registration()["streams"])
        pub.send(out, info.t, index=info.index)

    def restart(self) -> None:
        """End the audio output's run: the next array starts a new one (a new ``src``)."""
        pub = self.audio
        if pub is not None:
            pub.close(0)
            self._earlier_sent += pub.counters["sent"]
            self._earlier_dropped += pub.counters["dropped"]
            self.audio = None

    def skip(self, blocks: int) -> None:
        """``blocks`` blocks of the audio output that are never sent (a re-sequencing skipped
        them, zaudio.sequencer): its ``seq`` jumps past them, so receivers see the gap."""
        if self.audio is not None:
            self.audio.skip(0, blocks)

    def close(self) -> None:
        """Send what the audio output still holds (bounded), counting what is left."""
        if self.audio is not None:
            self.audio.close(0.5)
