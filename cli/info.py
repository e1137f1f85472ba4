"""``zaudio info``: what a capture holds."""

from __future__ import annotations

import json

import click


@click.command()
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(files: tuple[str, ...], as_json: bool) -> None:
    """Streams (rate, channels, duration, first/last t), gaps, results per processor,
    damage and whether the capture ends torn. Rotation parts are read in the order given."""
    from zaudio.capture.summary import summarize

    s = summarize(files)
    if as_json:
        click.echo(json.dumps(s.as_dict(), indent=2))
        return
    d = s.as_dict()
    click.echo(f"{', '.join(s.files)}: {s.messages} messages")
    for name, st in d["streams"].items():
        click.echo(
            f"  audio/{name}: {st['rate']} Hz, {st['channels']} ch, {st['frames']} frames "
            f"({st['duration']:.3f} s), t {st['first_t']:.6f} .. {st['last_t']:.6f}, "
            f"{st['gaps']} gaps ({st['lost_frames']} frames), {st['restarts']} restarts"
        )
    for proc, n in s.results.items():
        click.echo(f"  result/{proc}: {n} results")
    seen = s.seen
    if seen:
        click.echo(
            f"  seen by the capture: {seen.get('gaps', 0)} blocks missing "
            f"({seen.get('lost_frames', 0)} frames), {seen.get('malformed', 0)} malformed"
        )
    if s.malformed:
        click.echo(f"  malformed messages: {s.malformed}")
    if s.corrupt:
        click.echo(f"  corrupt: {s.corrupt} damaged regions skipped ({s.corrupt_bytes} bytes)")
    if s.torn_bytes:
        click.echo(f"  ends torn: {s.torn_bytes} bytes after the last whole record (ignored)")
    elif not s.ended:
        click.echo("  ends without an end record (the capture was killed)")
    else:
        click.echo("  ends cleanly")
