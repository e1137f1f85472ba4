"""Capture and replay: the bus to a crash-safe file, and back; export to WAV, FLAC and XDF.

- :mod:`zaudio.capture.format`: the versioned record format and its reader;
- :mod:`zaudio.capture.writer`: the append-only, rotating writer;
- :mod:`zaudio.capture.node`: the capture node (``zaudio capture``);
- :mod:`zaudio.capture.summary`: reading captures back (``zaudio info``);
- :mod:`zaudio.capture.replay`: republishing a capture (``zaudio replay``);
- :mod:`zaudio.capture.export`: WAV/FLAC files (``zaudio export``);
- :mod:`zaudio.capture.xdf`: the XDF 1.0 writer (``zaudio export OUT.xdf``).

The file format is documented for other languages in docs/capture.md.
"""

from __future__ import annotations
