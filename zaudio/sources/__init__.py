"""Audio sources for the recorder, chosen by a ``--source`` spec through one registry.

A source produces float32 blocks of shape ``(frames, channels)`` and hands each to
a :class:`Sink` with the capture time of its first frame (seconds on this node's
wall clock, or None when it cannot tell). The recorder is the sink; it owns the
queue and the network, a source owns neither::

    source.start(sink)      # sink.put(block, t) per block, sink.end() when exhausted
    ...
    source.stop()           # no sink calls after it returns

Push sources (the PortAudio callback of ``mic``) call ``sink.put`` from their own
thread; pull sources (synthetic signals, files, stdin) subclass :class:`ThreadSource`
and only yield blocks: the base class runs the thread and paces them on the sample
clock. A browser microphone is not a source here: ``zaudio web`` publishes each
capture tab's blocks with a :class:`~zaudio.publisher.Publisher` of its own
(:mod:`zaudio.web.server`).

Specs::

    mic | device:N | device:NAME       sounddevice input (zaudio.sources.mic)
    sine:FREQ[:AMP] | noise[:AMP]      synthetic (zaudio.sources.synth)
    speech[:AMP] | bursts[:AMP]        speech-like tone bursts over quiet noise
    chirp[:F0[:F1[:PERIOD]]]           repeating logarithmic sweep
    file:PATH | PATH                   WAV, FLAC, OGG (zaudio.sources.file)
    -                                  raw little-endian float32 on stdin (zaudio.sources.stdin)

:data:`SOURCES` maps a spec's name to an import string ``module:factory``;
:func:`register_source` adds one (an import string or a factory, for a source
of your own). Modules are imported only when their source is chosen, so only
``mic`` imports sounddevice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from zaudio import clock
from zaudio.errors import ConfigError
from zaudio.loader import import_from_string
from zaudio.units import parse_block

__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_CHANNELS",
    "DEFAULT_RATE",
    "SOURCES",
    "Block",
    "Sink",
    "Source",
    "SourceOptions",
    "ThreadSource",
    "open_source",
    "register_source",
]

log = logging.getLogger(__name__)

Block = npt.NDArray[np.float32]

DEFAULT_RATE = 48000
DEFAULT_CHANNELS = 1
DEFAULT_BLOCK = "10ms"


class Sink(Protocol):
    """Where a source delivers its blocks (the recorder implements it)."""

    def put(self, block: Block, t: float | None) -> None:
        """Take one block (the sink may keep it: pass a block you will not reuse)."""

    def end(self, error: BaseException | None = None) -> None:
        """The source is exhausted (or failed with ``error``); no more blocks follow."""


@dataclass(frozen=True)
class SourceOptions:
    """What the command line says about the stream's format and pacing.

    ``rate`` and ``channels`` are None when not given: a file then uses its own,
    other sources the defaults.
    """

    rate: int | None = None
    channels: int | None = None
    block: str | int = DEFAULT_BLOCK
    fast: bool = False
    loop: bool = False

    def format(self) -> tuple[int, int]:
        """``(rate, channels)`` with the defaults filled in, validated."""
        rate = DEFAULT_RATE if self.rate is None else self.rate
        channels = DEFAULT_CHANNELS if self.channels is None else self.channels
        if rate < 1:
            raise ConfigError(f"invalid rate {rate}: must be a positive number of Hz")
        if not 1 <= channels <= 1024:
            raise ConfigError(f"invalid channel count {channels}: use 1-1024")
        return rate, channels

    def frames(self, rate: int) -> int:
        """Frames per block at ``rate``."""
        return parse_block(self.block, rate)


class Source:
    """Base class of every source.

    Attributes
    ----------
    rate, channels : int
        The format of the blocks it produces.
    block : int
        Frames per block (the last block of a file may be shorter).
    live : bool
        True when the source cannot wait (a device, a paced signal): if the
        recorder's buffer is full, its oldest blocks are dropped and counted.
        False (``--fast``, and stdin always): the recorder makes the source
        wait instead, and nothing is lost.
    description : str
        What it is, for logs.
    """

    rate: int
    channels: int
    block: int
    live: bool = True
    description: str = "source"

    def start(self, sink: Sink) -> None:
        """Begin delivering blocks to ``sink`` (from any thread)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop delivering; after it returns ``sink`` is not called again. Idempotent."""
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Counters of the source itself (e.g. input ``overflows``)."""
        return {}


class ThreadSource(Source):
    """A pull source: subclasses implement :meth:`blocks`; a thread paces and delivers them.

    Paced sources deliver block ``k`` once its last frame's time has come, with
    deadlines taken from the sample clock (``start + frames_so_far / rate``), so
    timing does not drift however long a block takes to make. Unpaced sources
    (``paced = False``) deliver as fast as the sink takes them.
    """

    paced: bool = True
    join_timeout: float = 5.0
    #: True when :meth:`blocks` may wait on I/O without checking :meth:`stop`: it then
    #: needs a thread of its own; otherwise a recorder runs it in its sender thread.
    #: (stdin waits in short slices, so it is False there too.)
    blocking_io: bool = False

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def blocks(self) -> Iterator[Block]:
        """Yield the blocks, each float32 ``(frames, channels)``; return when exhausted."""
        raise NotImplementedError

    def start(self, sink: Sink) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(sink,), name=f"zaudio-{self.description}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout)

    def run(self, sink: Sink) -> None:
        """Deliver every block to ``sink`` in the calling thread (instead of :meth:`start`)."""
        self._run(sink)

    def _run(self, sink: Sink) -> None:
        error: BaseException | None = None
        try:
            self._deliver(sink)
        except Exception as exc:  # reported through the sink, raised by the recorder
            log.debug("source %s failed", self.description, exc_info=True)
            error = exc
        if not self._stop.is_set():
            sink.end(error)

    def _deliver(self, sink: Sink) -> None:
        stop, rate, paced = self._stop, self.rate, self.paced
        start = time.monotonic()
        wall0 = clock.now()
        index = 0
        for block in self.blocks():
            if stop.is_set():
                return
            if paced:
                # time.sleep wakes closer to the deadline than Event.wait, and
                # costs less; sleeping in slices of at most 50 ms keeps stop() prompt.
                due = start + (index + len(block)) / rate
                while (delay := due - time.monotonic()) > 0:
                    time.sleep(min(delay, 0.05))
                    if stop.is_set():
                        return
            sink.put(block, wall0 + index / rate)
            index += len(block)


Factory = Callable[[str | None, SourceOptions], Source]

#: spec name -> "module:factory"; factory(argument or None, options) -> Source
SOURCES: dict[str, str] = {
    "mic": "zaudio.sources.mic:default_input",
    "device": "zaudio.sources.mic:device",
    "sine": "zaudio.sources.synth:sine",
    "noise": "zaudio.sources.synth:noise",
    "silence": "zaudio.sources.synth:silence",
    "speech": "zaudio.sources.synth:speech",
    "bursts": "zaudio.sources.synth:speech",
    "chirp": "zaudio.sources.synth:chirp",
    "file": "zaudio.sources.file:open_file",
    "-": "zaudio.sources.stdin:stdin",
}

_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")


def register_source(name: str, target: str | Factory) -> None:
    """Make ``--source NAME[:ARG]`` build a source with ``target`` (import string or callable)."""
    if isinstance(target, str):
        SOURCES[name] = target
    else:
        _FACTORIES[name] = target
        SOURCES[name] = f"<registered {name}>"


_FACTORIES: dict[str, Factory] = {}


def _factory(name: str) -> Factory:
    if name in _FACTORIES:
        return _FACTORIES[name]
    factory: Factory = import_from_string(SOURCES[name])
    return factory


def _known() -> str:
    return "mic, device:N, device:NAME, sine:FREQ, noise, speech, chirp, file:PATH or -"


def open_source(
    spec: str,
    *,
    rate: int | None = None,
    channels: int | None = None,
    block: str | int = DEFAULT_BLOCK,
    fast: bool = False,
    loop: bool = False,
) -> Source:
    """Build the source a ``--source`` spec names.

    Parameters
    ----------
    spec : str
        ``mic``, ``device:N``, ``device:NAME``, ``sine:FREQ[:AMP]``,
        ``noise[:AMP]``, ``speech[:AMP]``, ``chirp[:F0[:F1[:PERIOD]]]``,
        ``file:PATH`` (or a bare path), ``-`` (raw float32 on stdin), or a name
        added with :func:`register_source`.
    rate, channels : int, optional
        The stream's format (a file's own by default, else 48000 Hz, mono).
    block : str or int
        Frames per block, as a duration (``"10ms"``) or a frame count.
    fast : bool
        Deliver as fast as the bus takes blocks instead of in real time.
    loop : bool
        Repeat a file when it ends.

    Raises
    ------
    ConfigError
        Unknown source, bad argument, missing file, bad block size.
    DeviceError
        PortAudio missing or no such device (a ConfigError).
    """
    options = SourceOptions(rate=rate, channels=channels, block=block, fast=fast, loop=loop)
    name, sep, arg = spec.partition(":")
    if spec == "-":
        name, arg = "-", ""
    elif name not in SOURCES:
        if os.path.exists(spec) or os.sep in spec or spec.lower().endswith(_SUFFIXES):
            name, arg, sep = "file", spec, ":"
        else:
            raise ConfigError(f"unknown source {spec!r}: use {_known()}")
    return _factory(name)(arg if sep else None, options)
