"""Progress bars (rich) on stderr, so stdout stays clean for JSON and scores."""

from __future__ import annotations

import contextlib
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, soft_wrap=True)


@contextlib.contextmanager
def bar(description: str, total: int, enabled: bool = True):
    """Yields advance(i) for Teacher.classify's on_done hook."""
    if not enabled or total == 0:
        yield lambda *_: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False,
                  disable=not (console.is_terminal or "pytest" not in sys.modules)) as p:
        t = p.add_task(description, total=total)
        yield lambda *_: p.advance(t)


def info(msg: str, markup: bool = True) -> None:
    console.print(msg, highlight=False, markup=markup)
