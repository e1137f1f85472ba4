"""``vad``: energy voice/activity detection with hangover and minimum durations."""

from __future__ import annotations

from typing import Any

import numpy as np

from zaudio.processors._dsp import (
    Block,
    BlockInfo,
    frames_param,
    number_param,
    power_dbfs,
    seconds_param,
)

__all__ = ["VAD"]


class VAD:
    """Energy voice/activity detection.

    The stream is cut into contiguous analysis frames of ``frame`` length (carried across
    blocks, so the block size does not matter); a frame is *active* when its RMS over all
    channels reaches ``threshold_dbfs``. Speech **starts** once active frames have run for
    ``min_speech``, and the start is placed at the first frame of that run. Speech **ends**
    once inactive frames have run for ``max(min_silence, hangover)``, and the end is placed
    ``hangover`` after the first inactive frame: shorter pauses are bridged, and each
    segment is held ``hangover`` past its last active frame. All durations are rounded to
    whole analysis frames.

    Parameters
    ----------
    threshold_dbfs : float, optional
        Frame RMS (dBFS) at or above which a frame is active, -40.0 by default (speech at
        a normal level on a close microphone reads -30 to -15 dBFS, a quiet room below -50).
    frame : str or int or float, optional
        Analysis frame length: frames (``480``), a duration (``"10ms"``) or seconds
        (``0.01``); ``"10ms"`` by default.
    min_speech : str or float, optional
        Shortest run of active frames that starts speech (shorter clicks are ignored),
        ``"100ms"`` by default; 0 means one frame.
    min_silence : str or float, optional
        Shortest pause that ends speech, ``"200ms"`` by default.
    hangover : str or float, optional
        How long speech is held after its last active frame, ``"100ms"`` by default.

    Returns (per block)
    -------------------
    dict
        ``{"speech": bool, "rms_dbfs": float}``: the state after this block's last
        complete frame and the block's RMS over all channels. When the state changed
        during the block, it also carries the change: ``"change"`` (``"start"`` or
        ``"end"``), ``"index"`` (stream frame index where it changed) and ``"t"`` (its
        time, from the block's ``t``), and ``"changes"``, the list of every change in the
        block in order (one entry unless a block is longer than the minimum durations).

    Notes
    -----
    A lost stretch (``info.gap``, or an index that skips) drops the partial analysis
    frame and breaks the current run, but keeps the state; overlapping windows are read
    once (the part already seen is skipped). A new ``src`` (the recorder restarted)
    starts from silence.
    """

    def __init__(
        self,
        threshold_dbfs: float = -40.0,
        frame: str | float = "10ms",
        min_speech: str | float = "100ms",
        min_silence: str | float = "200ms",
        hangover: str | float = "100ms",
    ) -> None:
        self.threshold_dbfs = number_param(threshold_dbfs, "threshold_dbfs", high=0.0)
        self._threshold_power = 10.0 ** (self.threshold_dbfs / 10.0)
        frames_param(frame, "frame", 48000)  # reject a bad value now, convert at setup
        self.frame = frame
        self.min_speech = seconds_param(min_speech, "min_speech", allow_zero=True)
        self.min_silence = seconds_param(min_silence, "min_silence", allow_zero=True)
        self.hangover = seconds_param(hangover, "hangover", allow_zero=True)
        self._rate = 0
        self._src = ""

    def setup(self, info: BlockInfo) -> None:
        """Convert durations to frames at ``info.rate`` and start from silence."""
        rate = info.rate
        self._rate = rate
        self._src = info.src
        self._length = frames_param(self.frame, "frame", rate)

        def frames(seconds: float) -> int:
            return max(1, round(seconds * rate / self._length))

        self._speech_frames = frames(self.min_speech)
        self._silence_frames = frames(max(self.min_silence, self.hangover))
        self._hang = round(self.hangover * rate / self._length) * self._length
        self._speech = False
        self._onset: int | None = None  # first frame of the active run (in silence)
        self._offset: int | None = None  # first frame of the inactive run (in speech)
        self._restart(info.index)

    def _restart(self, index: int) -> None:
        self._start = index  # stream index of the pending analysis frame
        self._acc = 0.0  # its sum of squares so far
        self._filled = 0  # its frames so far

    def __call__(self, block: Block, info: BlockInfo) -> dict[str, Any]:
        if info.src != self._src or info.rate != self._rate:
            self.setup(info)
        n = block.shape[0]
        expected = self._start + self._filled
        skip = 0
        if info.index > expected:
            self._restart(info.index)
            self._onset = self._offset = None
        elif info.index < expected:  # overlapping windows: read only what is new
            skip = min(expected - info.index, n)
        power = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        result: dict[str, Any] = {
            "speech": False,
            "rms_dbfs": round(power_dbfs(float(power.sum()) / power.size / block.shape[1]), 2),
        }
        changes: list[dict[str, Any]] = []
        length, scale = self._length, 1.0 / (self._length * block.shape[1])
        pos = skip
        if self._filled and pos < n:
            take = min(length - self._filled, n - pos)
            self._acc += float(power[pos : pos + take].sum())
            self._filled += take
            pos += take
            if self._filled == length:
                self._step(self._acc * scale, changes)
                self._restart(self._start + length)
        whole = (n - pos) // length
        if whole:
            sums = power[pos : pos + whole * length].reshape(whole, length).sum(axis=1)
            for s in sums:
                self._step(float(s) * scale, changes)
                self._start += length
            pos += whole * length
        if pos < n:
            self._acc = float(power[pos:].sum())
            self._filled = n - pos
        result["speech"] = self._speech
        if changes:
            for change in changes:
                change["t"] = round(info.t + (change["index"] - info.index) / self._rate, 6)
            result.update(changes[-1])
            result["changes"] = changes
        return result

    def _step(self, mean_square: float, changes: list[dict[str, Any]]) -> None:
        """Advance the state machine by the analysis frame starting at ``self._start``."""
        start, end = self._start, self._start + self._length
        active = mean_square >= self._threshold_power
        if not self._speech:
            if not active:
                self._onset = None
                return
            if self._onset is None:
                self._onset = start
            if end - self._onset >= self._speech_frames * self._length:
                self._speech, self._offset = True, None
                changes.append({"change": "start", "index": self._onset})
        else:
            if active:
                self._offset = None
                return
            if self._offset is None:
                self._offset = start
            if end - self._offset >= self._silence_frames * self._length:
                self._speech, self._onset = False, None
                changes.append({"change": "end", "index": self._offset + self._hang})
