"""The documentation keeps up with the program: every command has help and is in the README."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest

from syscafe_sync.cli import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, path + " ")


ALL = sorted(_commands(cli), key=lambda pc: pc[0])


@pytest.mark.parametrize("path, cmd", ALL, ids=[p for p, _ in ALL])
def test_every_command_has_help_and_is_in_the_readme(path, cmd):
    assert (cmd.help or "").strip(), f"`{path}` has no help text"
    assert f"`{path}" in README, f"`{path}` is missing from README.md's command table"
    for param in cmd.params:
        if isinstance(param, click.Option):
            assert param.help, f"option {param.opts} of `{path}` has no help"


def test_help_runs_for_every_command():
    from click.testing import CliRunner

    runner = CliRunner()
    for path, _ in ALL:
        result = runner.invoke(cli, path.split() + ["--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, path


def test_ci_runs_the_readmes_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "Install and run the tests:" in ci and "README.md" in ci
    out = subprocess.run(
        ["awk", "/^Install and run the tests:/{f=1; next} f && /^```sh/{getline; print; exit}", "README.md"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert "pytest" in out and 'pip install -e ".[test]"' in out


def test_readme_starts_with_the_demo_command():
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    assert "pip install ." in first_block and "syscafe-sync demo" in first_block
