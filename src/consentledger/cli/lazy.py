"""A typer group whose sub-commands are imported only when one of them is invoked."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any, ClassVar

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """Where a sub-command lives (`module:attribute`, a Typer app or a command function) and its one-line help."""

    target: str
    help: str  # shown by the parent's --help without importing; tests keep it equal to the real help

    def load(self, name: str) -> Any:
        """Return the click command `target` names, called `name`; imports its module."""
        module_name, attribute = self.target.split(":")
        obj = getattr(importlib.import_module(module_name), attribute)
        # Built as `add_typer`/`command` on a parent would build it (no completion options of its own).
        parent = typer.Typer(add_completion=False)
        if isinstance(obj, typer.Typer):
            parent.add_typer(obj, name=name)
            group = typer.main.get_command(parent)
            assert isinstance(group, TyperGroup)
            command = group.commands[name]
        else:
            parent.command(name)(obj)
            command = typer.main.get_command(parent)
        return command


class LazyGroup(TyperGroup):
    """A group listing `entries` by name and help alone; the module of a command loads when it runs.

    Subclass it with `entries` filled in and pass the subclass as `typer.Typer(cls=...)`.
    """

    entries: ClassVar[Mapping[str, LazyCommand]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        """Return the lazy commands' names, in table order, then any registered eagerly."""
        return [*self.entries, *(name for name in super().list_commands(ctx) if name not in self.entries)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """Return the command `cmd_name`, importing it unless only the help listing asks."""
        entry = self.entries.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if self._listing:
            # The listing needs a name and a line of help: a stand-in spares importing web3 & co.
            return TyperCommand(cmd_name, help=entry.help)
        command = entry.load(cmd_name)
        self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """Write the help with stand-ins for the commands not loaded yet."""
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        """Resolve like click; an unknown name gets close matches among the lazy commands too."""
        try:
            return super().resolve_command(ctx, args)
        except typer.TyperException as exc:
            message = getattr(exc, "message", "")
            if args and isinstance(message, str) and message.startswith("No such command"):
                matches = get_close_matches(args[0], self.list_commands(ctx))
                if matches:
                    exc.message = f"{message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise
