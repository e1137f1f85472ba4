"""A processor's outputs: what its function returns goes back on the bus.

A float32 array becomes a block of the processor's audio stream (``output``,
announced to the proxy when its first array goes out, carrying the input's
``t`` and ``index``); anything else JSON-able becomes a result on
``result/<name>``. Both leave through the processor's :class:`~zaudio.bus.Outlet`,
from the worker thread that owns it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zaudio.bus import Outlet
from zaudio.client import NodeClient
from zaudio.errors import LocalProtocolError
from zaudio.failures import Failures
from zaudio.protocol import AudioStream, ResultStream
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
    published, unsent : int
        Messages sent; not sent (the proxy's queue was full, or no ``output``).
    """

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
        self._audio: AudioStream | None = None
        self.published = 0
        self.unsent = 0
        self.failures = failures

    def publish(self, out: Any, info: Info) -> None:
        """Send what the function returned for the block (or window) ``info`` describes."""
        try:
            if isinstance(out, np.ndarray) and out.dtype == np.float32:
                frames = self._audio_frames(out, info)
                if frames is None:
                    return
            else:
                frames = self.results.encode(
                    out, stream=info.stream, index=info.index, frames=info.frames, t=info.t
                )
        except LocalProtocolError as exc:
            self.failures.unpublishable(exc, info)
            return
        outlet = self.outlet
        outlet.pump()
        if outlet.send(frames):
            self.published += 1
        else:
            self.unsent += 1

    def _audio_frames(self, out: np.ndarray[Any, Any], info: Info) -> list[Any] | None:
        if self.output is None:
            self.unsent += 1
            return None
        channels = out.shape[1] if out.ndim == 2 else 1
        stream = self._audio
        if stream is None or stream.rate != info.rate or stream.channels != channels:
            stream = self._audio = AudioStream(self.output, info.rate, channels)
            self.client.update(
                streams=[{"name": self.output, "rate": info.rate, "channels": channels}]
            )
        return stream.encode(out, info.t, index=info.index)
