"""``file:PATH`` (or a bare path): WAV, FLAC, OGG and whatever else libsndfile reads.

Blocks carry the file's own samples at its own rate and channel count (no
resampling, no conversion beyond libsndfile's to float32: a float32 WAV comes out
bit for bit). Paced in real time unless ``--fast``; ``--loop`` starts over at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import soundfile as sf

from zaudio.errors import ConfigError
from zaudio.sources import Block, SourceOptions, ThreadSource

__all__ = ["FileSource", "open_file"]


class FileSource(ThreadSource):
    """Blocks read from an audio file (the last one may be shorter)."""

    def __init__(self, path: str, options: SourceOptions) -> None:
        super().__init__()
        if not os.path.isfile(path):
            what = "is a directory, not a file" if os.path.isdir(path) else "does not exist"
            raise ConfigError(f"audio file {path!r} {what}: pass file:PATH of a WAV, FLAC or OGG")
        try:
            self._file = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            raise ConfigError(f"cannot read audio file {path!r}: {exc}") from exc
        rate, channels = self._file.samplerate, self._file.channels
        try:
            if options.rate is not None and options.rate != rate:
                raise ConfigError(
                    f"{path!r} is {rate} Hz but --rate says {options.rate}: "
                    "files are published at their own rate, drop --rate"
                )
            if options.channels is not None and options.channels != channels:
                raise ConfigError(
                    f"{path!r} has {channels} channel(s) but --channels says "
                    f"{options.channels}: drop --channels"
                )
            if self._file.frames == 0:
                raise ConfigError(f"audio file {path!r} has no samples")
            self.block = options.frames(rate)
        except ConfigError:
            self._file.close()
            raise
        self.path = path
        self.rate, self.channels = rate, channels
        self.loop = options.loop
        self.paced = not options.fast
        self.live = not options.fast
        self.description = f"file {os.path.basename(path)}"

    def blocks(self) -> Iterator[Block]:
        f, n = self._file, self.block
        try:
            while True:
                block = f.read(n, dtype="float32", always_2d=True)
                if len(block):
                    yield block
                if len(block) < n:
                    if not self.loop:
                        return
                    f.seek(0)
        finally:
            f.close()

    def stop(self) -> None:
        super().stop()
        if self._thread is None:  # never started: close here
            self._file.close()


def open_file(arg: str | None, options: SourceOptions) -> FileSource:
    """``file:PATH``."""
    if not arg:
        raise ConfigError("source file needs a path: file:PATH")
    return FileSource(os.path.expanduser(arg), options)
