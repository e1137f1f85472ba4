"""``writer``: record a stream to a file (WAV, FLAC, OGG) with exact samples and times."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from zaudio.errors import ConfigError, ZaudioError
from zaudio.processors._dsp import Block, BlockInfo, seconds_param

__all__ = ["Writer"]

log = logging.getLogger(__name__)

#: Default subtype per extension: lossless float WAV; FLAC cannot hold floats.
_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24"), ".ogg": ("OGG", "VORBIS")}

_ZEROS = 65536  # frames of silence written per call when filling a gap


class _File:
    """One open output file of one stream."""

    def __init__(self, path: Path, rate: int, channels: int, fmt: str, subtype: str) -> None:
        import soundfile

        try:
            self.sound = soundfile.SoundFile(
                path, "w", samplerate=rate, channels=channels, format=fmt, subtype=subtype
            )
        except (soundfile.LibsndfileError, OSError, ValueError) as exc:
            raise ConfigError(f"writer cannot create {str(path)!r}: {exc}") from exc
        self.path, self.rate, self.channels = path, rate, channels
        self.frames = 0
        self.nonfinite = 0  # NaN/inf samples written as 0.0

    def close(self) -> dict[str, Any]:
        self.sound.close()
        log.info(
            "wrote %s (%d frames, %d non-finite samples written as 0.0)",
            self.path,
            self.frames,
            self.nonfinite,
        )
        return {"path": str(self.path), "frames": self.frames, "nonfinite": self.nonfinite}


class _Sink:
    """What the writer remembers of one stream: its file and the index it has written up to."""

    def __init__(self, index: int) -> None:
        self.file: _File | None = None
        self.next = index  # stream index the next frame written would have
        self.number = 0  # files opened so far
        self.zeros: Block | None = None
        self.warned = False  # NaN/inf samples seen (logged once)


class Writer:
    """Write each stream it receives to a sound file, sample for sample.

    The file holds exactly the samples published, in order. Where the stream is, and
    what a block that is not there means, is the runtime's call (its stream tracker:
    a duplicate or a forged block never reaches the writer): the writer follows
    ``info.gap`` and ``info.restart``. After ``info.gap`` (frames were lost) the missing
    length, from the block's ``index`` to the end of what was written, is written as
    silence, so a frame's position in the file is its stream index minus the first one:
    file time stays stream time. Overlapping windows are written once (the part
    already written is skipped); frames skipped between windows on purpose (``--hop``
    longer than ``--window``: no ``gap``) are not filled. After ``info.restart`` (a new publisher run),
    writing continues in the same file without a fill, since the time between the two
    runs is unknown; if the new run has another rate or channel count, the file is
    finished and the next one (numbered like a rotation) is started.

    Parameters
    ----------
    path : str, optional
        Output file, ``"{stream}.wav"`` by default; ``{stream}`` is replaced by the stream
        name (``/`` becomes ``_``), which is required when several streams arrive. The
        extension picks the format: ``.wav`` (32-bit float by default: lossless),
        ``.flac`` (24-bit PCM by default) or ``.ogg`` (Vorbis, lossy).
    subtype : str, optional
        A soundfile subtype overriding the default (``PCM_16``, ``PCM_24``, ``FLOAT``...).
    segment : str or float, optional
        Rotate files every this much audio (``"10m"``, ``"30s"``, or seconds): files are
        then numbered ``out-0001.wav``, ``out-0002.wav``..., each exactly ``segment``
        long except the last.

    Returns (per block)
    -------------------
    None or dict
        None, or ``{"files": [{"path": str, "frames": int, "nonfinite": int}, ...]}``
        when this block finished files (a rotation).

    NaN and infinite samples are not audio (a NaN in a WAV makes players and tools
    fail or click): each is written as 0.0, so the file keeps its length and time.
    The first of a stream is logged once (WARNING); each file's summary says how many
    it holds (``nonfinite``), and the processor's stats count them per stream.

    Notes
    -----
    ``close()`` (called on shutdown, including SIGINT/SIGTERM) finishes every file so
    its header holds the right length.
    """

    def __init__(
        self,
        path: str = "{stream}.wav",
        subtype: str | None = None,
        segment: str | float | None = None,
    ) -> None:
        if not isinstance(path, str) or not path:
            raise ConfigError(f"invalid -p path={path!r}: expected a file name such as out.wav")
        try:
            example = Path(path.format(stream="x"))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"invalid -p path={path!r}: the only placeholder is {{stream}} ({exc})"
            ) from None
        suffix = example.suffix.lower()
        if suffix not in _FORMATS:
            raise ConfigError(f"invalid -p path={path!r}: use a .wav, .flac or .ogg file name")
        self.path = path
        self.format, default = _FORMATS[suffix]
        self.subtype = default if subtype is None else subtype
        if not isinstance(self.subtype, str):
            raise ConfigError(f"invalid -p subtype={subtype!r}: expected e.g. PCM_16 or FLOAT")
        import soundfile

        if not soundfile.check_format(self.format, self.subtype.upper()):
            raise ConfigError(
                f"invalid -p subtype={subtype!r}: {self.format} files cannot hold it "
                f"(choose from {', '.join(soundfile.available_subtypes(self.format))})"
            )
        self.subtype = self.subtype.upper()
        self.segment = None if segment is None else seconds_param(segment, "segment")
        if self.segment is not None and self.segment < 0.001:
            raise ConfigError(f"invalid -p segment={segment!r}: use at least 1ms, e.g. 10m")
        self._sinks: dict[str, _Sink] = {}

    def setup(self, info: BlockInfo) -> None:
        """Check that the first file can go where ``path`` says."""
        parent = self._path(info.stream, 0).parent
        if not parent.is_dir():
            raise ConfigError(f"invalid -p path={self.path!r}: no directory {str(parent)!r}")

    def _path(self, stream: str, number: int) -> Path:
        path = Path(self.path.format(stream=stream.replace("/", "_")))
        if self.segment is None and number <= 1:
            return path
        return path.with_name(f"{path.stem}-{number:04d}{path.suffix}")

    def __call__(self, block: Block, info: BlockInfo) -> dict[str, Any] | None:
        sink = self._sinks.get(info.stream)
        if sink is None:
            if self._sinks and "{stream}" not in self.path:
                raise ZaudioError(
                    f"writer got a second stream ({info.stream!r}) but -p path={self.path!r} "
                    "has no {stream} placeholder"
                )
            sink = self._sinks[info.stream] = _Sink(info.index)
        finished: list[dict[str, Any]] = []
        if info.restart:
            log.info("stream %s restarted (new src): continuing without fill", info.stream)
            sink.next = info.index
        file = sink.file
        if file is not None and (file.rate != info.rate or file.channels != info.channels):
            finished.append(file.close())
            sink.file = None
        start = 0
        if info.gap and info.index > sink.next:
            self._fill(sink, info, info.index - sink.next, finished)
        elif info.index < sink.next:  # overlapping windows: write only what is new
            start = min(sink.next - info.index, block.shape[0])
        if start < block.shape[0]:
            self._write(sink, info, block[start:], finished, check=True)
        sink.next = max(sink.next, info.index + block.shape[0])
        return {"files": finished} if finished else None

    def _finite(self, sink: _Sink, file: _File, stream: str, data: Block) -> Block:
        """A copy of ``data`` with its NaN and infinite samples set to 0.0, counted."""
        bad = ~np.isfinite(data)
        count = int(np.count_nonzero(bad))
        if not sink.warned:
            sink.warned = True
            log.warning(
                "stream %s: NaN or infinite samples, written as 0.0 (counted in each file's "
                "summary and the processor's nonfinite; logged once per stream)",
                stream,
            )
        file.nonfinite += count
        data = data.copy()
        data[bad] = 0.0
        return data

    def _write(
        self,
        sink: _Sink,
        info: BlockInfo,
        data: Block,
        finished: list[dict[str, Any]],
        check: bool = False,
    ) -> None:
        """Append ``data``, opening files as needed and finishing each full segment.

        ``check``: replace (and count) NaN and infinite samples first (received audio;
        the silence of a fill needs no check).
        """
        while data.shape[0]:
            file = sink.file
            if file is None:
                sink.number += 1
                path = self._path(info.stream, sink.number)
                log.info("writing %s to %s", info.stream, path)
                file = sink.file = _File(path, info.rate, info.channels, self.format, self.subtype)
            if self.segment is None:
                part = data
            else:
                part = data[: round(self.segment * file.rate) - file.frames]
            if check and not np.isfinite(part).all():
                part = self._finite(sink, file, info.stream, part)
            file.sound.write(part)
            file.frames += part.shape[0]
            data = data[part.shape[0] :]
            if self.segment is not None and file.frames >= round(self.segment * file.rate):
                finished.append(file.close())
                sink.file = None

    def _fill(
        self, sink: _Sink, info: BlockInfo, missing: int, finished: list[dict[str, Any]]
    ) -> None:
        """Write ``missing`` frames of silence."""
        log.debug("stream %s: %d frames lost, writing silence", info.stream, missing)
        zeros = sink.zeros
        if (
            zeros is None
            or zeros.shape[0] < min(missing, _ZEROS)
            or zeros.shape[1] != info.channels
        ):
            zeros = sink.zeros = np.zeros((min(missing, _ZEROS), info.channels), np.float32)
        while missing:
            chunk = min(missing, zeros.shape[0])
            self._write(sink, info, zeros[:chunk], finished)
            missing -= chunk

    def close(self) -> None:
        """Finish every open file (its header then holds the right length)."""
        for sink in self._sinks.values():
            if sink.file is not None:
                sink.file.close()
                sink.file = None
