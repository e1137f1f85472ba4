"""``zaudio devices``: the audio devices sounddevice sees."""

from __future__ import annotations

import click


@click.command()
def devices() -> None:
    """List audio devices (index, name, channels, default rate; > marks the default input)."""
    from zaudio.errors import DeviceError
    from zaudio.sources.mic import list_devices

    found, default = list_devices()
    if not found:
        raise DeviceError(
            "no audio devices: PortAudio sees no sound card and no sound server "
            "(start PulseAudio, or use a synthetic source such as --source sine:440)"
        )
    rows = [("", "INDEX", "NAME", "IN", "OUT", "RATE", "API")]
    for i, d in enumerate(found):
        rows.append(
            (
                ">" if i == default else "",
                str(i),
                str(d["name"]),
                str(d["max_input_channels"]),
                str(d["max_output_channels"]),
                f"{d['default_samplerate']:g}",
                str(d["api"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    if default is None:
        click.echo("no default input device")
