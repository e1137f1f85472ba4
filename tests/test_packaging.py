"""The release artefacts: wheel and sdist build with no warning, pass ``twine check``,
install into a fresh venv (not editable) and run from there.

Installs are offline and take about a second: the fresh venv has no pip and no
packages of its own; a ``.pth`` file puts this test venv's site-packages after its
own, so zaudio's dependencies (and, for the sdist, setuptools) are found there and
``pip --no-index`` downloads nothing. That keeps the test fast and deterministic on a
fresh machine whose pip cache is empty, and still checks what matters here: what the
wheel and the sdist contain, that their requirements and extras resolve (pip checks
``zaudio[web,all]`` against what is installed), and that the installed ``zaudio``,
not the editable checkout, runs. Whether the dependencies themselves install from
the registry is what ``scripts/setup`` does on every fresh machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import tomllib

from tests.helpers import ROOT, env
from zaudio._version import __version__
from zaudio.extras import EXTRAS

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SITE = sysconfig.get_paths()["purelib"]


def _quiet_env() -> dict[str, str]:
    e = env()
    # This machine sets PYTHONDONTWRITEBYTECODE, which makes setuptools print
    # "byte-compiling is disabled" warnings that a user's build does not have.
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    return e


def _run(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_quiet_env()
    )
    assert out.returncode == 0, f"{args}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(wheel, sdist, build output), built once from this checkout."""
    out_dir = tmp_path_factory.mktemp("dist")
    # --no-isolation: setuptools>=77 comes from the test extra, nothing is downloaded.
    built = _run(sys.executable, "-m", "build", "--no-isolation", "-o", str(out_dir), ".")
    wheel = next(out_dir.glob("zaudio-*.whl"))
    sdist = next(out_dir.glob("zaudio-*.tar.gz"))
    return wheel, sdist, built.stdout + built.stderr


def fresh_venv(where: Path) -> Path:
    """A new venv (no pip) that sees this venv's packages after its own; its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60
    )
    python = where / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    Path(purelib, "_zaudio_test_deps.pth").write_text(SITE + "\n")
    return python


def pip_install(python: Path, *args: str, cwd: Path) -> None:
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "--no-index",
        *args,
        cwd=cwd,
    )


def ask(python: Path, code: str, cwd: Path) -> str:
    """What ``python -c code`` prints, run in ``cwd``."""
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=30, cwd=cwd
    ).stdout.strip()


def installed_from(python: Path, cwd: Path) -> str:
    return ask(python, "import zaudio; print(zaudio.__file__)", cwd)


def wire_in(python: Path, cwd: Path) -> bool:
    """Does the installed zaudio use its compiled wire (zaudio.wire.WIRE)?"""
    return ask(python, "import zaudio.wire as w; print(w.WIRE is not None)", cwd) == "True"


def test_build_prints_no_warning_and_twine_check_passes(dist: tuple[Path, Path, str]) -> None:
    wheel, sdist, output = dist
    warnings = [line for line in output.splitlines() if re.search(r"warn|deprecat", line, re.I)]
    assert not warnings, "\n".join(warnings)
    # one compiled module (zaudio/_wire.c) makes the wheel this Python's and platform's
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform = re.sub(r"[-.]", "_", sysconfig.get_platform())
    assert wheel.name == f"zaudio-{__version__}-{tag}-{tag}-{platform}.whl"
    assert sdist.name == f"zaudio-{__version__}.tar.gz"
    checked = _run(sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist))
    assert checked.stdout.count("PASSED") == 2, checked.stdout


def _sources() -> set[str]:
    """Every file of the zaudio package as it is laid out in the wheel."""
    files = set()
    for top, prefix in (
        ("zaudio", "zaudio"),
        ("cli", "zaudio/cli"),
        ("examples", "zaudio/examples"),
    ):
        for p in (ROOT / top).rglob("*"):
            # C sources go in the sdist; the wheel has what they compile to
            if (
                p.is_file()
                and "__pycache__" not in p.parts
                and p.suffix not in (".pyc", ".c", ".h")
            ):
                files.add(f"{prefix}/{p.relative_to(ROOT / top).as_posix()}")
    return files


def test_wheel_holds_every_source_file_the_license_and_the_metadata(
    dist: tuple[Path, Path, str],
) -> None:
    wheel, sdist, _ = dist
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(f"zaudio-{__version__}.dist-info/METADATA").decode()
    assert _sources() <= names, sorted(_sources() - names)
    assert "zaudio/web/static/capture.html" in names and "zaudio/py.typed" in names
    assert f"zaudio-{__version__}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: MIT" in meta and "License-File: LICENSE" in meta
    assert "Project-URL: " in meta and "Classifier: Typing :: Typed" in meta
    # the SPDX expression replaces license classifiers (setuptools refuses both)
    assert "Classifier: License ::" not in meta
    with tarfile.open(sdist) as t:
        members = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name}
    assert {"LICENSE", "pyproject.toml", "README.md", "cli/main.py"} <= members
    assert {"setup.py", "zaudio/_wire.c", "zaudio/_wire_recv.c", "zaudio/_wire.h"} <= members
    assert any(re.fullmatch(r"zaudio/_wire\..*\.so", n) for n in names), "no compiled wire"


def test_wheel_installs_with_its_extras_into_a_fresh_venv_and_runs(
    dist: tuple[Path, Path, str], tmp_path: Path
) -> None:
    wheel, _, _ = dist
    python = fresh_venv(tmp_path / "venv")
    extras = ",".join(sorted(set(PYPROJECT["project"]["optional-dependencies"]) - {"test"}))
    pip_install(python, f"{wheel}[{extras}]", cwd=tmp_path)
    assert installed_from(python, tmp_path).startswith(str(tmp_path / "venv"))
    zaudio = str(tmp_path / "venv" / "bin" / "zaudio")

    version = _run(zaudio, "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"zaudio, version {__version__}"
    assert wire_in(python, tmp_path)
    demo = _run(zaudio, "demo", "--duration", "2", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert re.search(r"^\s*drops: 0$", demo.stdout, re.M), demo.stdout
    assert (tmp_path / "out" / "demo.wav").stat().st_size > 4096
    web = _run(zaudio, "web", "--help", cwd=tmp_path)
    assert web.stdout.startswith("Usage: zaudio web")


def test_sdist_installs_into_a_fresh_venv(dist: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, sdist, _ = dist
    python = fresh_venv(tmp_path / "venv")
    # --no-build-isolation: the build backend (setuptools) comes from the test venv.
    pip_install(python, "--no-build-isolation", str(sdist), cwd=tmp_path)
    where = Path(installed_from(python, tmp_path)).parent
    assert where.is_relative_to(tmp_path / "venv")
    assert (where / "web" / "static" / "monitor.js").is_file()
    assert (where / "cli" / "main.py").is_file()
    assert wire_in(python, tmp_path)  # built from the sdist's C source
    version = _run(str(tmp_path / "venv" / "bin" / "zaudio"), "--version", cwd=tmp_path)
    assert version.stdout.strip() == f"zaudio, version {__version__}"


def test_all_extra_is_the_union_of_the_others() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    others = sorted(set(extras) - {"all", "test"})
    assert others, "no extras"
    assert not [name for name in others if not extras[name]], "an extra with no package"
    assert sorted(extras["all"]) == sorted(f"zaudio[{name}]" for name in others)


def test_every_extra_names_its_packages_for_the_one_line_error() -> None:
    extras = set(PYPROJECT["project"]["optional-dependencies"]) - {"all", "test"}
    assert set(EXTRAS.values()) == extras


def test_the_version_lives_in_one_place() -> None:
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert "version" not in PYPROJECT["project"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "zaudio._version.__version__"
    hits = [
        p
        for p in [*(ROOT / "zaudio").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]
        if re.search(rf"['\"]{re.escape(__version__)}['\"]", p.read_text())
    ]
    assert hits == [ROOT / "zaudio" / "_version.py"], hits


def test_a_missing_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    # websockets made unimportable, as in an install without the 'web' extra.
    code = (
        "import sys; sys.modules['websockets'] = None\n"
        "from zaudio.cli.main import main; main(['web'])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        env=env(),
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        "Error: zaudio web needs the 'web' extra (websockets is not installed): "
        "pip install 'zaudio[web]'"
    ]


def _backticked(text: str) -> set[str]:
    return set(re.findall(r"`([a-z]+)`", text))


def test_readme_says_which_commands_take_proxy_and_keys() -> None:
    """README (the package's long description) names the commands that take
    --proxy and --keys, and those that take neither; each command is checked."""
    import click
    from zaudio.cli.main import cli

    readme = " ".join((ROOT / "README.md").read_text().split())
    m = re.search(
        r"The commands that talk to a proxy, (.+?), take `--proxy .+?`zaudio proxy` takes "
        r"`--keys`.+?\. (.+?) take neither\.",
        readme,
    )
    assert m, "the README's sentence about --proxy and --keys"
    both, neither = _backticked(m.group(1)), _backticked(m.group(2))
    ctx = click.Context(cli)
    options: dict[str, set[str]] = {}
    for name in cli.list_commands(ctx):
        command = cli.get_command(ctx, name)
        assert command is not None
        options[name] = {p.name for p in command.params if p.name in ("proxy", "keys")}
    assert both == {n for n, o in options.items() if o == {"proxy", "keys"}}
    assert options["proxy"] == {"keys"}
    assert neither == {n for n, o in options.items() if not o}


def test_without_any_extra_zaudio_imports_and_every_command_shows_its_help(
    tmp_path: Path,
) -> None:
    # Every optional package made unimportable, as in `pip install zaudio`.
    code = (
        "import sys\n"
        f"for name in {sorted(EXTRAS)!r}: sys.modules[name] = None\n"
        "import zaudio\n"
        "from zaudio.cli.main import COMMANDS, main\n"
        "for name in sorted(COMMANDS):\n"
        "    try:\n"
        "        main([name, '--help'])\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), (name, exc.code)\n"
        "    print('ok', name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env(),
    )
    assert out.returncode == 0, out.stderr
    from zaudio.cli.main import COMMANDS

    assert [line for line in out.stdout.splitlines() if line.startswith("ok ")] == [
        f"ok {name}" for name in sorted(COMMANDS)
    ]
