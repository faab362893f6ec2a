"""Terminal output: tables and progress with ``rich`` when the ``cli`` extra is installed,
plain text otherwise (smtpx itself needs nothing outside the standard library).

``rich`` decides colours from the terminal (none when the output is a pipe or a file,
none with ``NO_COLOR``); ``SMTPX_PLAIN=1`` asks for plain output even with it installed.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["Output"]


def _rich() -> Any:
    if os.environ.get("SMTPX_PLAIN", "").strip() not in ("", "0"):
        return None
    try:
        # Imported by name: rich is optional, and mypy need not know it.
        for part in ("console", "markup", "progress", "table"):
            importlib.import_module(f"rich.{part}")
        return importlib.import_module("rich")
    except ImportError:
        return None


class Output:
    """Where a command writes for people: results to stdout, notes and progress to stderr
    (so ``--json`` on stdout stays clean)."""

    def __init__(self) -> None:
        self.rich = _rich()

    @property
    def fancy(self) -> bool:
        return self.rich is not None

    def note(self, text: str) -> None:
        print(text, file=sys.stderr)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table on stdout."""
        if self.rich is not None:
            table = self.rich.table.Table(title=title, title_justify="left")
            for column in columns:
                table.add_column(column)
            for row in rows:
                table.add_row(*(self.rich.markup.escape(cell) for cell in row))
            self.rich.console.Console(file=sys.stdout).print(table)
            return
        widths = [
            max(len(column), *(len(row[i]) for row in rows)) if rows else len(column)
            for i, column in enumerate(columns)
        ]
        print(title)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    @contextmanager
    def progress(self, total: int, label: str) -> Iterator[Callable[[], None]]:
        """A progress bar on stderr for *total* steps; yields the function that advances it.
        Plain output shows it only on a terminal (a log gets the summary instead)."""
        if self.rich is not None:
            console = self.rich.console.Console(file=sys.stderr)
            with self.rich.progress.Progress(console=console, transient=False) as bar:
                task = bar.add_task(label, total=total)
                yield lambda: bar.advance(task)
            return
        done = 0
        live = sys.stderr.isatty()

        def advance() -> None:
            nonlocal done
            done += 1
            if live:
                print(f"\r{label}: {done}/{total}", end="", file=sys.stderr, flush=True)

        yield advance
        if live:
            print(file=sys.stderr)
