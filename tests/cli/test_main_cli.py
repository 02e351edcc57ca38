"""The `consentledger` entry point: help that loads nothing heavy, every command's help, usage errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from consentledger.cli.main import _Commands, app

CLI = str(Path(sys.executable).parent / "consentledger")
HEAVY = ("web3", "eth_account", "eth_abi", "cryptography", "sqlalchemy", "fastapi", "uvicorn", "httpx", "solcx")


def imported_modules(stderr: str) -> set[str]:
    """Return the modules `python -X importtime` reports as imported."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_help_lists_every_command_without_importing_web3_crypto_or_the_database() -> None:
    """`consentledger --help` (the console script itself) names every command and imports none of the heavy stacks."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", CLI, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for name in _Commands.entries:
        assert f" {name} " in result.stdout
    modules = imported_modules(result.stderr)
    assert "consentledger.cli.main" in modules  # the parse saw the real import log
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []
    assert not any(m.startswith("consentledger.cli.") and m not in {"consentledger.cli.main", "consentledger.cli.lazy"}
                   for m in modules)


def test_help_line_of_each_command_is_its_own_help() -> None:
    """The line `--help` shows without importing a command is the one the command itself declares."""
    for name, entry in _Commands.entries.items():
        command = entry.load(name)
        assert command.name == name
        own = (command.help or "").strip().splitlines()[0]
        assert entry.help == own, name


def command_paths(command: Any, path: list[str]) -> list[list[str]]:
    """Return `path` and every command path below `command` (at `path`), loading each like an invocation."""
    if not isinstance(command, TyperGroup):
        return [path]
    ctx = typer.Context(command)
    children = [(name, command.get_command(ctx, name)) for name in command.list_commands(ctx)]
    return [path, *(p for name, child in children for p in command_paths(child, [*path, name]))]


def test_every_command_answers_help() -> None:
    """Each of the 60-odd command paths prints its usage and exits 0 under `--help`."""
    runner = CliRunner()
    paths = command_paths(typer.main.get_command(app), [])
    assert len(paths) > 50
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: consentledger " + " ".join(path) in " ".join(result.output.split())


@pytest.mark.parametrize(("typo", "meant"), [("consnet", "consent"), ("deplyo", "deploy")])
def test_unknown_command_is_a_usage_error_suggesting_the_lazy_one(typo: str, meant: str) -> None:
    """A misspelt command exits 2 and suggests the close name although no command module was imported."""
    result = subprocess.run([CLI, typo], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"No such command '{typo}'. Did you mean '{meant}'?" in result.stderr
