"""What the soak benchmark reads of the running processes and stores, and how it judges a trend.

- a process (and its children): resident memory, open file descriptors, threads, from /proc;
- a store: bytes on disk (an SQLite file with its -wal and -shm) or in PostgreSQL (the relations of
  one schema, `pg_total_relation_size`), and the row count of each table;
- a trend: the growth between the first and the last third of a run, per minute, and whether it is
  still climbing in the last third (a leak keeps growing; a warm-up or a cache that fills levels off).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, text

PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class ProcessSample:
    """One look at a process tree: resident bytes, open file descriptors, threads, processes."""

    rss: int
    fds: int
    threads: int
    processes: int


def _children() -> dict[int, list[int]]:
    """Return each live process's children, from /proc/*/stat."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])  # the name in parentheses may hold spaces
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    """Return `pid` and all its descendants alive now."""
    tree, found, todo = _children(), [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(tree.get(current, []))
    return found


def sample_process(pid: int) -> ProcessSample | None:
    """Return the summed figures of `pid`'s process tree, or None if it is gone."""
    rss = fds = threads = processes = 0
    for member in process_tree(pid):
        try:
            rss += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE
            fds += len(os.listdir(f"/proc/{member}/fd"))
            threads += len(os.listdir(f"/proc/{member}/task"))
            processes += 1
        except OSError:
            if member == pid:
                return None
    return ProcessSample(rss, fds, threads, processes)


@dataclass(frozen=True)
class StoreSize:
    """A store's size now: the bytes its data takes (what trends are judged by) and what it is made of on disk."""

    bytes: int
    parts: dict[str, int]


class StoreProbe(Protocol):
    """A store whose size and table rows can be read while its gateway writes to it."""

    label: str

    def size(self) -> StoreSize:
        """Return the store's size, read now."""
        ...

    def rows(self) -> dict[str, int]:
        """Return each table's row count now."""
        ...


@dataclass(frozen=True)
class SqliteProbe:
    """An agency's SQLite file, with its write-ahead log and shared-memory index."""

    path: Path
    label: str = "sqlite"

    def size(self) -> StoreSize:
        """Return the bytes of the database's pages in use as of its latest commit (the WAL's included), and
        the sizes of the main file, the WAL (which SQLite reuses after each checkpoint) and the -shm file.

        The files alone move in steps: pages reach the main file only at a checkpoint, and the WAL file
        keeps its largest size.
        """
        files = {"main": self.path, "wal": Path(f"{self.path}-wal"), "shm": Path(f"{self.path}-shm")}
        parts = {name: (file.stat().st_size if file.exists() else 0) for name, file in files.items()}
        with self._connect() as conn:
            pages, free, page = (int(conn.execute(f"PRAGMA {pragma}").fetchone()[0])
                                 for pragma in ("page_count", "freelist_count", "page_size"))
        return StoreSize((pages - free) * page, {"free pages": free * page, **parts})

    def _connect(self) -> sqlite3.Connection:
        """Return a read-only connection (a WAL reader does not block the gateway's writer)."""
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)

    def rows(self) -> dict[str, int]:
        """Return each table's row count."""
        conn = self._connect()
        try:
            names = [row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            return {name: int(conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in names}
        finally:
            conn.close()


@dataclass(frozen=True)
class PostgresProbe:
    """An agency's own schema in a shared PostgreSQL database."""

    engine: Engine
    schema: str
    label: str = "postgresql"

    def size(self) -> StoreSize:
        """Return the bytes of the schema's tables with their indexes and TOAST (`pg_total_relation_size`)."""
        query = text("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0), coalesce(sum(pg_indexes_size(c.oid)), 0) "
                     "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                     "WHERE n.nspname = :schema AND c.relkind = 'r'")
        with self.engine.connect() as conn:
            total, indexes = conn.execute(query, {"schema": self.schema}).one()
        return StoreSize(int(total), {"of which indexes": int(indexes)})

    def rows(self) -> dict[str, int]:
        """Return each table's row count in the schema."""
        with self.engine.connect() as conn:
            names = list(conn.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"),
                                      {"schema": self.schema}))
            return {name: int(conn.scalar(text(f'SELECT count(*) FROM "{self.schema}"."{name}"')) or 0)
                    for name in names}


@dataclass(frozen=True)
class Trend:
    """How a figure moved over a run: means of its first and last thirds, and slopes per minute."""

    first: float
    last: float
    per_minute: float
    """Growth from the first third's mean to the last third's, per minute between their mid-times."""
    tail_per_minute: float
    """Least-squares slope within the last third alone: still climbing, or level."""

    def unbounded(self, *, absolute: float, relative: float) -> bool:
        """Return whether this looks like growth without bound.

        It grew by more than `absolute` and by more than `relative` of its first-third level, and in
        the last third it still climbs at half the run's rate or more (a filling cache levels off).
        """
        grown = self.last - self.first
        return (grown > absolute and grown > relative * max(abs(self.first), 1.0)
                and self.tail_per_minute >= 0.5 * self.per_minute > 0)


def _slope(times: list[float], values: list[float]) -> float:
    """Return the least-squares slope of `values` over `times` (0 with fewer than two distinct times)."""
    if len(times) < 2 or len(set(times)) < 2:
        return 0.0
    return statistics.linear_regression(times, values).slope


def trend(times: list[float], values: list[float]) -> Trend:
    """Return the trend of `values` sampled at `times` (seconds); needs at least three samples."""
    n = len(times)
    third = max(1, n // 3)
    head_t, head_v = times[:third], values[:third]
    tail_t, tail_v = times[n - third:], values[n - third:]
    first, last = statistics.fmean(head_v), statistics.fmean(tail_v)
    span = statistics.fmean(tail_t) - statistics.fmean(head_t)
    per_minute = (last - first) / span * 60 if span > 0 else 0.0
    return Trend(first, last, per_minute, _slope(tail_t, tail_v) * 60)
