"""A one-line progress bar for long Monte Carlo runs, drawn only on a terminal.

:func:`terminal_progress` returns a callback ``progress(done, total)`` (the signature that
:func:`harness.montecarlo.sample_ntk` calls after each chunk) or ``None`` when there is no
terminal to draw on: stderr is not a TTY, the process is an xdist worker (its output is not
a terminal; pytest-xdist shows per-case progress instead), or ``NTK_HARNESS_PROGRESS=0``.

Inside pytest, output is captured; :func:`for_item` suspends capturing around each draw
(pytest's ``capturemanager``) and appends the bar to pytest's current line (after the test
id with ``-v``, after the dots without), then erases it when the case's sampling is done,
so pytest's own line is left as it was.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, TextIO

Progress = Callable[[int, int], None]


class _Bar:
    def __init__(self, label: str, stream: TextIO, width: int, suspend=None, interval: float = 0.2):
        self.label, self.stream, self.width = label, stream, width
        self.suspend = suspend or contextlib.nullcontext
        self.interval = interval
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.drawn = 0   # characters of the bar currently on the line

    def _text(self, done: int, total: int) -> str:
        fraction = min(max(done / total, 0.0), 1.0) if total else 1.0
        cells = max(self.width - len(self.label) - 24, 5)
        filled = int(round(fraction * cells))
        elapsed = time.monotonic() - self.started
        return f" {self.label} [{'#' * filled}{'.' * (cells - filled)}] {done}/{total} {elapsed:4.0f}s"

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        finished = total and done >= total
        if not finished and now - self.last_draw < self.interval:
            return
        self.last_draw = now
        with self.suspend():
            erase = "\b" * self.drawn + " " * self.drawn + "\b" * self.drawn
            if finished:
                self.stream.write(erase)
                self.drawn = 0
            else:
                text = self._text(done, total)[: self.width]
                self.stream.write(erase + text)
                self.drawn = len(text)
            self.stream.flush()


def _disabled() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER")) or os.environ.get("NTK_HARNESS_PROGRESS", "1") == "0"


def terminal_progress(label: str, stream: TextIO | None = None, width: int = 60) -> Progress | None:
    """A progress callback drawing on ``stream`` (default stderr), or None if it is not a terminal."""
    stream = stream or sys.stderr
    if _disabled() or not getattr(stream, "isatty", lambda: False)():
        return None
    return _Bar(label, stream, width)


def for_item(item, label: str | None = None) -> Progress | None:
    """A progress callback for a pytest item: draws on the real terminal around pytest's capture."""
    if _disabled():
        return None
    config = item.config
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return None
    writer = getattr(reporter, "_tw", None)
    stream = getattr(writer, "_file", None)
    suspend = capture.global_and_fixture_disabled if capture is not None else contextlib.nullcontext
    try:
        with suspend():   # while a test runs, fd 1 and 2 are redirected to pytest's capture files
            terminal = stream is not None and stream.isatty()
        free = writer.fullwidth - writer.width_of_current_line - 1
    except Exception:  # noqa: BLE001 - private terminal writer API; no bar rather than a crash
        return None
    if not terminal or free < 30:
        return None
    return _Bar(label or "Monte Carlo", stream, min(free, 70), suspend=suspend)
