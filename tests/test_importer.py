"""Loading processors: import strings, files, built-ins, signatures, classes, -p params."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run
from zaudio.errors import ConfigError, ImportFromStringError
from zaudio.importer import (
    BUILTINS,
    default_name,
    import_from_string,
    load_processor,
    parse_params,
)


def test_module_attr() -> None:
    from tests.procs import basic

    assert import_from_string("tests.procs.basic:samples") is basic.samples
    assert import_from_string("tests.procs.basic:Lifecycle.close") is basic.Lifecycle.close


def test_three_messages() -> None:
    with pytest.raises(ImportFromStringError) as e:
        import_from_string("nocolon")
    assert 'Import string "nocolon" must be in format "<module>:<attribute>"' in str(e.value)
    with pytest.raises(ImportFromStringError, match='Could not import module "no_such_mod_xyz"'):
        import_from_string("no_such_mod_xyz:fn")
    with pytest.raises(ImportFromStringError, match=r'Could not import module "tests\.nope"'):
        import_from_string("tests.nope:fn")
    with pytest.raises(
        ImportFromStringError,
        match=r'Attribute "nope" not found in module "tests\.procs\.basic"',
    ):
        import_from_string("tests.procs.basic:nope")


def test_import_error_inside_user_module_propagates() -> None:
    with pytest.raises(ModuleNotFoundError) as e:
        import_from_string("tests.procs.broken:fn")
    assert not isinstance(e.value, ImportFromStringError)
    assert e.value.name == "zaudio_no_such_dependency"


def test_file_path(tmp_path: Path) -> None:
    (tmp_path / "helper_mod_for_zaudio.py").write_text("K = 7\n")
    f = tmp_path / "my-proc.py"
    f.write_text("from helper_mod_for_zaudio import K\ndef fn(block):\n    return K\n")
    try:
        fn = import_from_string(f"{f}:fn")
        assert fn(None) == 7
    finally:
        sys.modules.pop("helper_mod_for_zaudio", None)
    with pytest.raises(ImportFromStringError, match="no such file"):
        import_from_string(f"{tmp_path / 'missing.py'}:fn")


def test_builtins_registry() -> None:
    assert set(BUILTINS) >= {"level", "vad", "logmel", "spectrum", "writer", "print"}
    for spec in BUILTINS.values():
        assert ":" in spec and spec.startswith("zaudio.processors.")
    assert default_name("level") == "level"
    assert default_name("mymod:fn") == "fn"
    assert default_name("a/b.py:Cls.method") == "method"


def test_parse_params() -> None:
    got = parse_params(["n=3", "x=1.5", "s=hello", "flag=true", "l=[1,2]", "e=", "q=a=b"])
    assert got == {"n": 3, "x": 1.5, "s": "hello", "flag": True, "l": [1, 2], "e": "", "q": "a=b"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_params(["novalue"])


def test_signature_decides_info_once() -> None:
    def one(block: Any) -> Any:
        return block

    def two(block: Any, info: Any) -> Any:
        return info

    def kw(block: Any, *, gain: float = 1.0) -> Any:
        return block * gain

    assert not load_processor(one).takes_info
    assert load_processor(two).takes_info
    loaded = load_processor(kw, {"gain": 2})
    assert not loaded.takes_info and loaded.call(3) == 6
    with pytest.raises(ConfigError, match="does not accept"):
        load_processor(kw, {"nope": 1})
    with pytest.raises(ConfigError, match="takes no argument"):
        load_processor(lambda: None)


def test_class_lifecycle_hooks(tmp_path: Path) -> None:
    path = tmp_path / "log"
    loaded = load_processor(
        "tests.procs.basic:Lifecycle", {"path": str(path), "gain": 2, "label": "x"}
    )
    assert loaded.takes_info and loaded.setup is not None and loaded.close is not None
    assert path.read_text() == "init gain=2 label='x'\n"
    with pytest.raises(ConfigError, match="does not accept"):
        load_processor("tests.procs.basic:Lifecycle", {"path": "p", "bogus": 1})


def test_cli_unknown_things_exit_2_one_line() -> None:
    for spec, named in [
        ("no_such_mod_xyz:fn", "no_such_mod_xyz"),
        ("tests.procs.basic:nope", "nope"),
        ("nosuchbuiltin", "nosuchbuiltin"),
        ("missing_file.py:fn", "missing_file.py"),
    ]:
        r = run("process", spec, "--proxy", "tcp://127.0.0.1:1")
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], r.stderr
        assert "Traceback" not in r.stderr


def test_cli_class_missing_a_constructor_argument_exits_2_naming_it() -> None:
    # Lifecycle(path, gain=1, label="") needs path: a raw TypeError traceback before.
    r = run("process", "tests.procs.basic:Lifecycle", "--proxy", "tcp://127.0.0.1:1")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'path'" in lines[0] and "-p path=VALUE" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    with pytest.raises(ConfigError, match=r"needs 'path'"):
        load_processor("tests.procs.basic:Lifecycle", {"gain": 2})


def test_one_loader_for_processors_sources_and_commands() -> None:
    # zaudio.loader is the only place that imports by name; the others call it.
    root = Path(__file__).resolve().parent.parent
    users = sorted(
        str(p.relative_to(root))
        for folder in ("zaudio", "cli")
        for p in (root / folder).rglob("*.py")
        if "importlib.import_module(" in p.read_text()
        or "spec_from_file_location(" in p.read_text()
    )
    assert users == ["zaudio/loader.py"]
    from zaudio.cli.main import COMMANDS, LazyGroup

    from zaudio.sources import SOURCES, _factory

    assert _factory("sine") is import_from_string(SOURCES["sine"])
    ctx = None
    assert LazyGroup().get_command(ctx, "ls") is import_from_string(COMMANDS["ls"][0])  # type: ignore[arg-type]


def test_cli_import_error_inside_module_shows_traceback() -> None:
    r = run("process", "tests.procs.broken:fn", "--proxy", "tcp://127.0.0.1:1")
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "zaudio_no_such_dependency" in r.stderr
    assert "Could not import module" not in r.stderr
