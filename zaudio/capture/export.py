"""Export one stream of a capture to WAV or FLAC, through soundfile.

WAV is written as 32-bit float: the recorded samples, bit for bit. FLAC has no
float format: it is 24-bit PCM (each sample within 2**-23 of the recording,
clipped to [-1, 1]). The blocks come in stream order (:func:`~zaudio.capture.summary.blocks`).
A gap (frames missing by ``index``) is zero-filled, its length reported; with
``split`` the file ends there instead and the next one begins (``OUT.0000.wav``,
``OUT.0001.wav``, ...). A restart (a new ``src``) is a gap of the time between
the end of the last block and the first block of the new run (zero-filled when
it is more than half a frame), or, with ``split``, a new file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zaudio.capture.summary import Captures, Piece, blocks
from zaudio.capture.writer import part_path
from zaudio.errors import ConfigError, ZaudioError
from zaudio.protocol import AudioHeader

__all__ = ["AudioExport", "export_audio", "stream_names"]

_SUBTYPES = {".wav": "FLOAT", ".flac": "PCM_24"}
_ZEROS = 65536  # frames of silence written at a time


@dataclass
class AudioExport:
    """What :func:`export_audio` wrote."""

    files: list[Path] = field(default_factory=list)
    frames: int = 0  # recorded frames written
    gaps: list[tuple[float, int]] = field(default_factory=list)  # (t, frames) missing
    zero_filled: int = 0


def stream_names(paths: list[str | os.PathLike[str]]) -> list[str]:
    """The audio streams a capture holds, in order of appearance."""
    names: dict[str, None] = {}
    with Captures(paths) as caps:
        for _rec, h, _block in caps.decoded():
            if type(h) is AudioHeader:
                names.setdefault(h.stream)
    return list(names)


def export_audio(
    paths: list[str | os.PathLike[str]],
    stream: str,
    out: str | os.PathLike[str],
    *,
    split: bool = False,
) -> AudioExport:
    """Write stream ``stream`` of the capture ``paths`` to ``out`` (.wav or .flac).

    Raises
    ------
    ConfigError
        Unknown stream, an output type other than .wav/.flac, or a stream whose
        format changes while ``split`` is off.
    """
    import soundfile as sf

    out = Path(out)
    subtype = _SUBTYPES.get(out.suffix.lower())
    if subtype is None:
        raise ConfigError(f"cannot export to {out}: use a .wav, .flac or .xdf file name")
    names = stream_names(paths)
    if stream not in names:
        raise ConfigError(
            f"no stream {stream!r} in {', '.join(map(str, paths))}: it holds "
            f"{', '.join(names) or 'no audio'} (see 'zaudio info')"
        )
    report = AudioExport()
    f: Any = None
    end_t = 0.0
    try:
        with Captures(paths) as caps:
            for p in blocks(caps.decoded()):
                h = p.header
                if h.stream != stream:
                    continue
                missing = _missing(p, end_t)
                if missing:
                    report.gaps.append((h.t, missing))
                if f is None or (split and (missing or p.restart)) or _changed(f, h):
                    if f is not None and not split:
                        raise ConfigError(
                            f"stream {stream!r} changes format at t={h.t:.6f} "
                            f"({f.samplerate} Hz {f.channels} ch -> {h.rate} Hz {h.channels} ch): "
                            "export it with --split-gaps"
                        )
                    if f is not None:
                        f.close()
                    path = part_path(out, len(report.files)) if split else out
                    f = sf.SoundFile(path, "w", h.rate, h.channels, subtype)
                    report.files.append(path)
                elif missing:
                    _silence(f, missing, h.channels)
                    report.zero_filled += missing
                f.write(np.asarray(p.block))
                report.frames += h.frames
                end_t = h.t + h.frames / h.rate
    except (OSError, RuntimeError) as exc:  # soundfile's LibsndfileError is a RuntimeError
        if isinstance(exc, ZaudioError):
            raise
        raise ConfigError(f"cannot write {out}: {exc}") from None
    finally:
        if f is not None:
            f.close()
    return report


def _missing(p: Piece, end_t: float) -> int:
    """Frames missing before ``p``: its gap, or the time since the last run ended."""
    if p.lost:
        return p.lost
    if p.restart:
        h = p.header
        return max(0, round((h.t - end_t) * h.rate))
    return 0


def _changed(f: Any, h: AudioHeader) -> bool:
    return bool(f.samplerate != h.rate or f.channels != h.channels)


def _silence(f: Any, frames: int, channels: int) -> None:
    zeros = np.zeros((min(frames, _ZEROS), channels), np.float32)
    while frames > 0:
        n = min(frames, _ZEROS)
        f.write(zeros[:n])
        frames -= n
