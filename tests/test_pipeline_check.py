"""``zaudio check``: every mistake of a pipeline file, each on its line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import tomllib

from tests.helpers import ROOT, run
from zaudio.importer import BUILTINS
from zaudio.pipeline import check, load
from zaudio.pipeline.lines import locate

GOOD = """\
[proxy]
port = 15555

[recorder.tone]
source = "sine:440"

[processor.level]
function = "level"
topics = ["tone"]
"""


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> list[tuple[int, str]]:
    pipeline, found = check(write(tmp_path, text))
    assert pipeline is None and found
    return [(p.line, f"{p.what} — {p.fix}") for p in found]


def one(tmp_path: Path, text: str) -> tuple[int, str]:
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


def test_the_shipped_example_checks_and_maps_to_the_cli(tmp_path: Path) -> None:
    pipeline = load(ROOT / "examples" / "pipeline.toml")
    assert [(n.kind, n.name) for n in pipeline.nodes] == [
        ("proxy", "proxy"),
        ("recorder", "tone"),
        ("recorder", "voice"),
        ("processor", "gain"),
        ("processor", "level"),
        ("processor", "vad"),
    ]
    assert pipeline.control == "tcp://127.0.0.1:5555"
    voice = pipeline.nodes[2]
    assert voice.args == (
        "record", "--source", "speech", "--block", "20ms", "--stream", "voice",
        "--proxy", "tcp://127.0.0.1:5555",
    )  # fmt: skip
    gain = pipeline.nodes[3]
    assert gain.args == (
        "process", "gain.py:gain", "--name", "gain", "--topic", "tone", "--output", "tone-quiet",
        "-p", "db=-12", "--proxy", "tcp://127.0.0.1:5555",
    )  # fmt: skip
    assert gain.restart.policy == "on-failure"
    assert (gain.restart.backoff, gain.restart.backoff_max) == (0.25, 30.0)


def test_shipped_examples_are_listed_and_check() -> None:
    listed = run("up", "--example")
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == ["demo", "pipeline"]
    for name in names:
        path = ROOT / "examples" / f"{name}.toml"
        checked = run("check", str(path))
        assert checked.returncode == 0, checked.stderr
    unknown = run("up", "--example", "nope")
    assert (unknown.returncode, unknown.stderr) == (
        2,
        "Error: no example 'nope': use one of demo, pipeline\n",
    )
    neither = run("up")
    assert neither.returncode == 2 and "give a pipeline FILE or --example NAME" in neither.stderr


def test_cli_check_ok_and_exit_2_with_every_line(tmp_path: Path) -> None:
    ok = run("check", str(write(tmp_path, GOOD)))
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout and "1 recorder(s), 1 processor(s)" in ok.stdout
    bad = write(
        tmp_path,
        """\
        [recorder.tone]
        source = "sinus:440"

        [processor.level]
        function = "levle"
        topcs = ["tone"]
        """,
        "bad.toml",
    )
    r = run("check", str(bad))
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert lines == [
        f"{bad}:2: unknown source 'sinus:440' — did you mean 'sine'? use mic, device:N, "
        "sine:FREQ, noise, speech, chirp, silence or file:PATH",
        f"{bad}:5: unknown processor 'levle' — did you mean 'level'? use a built-in "
        f"({', '.join(sorted(BUILTINS))}) or module:attr",
        f"{bad}:6: unknown key 'topcs' in [processor.level] — did you mean 'topics'?",
    ]
    assert "Traceback" not in r.stderr


def test_up_runs_the_same_check_first(tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.replace('source = "sine:440"', 'source = "sine:440"\nrat = 8000'))
    r = run("up", str(bad), timeout=30)
    assert r.returncode == 2
    assert (
        r.stderr.strip() == f"{bad}:6: unknown key 'rat' in [recorder.tone] — did you mean 'rate'?"
    )


def test_unknown_keys_everywhere_with_the_closest_known(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [proxi]
        port = 1

        [defaults]
        restrat = "always"

        [recorder.tone]
        source = "sine:440"
        blok = "10ms"

        [processor.level]
        function = "level"
        on_overun = "drop-oldest"
        """,
    )
    assert found == [
        (1, "unknown key 'proxi' — did you mean 'proxy'?"),
        (5, "unknown key 'restrat' in [defaults] — did you mean 'restart'?"),
        (9, "unknown key 'blok' in [recorder.tone] — did you mean 'block'?"),
        (13, "unknown key 'on_overun' in [processor.level] — did you mean 'on_overrun'?"),
    ]


def test_keys_the_pipeline_sets_itself(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [recorder.tone]
        source = "sine:440"
        proxy = "tcp://elsewhere:5555"

        [processor.level]
        function = "level"
        name = "meter"
        keys = "keys"
        """,
    )
    assert found == [
        (
            3,
            "'proxy' is not a per-node key — every node uses the pipeline's proxy: set [proxy] (or its endpoint)",
        ),
        (7, "'name' is not a per-node key — the table's name is the node's name: rename the table"),
        (
            8,
            "'keys' is not a per-node key — every node uses the pipeline's keys: set keys in [proxy]",
        ),
    ]


def test_bad_durations_values_and_policies(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [recorder.tone]
        source = "sine:440"
        duration = "1.5 parsecs"
        rate = "fast"
        fast = 1

        [processor.level]
        function = "level"
        window = "-3ms"
        queue = 0
        on_error = "explode"
        restart = "sometimes"
        backoff = "5s"
        backoff_max = "1s"
        """,
    )
    assert found == [
        (3, "invalid duration '1.5 parsecs' — use e.g. 250ms, 1.5s, 2m or plain seconds"),
        (4, "'rate' must be an integer, not 'fast' — fix the value of 'rate'"),
        (5, "'fast' must be true or false, not 1 — fix the value of 'fast'"),
        (9, "invalid window '-3ms' — use e.g. 250ms, 1.5s, 2m or plain seconds"),
        (10, "invalid queue 0 (0 is not in the range x>=1) — fix the value of 'queue'"),
        (11, "invalid on_error 'explode' — use one of log, stop"),
        (12, 'invalid restart \'sometimes\' — use "on-failure", "always" or "no"'),
        (13, "backoff 5 s is more than backoff_max 1 s — make backoff_max at least backoff"),
    ]


def test_unknown_sources_and_processors(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def fn(block):\n    return None\n")
    (tmp_path / "broken.py").write_text("import no_such_dependency_zaudio\n")
    found = problems(
        tmp_path,
        """\
        [recorder.a]
        source = "sine:abc"
        [recorder.b]
        source = "file:missing.wav"
        [recorder.c]
        source = "-"
        [recorder.d]
        source = "mic"

        [processor.ok]
        function = "mine:fn"
        [processor.ok2]
        function = "mine.py:fn"
        [processor.nomod]
        function = "nosuchmod_zaudio:fn"
        [processor.noattr]
        function = "mine:nope"
        [processor.broken]
        function = "broken:fn"
        [processor.none]
        topics = ["a"]
        """,
    )
    assert [line for line, _ in found] == [2, 4, 6, 15, 17, 19, 20]
    texts = dict(found)
    assert texts[2] == "invalid FREQ 'abc' in source sine:abc — not a number"
    assert texts[4].startswith(f"audio file '{tmp_path / 'missing.wav'}' does not exist — pass")
    assert texts[6].startswith("the stdin source '-' reads nothing under 'zaudio up'")
    assert texts[15].startswith('Could not import module "nosuchmod_zaudio" — give a module')
    assert texts[17].startswith('Attribute "nope" not found in module "mine" — ')
    assert texts[19].startswith(
        "importing 'broken:fn' raised ModuleNotFoundError: No module named 'no_such_dependency_zaudio'"
    )
    assert texts[20] == (
        "processor 'none' has no 'function' — add function = \"level\" (a built-in) or \"module:attr\""
    )


def test_two_nodes_publishing_one_stream(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [recorder.mic]
        source = "sine:440"

        [recorder.other]
        source = "noise"
        stream = "mic"

        [processor.copy]
        function = "level"
        topics = ["other"]
        output = "mic"
        """,
    )
    assert found == [
        (
            6,
            "stream 'mic' is published twice: by recorder 'mic' (line 1) and by recorder 'other'"
            " — give one of them another stream",
        ),
        (
            11,
            "stream 'mic' is published twice: by recorder 'mic' (line 1) and by processor 'copy'"
            " — give one of them another output",
        ),
    ]


def test_a_processor_chain_that_feeds_itself(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        [recorder.mic]
        source = "sine:440"

        [processor.a]
        function = "level"
        topics = ["mic", "b-out"]
        output = "a-out"

        [processor.b]
        function = "level"
        topics = ["lab/"]
        output = "b-out-never-read"

        [processor.c]
        function = "level"
        topics = ["a-out"]
        output = "b-out"

        [processor.selfish]
        function = "level"
        output = "loop"
        """,
    )
    assert found == [
        (
            7,
            "processor chain feeds itself: a -> c -> a ('a' reads 'b-out')"
            " — change the topics of 'a' or the output of 'c'",
        ),
        (
            21,
            "processor chain feeds itself: selfish -> selfish ('selfish' reads 'loop')"
            " — give 'selfish' topics that exclude 'loop'",
        ),
    ]


def test_keys_directory(tmp_path: Path) -> None:
    line, text = one(tmp_path, '[proxy]\nkeys = "nokeys"\n\n[recorder.t]\nsource = "noise"\n')
    assert line == 2
    assert text == (
        f"keys directory 'nokeys' does not exist ({tmp_path / 'nokeys'}) — "
        "create it with 'zaudio keygen nokeys', or fix the path"
    )
    (tmp_path / "empty").mkdir()
    line, text = one(tmp_path, '[proxy]\nkeys = "empty"\n[recorder.t]\nsource = "noise"\n')
    assert line == 2 and text.startswith(
        f"key file {tmp_path / 'empty' / 'server.key_secret'} not found"
    )
    assert run("keygen", str(tmp_path / "good")).returncode == 0
    pipeline = load(write(tmp_path, '[proxy]\nkeys = "good"\n[recorder.t]\nsource = "noise"\n'))
    assert pipeline.keys == str(tmp_path / "good")
    assert pipeline.nodes[0].args[-2:] == ("--keys", str(tmp_path / "good"))
    assert pipeline.nodes[1].args[-2:] == ("--keys", str(tmp_path / "good"))


def test_an_existing_proxy_by_endpoint(tmp_path: Path) -> None:
    pipeline = load(
        write(tmp_path, '[proxy]\nendpoint = "10.0.0.7"\n[recorder.t]\nsource = "noise"\n')
    )
    assert not pipeline.started_proxy
    assert [n.kind for n in pipeline.nodes] == ["recorder"]
    assert pipeline.control == "tcp://10.0.0.7:5555"
    line, text = one(
        tmp_path, '[proxy]\nendpoint = "tcp://h:1"\nport = 3\n[recorder.t]\nsource = "noise"\n'
    )
    assert (line, text) == (
        3,
        "'port' has no effect with 'endpoint' (a proxy running elsewhere) — "
        "remove it, or remove 'endpoint' to start a proxy here",
    )


def test_options_the_cli_lacks_are_not_supported_yet(tmp_path: Path) -> None:
    # detected from the click commands: a key is valid once the CLI has its option
    from zaudio.pipeline.schema import NOT_YET, options

    has = options("process")
    text = """\
        [recorder.t]
        source = "noise"

        [processor.p]
        function = "level"
        since = "2s"
        group = "g"
        replicas = 3
        """
    expected = []
    for line, key in ((6, "since"), (7, "group")):
        if key not in has:
            flag = NOT_YET["process"][key]
            expected.append(
                (line, f"'{key}' is not supported yet: 'zaudio process' here has no {flag} option")
            )
    pipeline, found = check(write(tmp_path, text))
    assert [
        (p.line, f"{p.what} — {p.fix}"[: len(e)]) for p, (_, e) in zip(found, expected, strict=True)
    ] == expected
    assert (pipeline is None) == bool(expected)


def test_options_the_cli_has_become_keys(tmp_path: Path) -> None:
    # whichever announced options have landed map to their flags, as any other key
    from zaudio.pipeline.schema import NOT_YET, options

    landed = {
        "process": {"rate": 16000, "channels": 1, "dtype": "float32", "pick": "0"},
        "proxy": {"metrics": "127.0.0.1:0"},
    }
    has = {cmd: options(cmd) for cmd in landed}
    lines = [
        "[proxy]",
        *(f"{k} = {json.dumps(v)}" for k, v in landed["proxy"].items() if k in has["proxy"]),
    ]
    lines += ["[recorder.t]", 'source = "noise"', "[processor.p]", 'function = "level"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in landed["process"].items() if k in has["process"]]
    pipeline = load(write(tmp_path, "\n".join(lines) + "\n"))
    proxy, _, processor = pipeline.nodes
    for cmd, node in (("proxy", proxy), ("process", processor)):
        for key, value in landed[cmd].items():
            if key in has[cmd]:
                assert key in NOT_YET[cmd]
                flag = has[cmd][key].flag
                assert node.args[node.args.index(flag) + 1] == str(value)


def test_lines_through_quoted_dotted_and_inline_forms(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        """\
        # the same tables, written three ways
        [recorder]
        tone.source = "sinus:440"
        "tone".blok = 3
        voice = { source = "speech", fast = "yes" }

        [processor."my.proc"]
        notes = \"\"\"
        [processor.fake]
        function = "nope"
        \"\"\"
        function = "level"
        topics = [
          "tone",
          "bad name!",
        ]
        """,
    )
    assert [line for line, _ in found] == [3, 4, 5, 8, 13]
    assert found[0][1].startswith("unknown source 'sinus:440'")
    assert found[1][1].startswith("unknown key 'blok' in [recorder.tone]")
    assert found[2][1].startswith("'fast' must be true or false, not 'yes'")  # inline: its line
    assert found[3][1].startswith("unknown key 'notes' in [processor.my.proc]")
    assert found[4][1].startswith("invalid stream name 'bad name!'")  # the array's key line


def test_load_raises_one_config_error_with_every_line(tmp_path: Path) -> None:
    from zaudio.errors import ConfigError

    path = write(tmp_path, '[recorder.a]\nsource = "sinus"\n[processor.b]\nfunction = "levle"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert [line.split(" — ")[0] for line in str(info.value).splitlines()] == [
        f"{path}:2: unknown source 'sinus'",
        f"{path}:4: unknown processor 'levle'",
    ]


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    assert one(tmp_path, '[recorder.t]\nsource = "noise"\n\nblock = \n') == (
        4,
        "Invalid value — fix the TOML syntax",
    )


def test_no_nodes_and_wrong_shapes(tmp_path: Path) -> None:
    assert one(tmp_path, "[proxy]\nport = 15555\n") == (
        1,
        "the pipeline has no recorder or processor — add a [recorder.NAME] or [processor.NAME] table",
    )
    found = problems(tmp_path, 'recorder = 3\n[processor.p]\nfunction = "level"\ntopics = 5\n')
    assert found == [
        (1, "'recorder' must be a table — write [recorder]"),
        (4, "'topics' must be a list of strings, e.g. [\"mic\"] — fix the value of 'topics'"),
    ]


def test_locate_headers_and_keys() -> None:
    lines = locate(
        textwrap.dedent(
            '''\
            # a comment = not a key
            [proxy]
            port = 1

            [processor."my proc"]   # a quoted table name
            function = "level"
            notes = """
            [not.a.header]
            fake = 1
            """
            params = { a = 1, b = 2 }
            topics = [
              "x",
              "y",
            ]
            'literal key' = 3

            [recorder]
            tone.source = "sine:440"
            tone . block = "10ms"
            [[array]]
            x = 1
            [[array]]
            x = 2
            '''
        )
    )
    assert lines.of("proxy", "port") == 3
    assert lines.of("processor", "my proc") == 5
    assert lines.of("processor", "my proc", "function") == 6
    assert lines.of("not", "a", "header") == 1  # inside a multi-line string
    assert lines.of("processor", "my proc", "fake") == 5  # ditto: the table's line
    assert lines.of("processor", "my proc", "params", "b") == 11
    assert lines.of("processor", "my proc", "topics") == 12
    assert lines.of("processor", "my proc", "literal key") == 16
    assert lines.of("recorder", "tone", "source") == 19
    assert lines.of("recorder", "tone", "block") == 20
    assert lines.of("recorder", "tone") == 19
    assert lines.of("array", 0, "x") == 22
    assert lines.of("array", 1, "x") == 24


def test_replicas_of_a_group_processor_are_its_members(tmp_path: Path) -> None:
    text = GOOD + 'group = "g"\nreplicas = 3\n'
    pipeline = load(write(tmp_path, text))
    (node,) = [n for n in pipeline.nodes if n.kind == "processor"]
    assert node.replicas == 3
    members = [p for p in pipeline.processes if p.kind == "processor"]
    assert [m.name for m in members] == ["level.1", "level.2", "level.3"]
    for m in members:  # the same command: members of one group, named after the table
        assert m.args == node.args and m.replicas == 1
        assert m.args[m.args.index("--group") + 1] == "g"
        assert m.args[m.args.index("--name") + 1] == "level"
    r = run("check", str(write(tmp_path, text)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith("1 processor(s) (replicas: level x3)"), r.stdout


def test_replicas_need_a_group_and_a_count(tmp_path: Path) -> None:
    assert problems(tmp_path, GOOD + "replicas = 3\n") == [
        (
            10,
            "replicas = 3 without a group would process every block 3 times — "
            'add group = "NAME": the replicas then share the work, each block once',
        )
    ]
    for bad in ("0", '"3"', "true", "1000"):
        assert problems(tmp_path, GOOD + f'group = "g"\nreplicas = {bad}\n') == [
            (11, f"invalid replicas {tomllib.loads('v = ' + bad)['v']!r} — "
                 "give a whole number from 1 to 256")
        ]  # fmt: skip
    r = run("check", str(write(tmp_path, GOOD + "replicas = 2\n")))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
