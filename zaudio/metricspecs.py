"""What ``zaudio proxy --metrics`` exports from heartbeats: for each heartbeat key, its
metric name (after the kind's prefix, e.g. ``zaudio_processor_``), type and help.

:mod:`zaudio.metrics` turns these tables into series at scrape time; docs/operations.md
lists the names (a test checks it lists every one).
"""

from __future__ import annotations

__all__ = [
    "KINDS",
    "PER_STREAM",
    "PROCESSOR",
    "PUBLISHER",
    "ROLES",
    "STREAM_BREAKDOWN",
    "SUBSCRIBER",
]

# heartbeat key -> (metric name after the kind's prefix, "counter" or "gauge", help);
# "a|b": the first of the keys the node sends
_Spec = tuple[str, str, str]
PROCESSOR: dict[str, _Spec] = {
    "received": ("received_blocks", "counter", "Blocks received from the bus."),
    "processed": ("processed_blocks", "counter", "Blocks (or windows) the function was called on."),
    "dropped": (
        "dropped_blocks",
        "counter",
        "Blocks its queue dropped because the function was slower than the stream.",
    ),
    "gaps": ("gaps", "counter", "Discontinuities in the input: blocks lost before the processor."),
    "lost_frames": ("lost_frames", "counter", "Frames missing in those gaps."),
    "rejected": (
        "rejected_blocks",
        "counter",
        "Blocks dropped because they disagreed with their stream's position.",
    ),
    "errors": ("errors", "counter", "Calls that raised plus malformed messages."),
    "published": ("published", "counter", "Results and output blocks published."),
    "unsent": ("unsent", "counter", "Results or output blocks that could not be published."),
    "queued": ("queued_blocks", "gauge", "Blocks waiting in its queue."),
    "lag": ("lag_seconds", "gauge", "Seconds behind live when the last call finished."),
    "rtf": (
        "realtime_factor",
        "gauge",
        "Processing time over audio duration; above 1 it cannot keep up.",
    ),
    "proc_time": ("call_duration_seconds", "gauge", "Mean seconds per call of the function."),
    "result_nonfinite": (
        "result_nonfinite",
        "counter",
        "NaN or infinite numbers in results, sent as null.",
    ),
}
# heartbeat keys holding {stream: count}: one series per input stream (label ``stream``)
PER_STREAM: dict[str, _Spec] = {
    "nonfinite": (
        "nonfinite_samples",
        "counter",
        "NaN or infinite samples received, per input stream.",
    ),
}
# counters of the per-stream breakdown, stats["streams"] = {stream: {key: n}} (zaudio.perstream):
# zaudio_processor_stream_<suffix>_total, labelled like the processor's totals plus ``stream``
STREAM_BREAKDOWN: dict[str, _Spec] = {
    "received": ("received_blocks", "counter", "Blocks of this input stream received."),
    "processed": (
        "processed_blocks",
        "counter",
        "Blocks (or windows) of this input stream the function was called on.",
    ),
    "dropped": (
        "dropped_blocks",
        "counter",
        "Blocks of this input stream its queue dropped (the function was slower).",
    ),
    "gaps": ("gaps", "counter", "Blocks of this input stream lost before the processor."),
    "lost_frames": ("lost_frames", "counter", "Frames of this input stream missing in gaps."),
    "failed": (
        "errors",
        "counter",
        "Calls on this input stream that raised or returned what cannot be published.",
    ),
}
PUBLISHER: dict[str, _Spec] = {
    "sent": ("sent_blocks", "counter", "Blocks sent to the bus."),
    "frames": ("sent_frames", "counter", "Frames sent to the bus."),
    "dropped": ("dropped_blocks", "counter", "Blocks dropped on the publisher's side."),
    "dropped_frames": ("dropped_frames", "counter", "Frames in those dropped blocks."),
    "overflows": ("input_overflows", "counter", "Input overflows the audio device reported."),
    "queue|queued": ("buffered_blocks", "gauge", "Blocks buffered, waiting to be sent."),
}
SUBSCRIBER: dict[str, _Spec] = {
    "received": ("received_blocks", "counter", "Blocks received from the bus."),
    "gaps": ("gaps", "counter", "Discontinuities in the input: blocks lost upstream."),
    "lost_frames": ("lost_frames", "counter", "Frames missing in those gaps."),
    "malformed": ("malformed_messages", "counter", "Messages dropped as malformed."),
}
KINDS = {"processor": PROCESSOR, "publisher": PUBLISHER, "subscriber": SUBSCRIBER}
ROLES = ("recorder", "processor", "subscriber")  # always exported, 0 when none is up
