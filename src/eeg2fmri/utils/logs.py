"""The package's single logger and progress bars (quiet by default)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from tqdm.auto import tqdm

logger = logging.getLogger("eeg2fmri")
# no NullHandler: until the user configures logging (or calls set_log_level), Python's last-resort handler prints the
# package's warnings to stderr, as MNE's are -- a user of the Python API sees "a warning says so" (user test 8: a BOLD cut
# to half its volumes prepared silently); once any handler is configured (logging.basicConfig, pytest), that one decides

T = TypeVar("T")

_LEVELS = {
    True: logging.INFO,
    False: logging.WARNING,
    None: None,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message (a notebook, a test harness or a caller that
    replaces it later: a handler bound to the stream of its first call wrote to a closed file)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def set_log_level(verbose: bool | str | int | None = "info") -> None:
    """Set the eeg2fmri logger level and attach a stderr handler once.

    Parameters
    ----------
    verbose : bool | str | int | None
        ``True``/``"info"`` shows progress messages, ``False``/``"warning"``
        only warnings, ``"debug"`` everything; an int is a logging level.
    """
    level = verbose if isinstance(verbose, int) and not isinstance(verbose, bool) else _LEVELS.get(verbose)
    if level is None:
        return
    logger.setLevel(level)
    if not any(getattr(h, "_eeg2fmri", False) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._eeg2fmri = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


class _Once(logging.Filter):
    """Lets each warning text through once (records below WARNING always)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


_SAID_ONCE: set[str] = set()


def warn_once_per_process(msg: str) -> None:
    """A warning the first time this process gives ``msg``, the info level after that (e.g. a run's non-steady-state
    volumes, said again each time the run is prepared: another representation, a second call in a script; user test 16).
    :func:`warnings_once` does the same within a block."""
    if msg in _SAID_ONCE:
        logger.info("%s", msg)
    else:
        _SAID_ONCE.add(msg)
        logger.warning("%s", msg)


@contextmanager
def warnings_once() -> Iterator[None]:
    """Within the block, a warning the package logger already gave (the same text) is not given again: e.g. the same
    runs prepared once per input representation say what they found in them once."""
    f = _Once()
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)


def progress(iterable: Iterable[T], *, desc: str, total: int | None = None, enabled: bool = True) -> Iterator[T]:
    """Wrap an iterable in a tqdm progress bar that can be switched off.

    Parameters
    ----------
    iterable : iterable
        What to iterate over.
    desc : str
        Short label shown left of the bar.
    total : int | None
        Number of items when ``len(iterable)`` is unavailable.
    enabled : bool
        ``False`` returns the plain iterable (no output at all).
    """
    if not enabled:
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, leave=False, dynamic_ncols=True, file=sys.stderr)
