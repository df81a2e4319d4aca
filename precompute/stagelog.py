"""The build's stage lines: one log line per stage with its wall time and what it produced.

A build runs for minutes to hours; its log should say where the time went and what each stage made
("stage 1 extract: 80 texts, 80 clips, 12 layers ... in 3 min 12 s"), so a user can tell a slow
stage from a stuck one and check the counts against what they asked for. The stage sets
``produced`` inside the ``with`` block; a stage that raises logs nothing (its error says why).
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

log = logging.getLogger("precompute")


def format_duration(seconds: float) -> str:
    """``12.3 s``, ``3 min 12 s`` or ``1 h 02 min``: the precision a reader of a build log needs."""
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {seconds}")
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def counted(n: int, word: str, plural: str | None = None) -> str:
    """``1 clip``, ``5,200 clips``: a count with its noun (thousands separated)."""
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


class Stage:
    """``with Stage("1 extract") as stage: ...; stage.produced = "..."`` logs, on success,
    ``stage 1 extract: <produced> in <wall time>``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.produced = ""
        self._start = 0.0

    def __enter__(self) -> Stage:
        self._start = time.monotonic()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if exc_type is None:
            log.info("stage %s: %s in %s", self.label, self.produced or "nothing to do",
                     format_duration(time.monotonic() - self._start))
