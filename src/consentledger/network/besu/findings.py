"""What `network besu check` finds: one problem a line, each naming its file, and the readers that find them."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a network directory: the file (relative to it) and what is wrong."""

    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class Findings:
    """The problems found so far in one network directory, and readers that record a problem instead of raising."""

    root: Path
    problems: list[Problem] = field(default_factory=list)

    def fail(self, file: str, message: str) -> None:
        """Record that `file` (relative to the directory) has the problem `message`."""
        self.problems.append(Problem(file, message))

    def json(self, name: str) -> Any:
        """Return the parsed JSON file `name`, or None after recording why it cannot be read."""
        try:
            return json.loads((self.root / name).read_text())
        except FileNotFoundError:
            self.fail(name, "missing")
        except (OSError, ValueError) as exc:
            self.fail(name, f"not valid JSON: {exc}")
        return None

    def toml(self, name: str) -> dict[str, Any] | None:
        """Return the parsed TOML file `name`, or None after recording why it cannot be read."""
        try:
            return tomllib.loads((self.root / name).read_text())
        except FileNotFoundError:
            self.fail(name, "missing")
        except (OSError, tomllib.TOMLDecodeError) as exc:
            self.fail(name, f"not valid TOML: {exc}")
        return None


def string_list(c: Findings, file: str, data: dict[str, Any], key: str) -> list[str]:
    """Return `data[key]` if it is a list of strings, else [] after recording the problem."""
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        if data:
            c.fail(file, f"{key} must be a list of strings")
        return []
    return value


def lower_keys(value: Any) -> dict[str, Any]:
    """Return a dict with lower-cased keys: Besu reads genesis config keys case-insensitively ({} if not a dict)."""
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def positive(value: Any) -> bool:
    """Return whether `value` is an integer above 0 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def hex_int(value: Any) -> int | None:
    """Return a JSON number or a hex/decimal string as an int, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            return None
    return None
