"""The ``zaudio`` click group.

Commands are imported only when they run (``zaudio --help`` imports neither zmq
nor numpy), and every error becomes one line here: a
:class:`~zaudio.errors.ConfigError` or a usage error exits 2, any other
:class:`~zaudio.errors.ZaudioError` exits 1.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from zaudio._children import die_with_parent
from zaudio._version import __version__
from zaudio.errors import ConfigError, ZaudioError
from zaudio.loader import import_from_string

# name -> (import string, one-line help); the help is shown without importing.
COMMANDS: dict[str, tuple[str, str]] = {
    "proxy": ("zaudio.cli.proxy:proxy", "Run the forwarder and the control channel."),
    "ls": ("zaudio.cli.ls:ls", "List live nodes and streams with their counters."),
    "keygen": ("zaudio.cli.keygen:keygen", "Write CurveZMQ keypairs for --keys."),
    "demo": ("zaudio.cli.demo:demo", "Run proxy, recorder and processors on a synthetic signal."),
    "record": ("zaudio.cli.record:record", "Publish an audio stream (device, signal, file)."),
    "devices": ("zaudio.cli.devices:devices", "List audio devices (what sounddevice sees)."),
    "web": ("zaudio.cli.web:web", "Serve the browser capture page and the live monitor."),
    "process": ("zaudio.cli.process:process", "Run a function or class on every block of streams."),
    "bench": ("zaudio.cli.bench:bench", "Measure zaudio against plain pyzmq in the same run."),
    "top": ("zaudio.cli.top:top", "Live dashboard of streams, processors and publishers."),
    "up": ("zaudio.cli.up:up", "Run and supervise a whole pipeline from a TOML file."),
    "check": ("zaudio.cli.check:check", "Check a pipeline file: each mistake as FILE:LINE."),
    "capture": ("zaudio.cli.capture:capture", "Record the bus (audio and results) to a file."),
    "info": ("zaudio.cli.info:info", "Show a capture's streams, gaps, results and damage."),
    "replay": ("zaudio.cli.replay:replay", "Republish a capture with its original timing."),
    "bridge": (
        "zaudio.cli.bridge:bridge",
        "Bridge LSL: a bus stream as an outlet, or LSL to the bus.",
    ),
    "export": ("zaudio.cli.export:export", "Write a capture's stream to WAV/FLAC, or all to XDF."),
    "results": (
        "zaudio.cli.results:results",
        "Print a processor's or group's results (--ordered).",
    ),
    "sequence": (
        "zaudio.cli.sequence:sequence",
        "Publish a group's audio output as one stream in index order.",
    ),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command: click.Command = import_from_string(entry[0])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="zaudio")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """zaudio: a real-time audio bus on ZeroMQ.

    Run a proxy, publish audio with recorders, and process it with any number of
    processors, on one machine or across a LAN.
    """
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s")


def fail(message: str, code: int) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the group, turn errors into one line."""
    die_with_parent()  # a node that `zaudio up` or `zaudio demo` started
    try:
        rv: Any = cli.main(
            args=argv, prog_name="zaudio", standalone_mode=False, auto_envvar_prefix="ZAUDIO"
        )
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(exc.format_message() + hint, 2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        fail(exc.format_message(), exc.exit_code)
    except ConfigError as exc:
        fail(str(exc), 2)
    except ZaudioError as exc:
        fail(str(exc), 1)
    sys.exit(rv if isinstance(rv, int) else 0)
