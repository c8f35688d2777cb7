"""Command-line interface: ``eeg2fmri <command> ...`` (see ``eeg2fmri --help``).

Subcommands live in :mod:`eeg2fmri.commands`, one module each.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import re
import sys
import time

from eeg2fmri.commands._common import add_common
from eeg2fmri.utils import timing as _timing
from eeg2fmri.utils.logs import logger, set_log_level
from eeg2fmri.utils.validation import Eeg2fmriInputError

_timing.CLI_STARTED = time.perf_counter()  # when the command line's module was imported: benchmark reports its start-up from it

DESCRIPTION = """Synthesise fMRI (BOLD) from EEG: simulate data, prepare recordings, train,
evaluate honestly, and turn EEG-only recordings into 4D NIfTI.

Start with `eeg2fmri quickstart` (runs everything on simulated data)."""


def _command_modules() -> list:
    import eeg2fmri.commands as pkg

    mods = [importlib.import_module(f"eeg2fmri.commands.{m.name}") for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]
    return sorted(mods, key=lambda m: (getattr(m, "ORDER", 50), m.NAME))


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    """The argument parser and a map from subcommand name to its module."""
    from eeg2fmri import __version__

    parser = argparse.ArgumentParser(prog="eeg2fmri", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"eeg2fmri {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    handlers = {}
    for mod in _command_modules():
        # no abbreviated options: `datasets --check X --layout files` was read as --layout-option (user test 26)
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP), allow_abbrev=False)
        mod.add_arguments(p)
        add_common(p)
        handlers[mod.NAME] = mod
    return parser, handlers


#: errno of an OSError that is about a path the user chose (where to write, what to read), not a bug: reason shown.
_PATH_ERRNOS = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "is a folder, expected a file",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
}
if hasattr(errno, "EDQUOT"):  # not on every platform
    _PATH_ERRNOS[errno.EDQUOT] = "disk quota exceeded"
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}

#: A hidden temporary beside an output (eeg2fmri.utils.atomic.temp_prefix: ``.STEM.KIND-HOST-PID-...``).
_TEMPORARY = re.compile(r"^\.[^/]+\.[a-z]+-[A-Za-z0-9]+-\d+-")


def _file_in_the_way(path: str) -> str | None:
    """The deepest existing non-folder among ``path`` and its parents (where a folder was needed), if any."""
    while path and not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    return path if path and os.path.exists(path) and not os.path.isdir(path) else None


def path_error_message(err: OSError, *, has_out: bool = True) -> str | None:
    """One line for an OSError about a path the user gave (``PATH: reason; fix``), or None for any other OSError.

    A hidden temporary an output is written through is reported as the folder it was to be written in.
    """
    other = "choose another --out" if has_out else "choose another path"
    if err.filename is None and (err.errno in _NO_SPACE or re.search(r"\d+ requested and \d+ written", str(err))):
        # a full disk met inside a library's write (gzip, numpy's tofile: no file name; user test 29: raw tracebacks)
        return f"a write was cut short ({err}): the disk is full or over quota; free some space or {other}."
    if err.errno not in _PATH_ERRNOS or err.filename is None:
        return None
    path = os.fsdecode(err.filename) if isinstance(err.filename, (str, bytes, os.PathLike)) else str(err.filename)
    reason = _PATH_ERRNOS[err.errno]
    if _TEMPORARY.match(os.path.basename(path)):
        path = os.path.dirname(path) or "."
        reason = f"cannot write in this folder ({reason})"
    elif err.errno in (errno.EEXIST, errno.ENOTDIR) and _file_in_the_way(path) is not None:
        path, reason = _file_in_the_way(path), "expected a folder, found a file"
    elif err.errno == errno.EROFS or err.errno in _NO_SPACE:
        reason = f"cannot write ({reason})"
    if err.errno in (errno.EACCES, errno.EPERM):
        fix = f"fix the permissions or {other}"
    elif err.errno in _NO_SPACE:
        fix = f"free some space or {other}"
    else:
        fix = other
    return f"{path}: {reason}; {fix}."


#: "pass name=value (--flag ...)" in a Python API message -> "pass --flag ..." on the command line (user test 9: "pass
#: overwrite=True (--overwrite)" read as an API hint); the flag's own argument (FILE, LABELS.nii.gz) is kept.
_API_HINT = re.compile(r"pass [A-Za-z_]\w*=(<[^>]*>|[^\s()]*) ?\((--[\w-]+)( [A-Z][\w.]*)?(?: on the command line)?\)")


def _flag_hint(m: re.Match) -> str:
    value, flag, arg = m.groups()
    return f"pass {flag}{arg or (' ' + value if value.startswith('<') else '')}"


def _tidy(message: str, command: str) -> str:
    """An error message as the command line prints it: without a second ``COMMAND:`` prefix (the Python API's messages
    name the function), without ``?.`` (a question that ends a sentence), and with the command-line flag where the
    message offers a keyword and its flag ("pass overwrite=True (--overwrite)" -> "pass --overwrite")."""
    if message.startswith(f"{command}: "):
        message = message[len(command) + 2 :]
    message = _API_HINT.sub(_flag_hint, message)
    return message.replace("?.", "?")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eeg2fmri`` console script; returns the exit status."""
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    # a path given as '~/...' (quoted, so the shell left it) is the home folder's, as a shell would read it (user test 29:
    # `simulate '~/x'` made a folder named '~')
    for key, val in vars(args).items():
        if isinstance(val, str) and (val == "~" or val.startswith("~/")):
            setattr(args, key, os.path.expanduser(val))
        elif isinstance(val, list) and any(isinstance(v, str) and v.startswith("~/") for v in val):
            setattr(args, key, [os.path.expanduser(v) if isinstance(v, str) and v.startswith("~/") else v for v in val])
    set_log_level("info" if args.verbose else "warning")
    import warnings

    shown = warnings.formatwarning
    warnings.formatwarning = cli_warning_format(args.command)  # (user test 20: warnings echoed a line of our source)
    try:
        return int(handlers[args.command].run(args) or 0)
    except Eeg2fmriInputError as err:
        logger.debug("input error", exc_info=True)
        print(f"eeg2fmri {args.command}: error: {_tidy(str(err), args.command)}", file=sys.stderr)
        return 2
    except OSError as err:
        message = path_error_message(err, has_out=hasattr(args, "out"))
        if message is None:  # not about a path the user chose: a bug, keep the traceback
            raise
        logger.debug("file system error", exc_info=True)
        print(f"eeg2fmri {args.command}: error: {message}", file=sys.stderr)
        return 2
    except MemoryError as err:  # (user test 47: a 2 mm LOSO benchmark ended with numpy's _ArrayMemoryError traceback after 21 min)
        logger.debug("out of memory", exc_info=True)
        print(f"eeg2fmri {args.command}: error: out of memory ({err}); the data are too large for this machine's memory: prepare with a "
              "coarser grid (prepare option voxel_size, e.g. 3 or 4 mm), region targets (prepare option atlas) or a smaller mask, or use a "
              "machine with more memory (-v: the traceback)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # resumable commands (train, tune) keep their state on purpose and say how to go on; the others write atomically
        said = getattr(handlers[args.command], "interrupted", None)
        print(f"interrupted; {said(args) if said else 'no partial output was left behind.'}", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = shown


def cli_warning_format(command: str):
    """A ``warnings.formatwarning`` for the command line: ``eeg2fmri COMMAND: warning: MESSAGE`` on one line (Python's
    default adds the file, line number and the line of source that warned, which means nothing to a user)."""

    def fmt(message, category, filename, lineno, line=None) -> str:
        return f"eeg2fmri {command}: warning: {message}\n"

    return fmt


if __name__ == "__main__":
    sys.exit(main())
