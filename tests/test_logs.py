"""The package logger: quiet by default, but its warnings reach a Python API user who configured no logging."""

from __future__ import annotations

import subprocess
import sys


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)


def test_warnings_are_printed_without_logging_configured_and_info_is_not():
    """User test 8: with a NullHandler on the package logger every "a warning says so" was silent in a script; now the
    last-resort handler prints warnings (not info) to stderr until logging is configured, and a configured root handler
    takes them instead (printed once, in its format); set_log_level('info') shows info messages."""
    out = _run("from eeg2fmri.utils.logs import logger\nlogger.warning('a visible warning')\nlogger.info('a quiet note')")
    assert out.stderr.strip() == "a visible warning" and out.stdout == ""
    out = _run("import logging\nlogging.basicConfig(format='ROOT %(levelname)s %(message)s')\nfrom eeg2fmri.utils.logs import logger\n"
               "logger.warning('once')")
    assert out.stderr.strip() == "ROOT WARNING once"
    out = _run("from eeg2fmri.utils.logs import logger, set_log_level\nset_log_level('info')\nlogger.info('a note')\nlogger.warning('w')")
    assert out.stderr.split() == ["a", "note", "w"]


def test_the_handler_writes_to_the_current_stderr(monkeypatch):
    """A handler bound to the stderr of its first call wrote to a closed stream once a caller (a test harness, a notebook)
    had replaced it: a later warning printed a logging traceback instead of itself."""
    import io
    import sys

    from eeg2fmri.utils.logs import logger, set_log_level

    monkeypatch.setattr(logger, "level", logger.level)  # restored afterwards
    set_log_level("warning")
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logger.warning("one")
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logger.warning("two")
    assert second.getvalue().strip().endswith("two") and "Traceback" not in second.getvalue()
