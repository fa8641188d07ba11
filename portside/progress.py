"""Progress for build, push and publish: rich bars on a terminal, plain lines when piped.

Builders and the pusher report through the plain ``Progress`` callback
(``progress(step, message)``); a ``Reporter`` is such a callback that can also show a
byte bar per blob (``reporter.transfer(label, total)`` gives the callback the registry
client calls with each chunk's size). ``reporter_for(stream)`` picks the form:

- a terminal: a rich ``Progress`` on ``stream`` with one bar per blob upload, and every
  step printed above the bars (rich is imported only then);
- anything else (a pipe, a file, CI logs): one ``[step] message`` line per step, no bars,
  no control characters, so the output stays grep-able.
"""

from __future__ import annotations

import abc
import os
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from portside.terminal import clean

__all__ = ["PlainReporter", "Reporter", "RichReporter", "reporter_for"]


def _clean(text: str) -> str:
    # A builder's output or a registry's text must not move the cursor (tabs are fine).
    return clean(text, keep_tabs=True)


class Reporter(abc.ABC):
    """A ``Progress`` callback (``reporter(step, message)``) that can also track bytes.

    Use it as a context manager: a terminal display is started on entry and stopped
    (leaving its final state on screen) on exit.
    """

    @abc.abstractmethod
    def __call__(self, step: str, message: str) -> None:
        """Report one step."""

    def transfer(self, label: str, total: int) -> Callable[[int], None] | None:
        """A callback for the bytes of one blob as they are sent; None: not shown."""
        return None

    def done(self, label: str, *, ok: bool = True) -> None:  # noqa: B027 - optional hook
        """The transfer named ``label`` ended: done (sent, skipped, mounted) or failed."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop any live display."""


class PlainReporter(Reporter):
    """One ``[step] message`` line per step (the form for pipes, files and CI logs)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def __call__(self, step: str, message: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(f"[{_clean(step)}] {_clean(message)}\n")
        stream.flush()


class RichReporter(Reporter):
    """A rich display on a terminal: a bar per blob upload (bytes), steps printed above."""

    def __init__(self, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.console = Console(file=stream, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks: dict[str, tuple[Any, int]] = {}
        self._started = False

    def _start(self) -> None:
        if not self._started:
            self.progress.start()
            self._started = True

    def __call__(self, step: str, message: str) -> None:
        from rich.text import Text

        line = Text()
        line.append(f"{_clean(step)} ", style="bold cyan")
        line.append(_clean(message))
        self.console.print(line)

    def transfer(self, label: str, total: int) -> Callable[[int], None] | None:
        # The bar appears with the first bytes: blobs that are skipped or mounted get none.
        def advance(nbytes: int) -> None:
            entry = self._tasks.get(label)
            if entry is None:
                self._start()
                entry = (self.progress.add_task(_clean(label), total=max(total, 1)), total)
                self._tasks[label] = entry
            self.progress.advance(entry[0], nbytes)

        return advance

    def done(self, label: str, *, ok: bool = True) -> None:
        entry = self._tasks.pop(label, None)
        if entry is None:
            return
        if ok:
            self.progress.update(entry[0], completed=max(entry[1], 1))
        else:
            self.progress.update(entry[0], description=f"{_clean(label)} [red]failed[/]")

    def close(self) -> None:
        if self._started:
            self.progress.stop()
            self._started = False


def _is_terminal(stream: TextIO) -> bool:
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def reporter_for(stream: TextIO | None = None) -> Reporter:
    """Rich bars when ``stream`` (default stderr) is a terminal, plain lines otherwise."""
    stream = stream if stream is not None else sys.stderr
    if _is_terminal(stream):
        return RichReporter(stream)
    return PlainReporter(stream)
