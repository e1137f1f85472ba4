"""Format adaptation on subscribe: every block converted to the rate, channels and
sample type a processor (or :func:`zaudio.subscribe`) asked for, before it is called.

::

    convert.py    Format, the per-stream Adapter (channels, rate, int16), adapted()
    resample.py   the streaming polyphase resampler (2 ms delay at 48 kHz -> 16 kHz)
"""

from zaudio.adapt.convert import DTYPES, Adapter, Format, adapted, check_format, to_int16
from zaudio.adapt.resample import Resampler

__all__ = ["DTYPES", "Adapter", "Format", "Resampler", "adapted", "check_format", "to_int16"]
