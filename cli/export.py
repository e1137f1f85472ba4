"""``zaudio export``: a capture's stream to WAV/FLAC, or the whole capture to XDF."""

from __future__ import annotations

import click


@click.command()
@click.argument("file", metavar="FILE")
@click.argument("out", metavar="OUT")
@click.option("--stream", default=None, metavar="S", help="The stream to write (.wav/.flac).")
@click.option(
    "--split-gaps", is_flag=True, help="Start a new numbered file at each gap instead of zeros."
)
def export(file: str, out: str, stream: str | None, split_gaps: bool) -> None:
    """Write stream S of capture FILE to OUT.wav (float32, exact) or OUT.flac (24-bit),
    gaps zero-filled (reported) or split; or every stream and result to OUT.xdf."""
    from zaudio.errors import ConfigError

    if out.lower().endswith(".xdf"):
        from zaudio.capture.xdf import write_xdf

        if stream is not None or split_gaps:
            raise ConfigError("an XDF export holds every stream: drop --stream and --split-gaps")
        xdf = write_xdf([file], out)
        streams = ", ".join(f"{n} ({c} samples)" for n, c in xdf.samples.items())
        markers = ", ".join(f"{n} ({c} results)" for n, c in xdf.markers.items())
        click.echo(f"wrote {out}: {streams or 'no audio'}; markers: {markers or 'none'}", err=True)
        return
    from zaudio.capture.export import export_audio, stream_names

    if stream is None:
        names = stream_names([file])
        if len(names) != 1:
            raise ConfigError(
                f"{file} holds {len(names)} streams ({', '.join(names)}): choose one with --stream"
            )
        stream = names[0]
    report = export_audio([file], stream, out, split=split_gaps)
    files = ", ".join(str(p) for p in report.files)
    click.echo(f"wrote {report.frames} frames of {stream!r} to {files}", err=True)
    for t, frames in report.gaps:
        what = "zero-filled" if not split_gaps else "split"
        click.echo(f"gap at t={t:.6f}: {frames} frames missing ({what})", err=True)
