"""``mic``, ``device:N``, ``device:NAME``: a sounddevice input stream.

The only module that imports sounddevice. Its callback copies the block and
hands it to the sink (the recorder's bounded queue, never blocking); it never
touches a socket. Input overflows PortAudio reports are counted here.

Each block's capture time is PortAudio's ADC time of its first frame mapped to
the wall clock (``now - (currentTime - inputBufferAdcTime)``); where the host API
gives no ADC time, the callback's time minus the block's duration.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from zaudio import clock
from zaudio.errors import DeviceError
from zaudio.sources import Sink, Source, SourceOptions

__all__ = [
    "MicSource",
    "default_input",
    "device",
    "import_sounddevice",
    "list_devices",
    "portaudio_missing",
]

log = logging.getLogger(__name__)

PORTAUDIO_MISSING = "PortAudio library not found: apt-get install libportaudio2"


def portaudio_missing(exc: OSError) -> DeviceError:
    """The one-line error for the ``OSError`` that ``import sounddevice`` raises without PortAudio."""
    return DeviceError(PORTAUDIO_MISSING)


def import_sounddevice() -> Any:
    """``import sounddevice``, or :class:`DeviceError` saying what to install."""
    try:
        import sounddevice
    except OSError as exc:
        raise portaudio_missing(exc) from exc
    return sounddevice


def _unknown(device: int | str, why: object) -> DeviceError:
    return DeviceError(
        f"no audio input device {device!r} ({why}): run `zaudio devices` to list them"
    )


def resolve(device: int | str | None) -> dict[str, Any]:
    """The sounddevice description of an input device (None: the default input).

    Raises
    ------
    DeviceError
        No PortAudio, no such input device, or no default input.
    """
    sd = import_sounddevice()
    try:
        info: dict[str, Any] = sd.query_devices(device, "input")
    except ValueError as exc:
        raise _unknown("default" if device is None else device, exc) from exc
    except sd.PortAudioError as exc:
        if device is None:
            raise DeviceError(
                "no default audio input device (is a sound server such as PulseAudio "
                "running?): run `zaudio devices`, or pass --source device:N"
            ) from exc
        raise _unknown(device, exc) from exc
    return info


class MicSource(Source):
    """A sounddevice ``InputStream`` delivering float32 blocks of ``block`` frames."""

    def __init__(self, device: int | str | None, options: SourceOptions) -> None:
        info = resolve(device)
        self.device = device
        self.rate, self.channels = options.format()
        self.block = options.frames(self.rate)
        if self.channels > int(info["max_input_channels"]):
            raise DeviceError(
                f"audio input {info['name']!r} has {info['max_input_channels']} channel(s), "
                f"not {self.channels}: pass a smaller --channels"
            )
        self.description = f"device {info['name']}"
        self.overflows = 0
        self._sink: Sink | None = None
        self._stopping = threading.Event()
        sd = import_sounddevice()
        try:
            self._stream = sd.InputStream(
                device=device,
                samplerate=self.rate,
                channels=self.channels,
                dtype="float32",
                blocksize=self.block,
                callback=self._callback,
                finished_callback=self._finished,
            )
        except (sd.PortAudioError, ValueError) as exc:
            raise DeviceError(
                f"cannot open audio input {info['name']!r} at {self.rate} Hz, "
                f"{self.channels} channel(s): {exc}"
            ) from exc

    def _callback(self, indata: Any, frames: int, time: Any, status: Any) -> None:
        # PortAudio's thread: copy, stamp, hand over; nothing that can block.
        if status and status.input_overflow:
            self.overflows += 1
        adc = time.inputBufferAdcTime
        if adc > 0:
            t = clock.now() - (time.currentTime - adc)
        else:
            t = clock.now() - frames / self.rate
        sink = self._sink
        if sink is not None:
            sink.put(indata.copy(), t)

    def _finished(self) -> None:
        sink = self._sink
        if sink is not None and not self._stopping.is_set():
            sink.end(DeviceError(f"audio input {self.description} stopped"))

    def start(self, sink: Sink) -> None:
        self._sink = sink
        sd = import_sounddevice()
        try:
            self._stream.start()
        except sd.PortAudioError as exc:
            raise DeviceError(f"cannot start audio input {self.description}: {exc}") from exc

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._stream.stop(ignore_errors=True)
        self._stream.close(ignore_errors=True)
        self._sink = None

    def stats(self) -> dict[str, int]:
        return {"overflows": self.overflows}


def _device(arg: str) -> int | str:
    return int(arg) if arg.strip().isdigit() else arg


def default_input(arg: str | None, options: SourceOptions) -> MicSource:
    """``mic`` (the default input device); ``mic:X`` is taken as ``device:X``."""
    return MicSource(_device(arg) if arg else None, options)


def device(arg: str | None, options: SourceOptions) -> MicSource:
    """``device:N`` or ``device:NAME`` (a substring of the name, as sounddevice matches)."""
    if not arg:
        raise DeviceError("source device needs an index or a name: device:N or device:NAME")
    return MicSource(_device(arg), options)


def list_devices() -> tuple[list[dict[str, Any]], int | None]:
    """Every device sounddevice sees (with ``api``, its host API's name), and the default input.

    Returns
    -------
    (list of dict, int or None)
        sounddevice's device dicts, and the index of the default input device.
    """
    sd = import_sounddevice()
    apis = [str(a["name"]) for a in sd.query_hostapis()]
    devices = []
    for d in sd.query_devices():
        api = d.get("hostapi")
        devices.append({**d, "api": apis[api] if 0 <= api < len(apis) else "?"})
    try:
        default = int(sd.default.device[0])
    except (TypeError, ValueError, IndexError):
        default = None
    if default is not None and not 0 <= default < len(devices):
        default = None
    return devices, default
