"""How the library reports what it is doing: ``bar`` (a progress bar over a number of steps) and ``info`` (a line),
both delegated to the installed reporter. Library layers call these two and never touch a UI; the default
reporter (:class:`RichReporter`, what the CLI uses) draws rich progress bars and lines on stderr, so stdout
stays clean for JSON and scores. ``set_reporter(QuietReporter())`` silences a notebook or a service."""

from __future__ import annotations

import contextlib
import sys


class QuietReporter:
    """Reports nothing."""

    @contextlib.contextmanager
    def bar(self, description: str, total: int, enabled: bool = True):
        yield lambda *_: None

    def info(self, msg: str, markup: bool = True) -> None:
        pass


class RichReporter(QuietReporter):
    """Progress bars and lines on stderr (rich), imported when first used."""

    def __init__(self):
        from rich.console import Console

        self.console = Console(stderr=True, soft_wrap=True)

    @contextlib.contextmanager
    def bar(self, description: str, total: int, enabled: bool = True):
        """Yields advance(i) for Teacher.classify's on_done hook."""
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        if not enabled or total == 0:
            yield lambda *_: None
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False,
                      disable=not (self.console.is_terminal or "pytest" not in sys.modules)) as p:
            t = p.add_task(description, total=total)
            yield lambda *_: p.advance(t)

    def info(self, msg: str, markup: bool = True) -> None:
        self.console.print(msg, highlight=False, markup=markup)


_reporter: QuietReporter | None = None


def set_reporter(reporter: QuietReporter | None) -> None:
    """Install a reporter (anything with ``bar`` and ``info`` like :class:`QuietReporter`); None: the default."""
    global _reporter
    _reporter = reporter


def reporter() -> QuietReporter:
    global _reporter
    if _reporter is None:
        _reporter = RichReporter()
    return _reporter


def bar(description: str, total: int, enabled: bool = True):
    return reporter().bar(description, total, enabled)


def info(msg: str, markup: bool = True) -> None:
    reporter().info(msg, markup)
