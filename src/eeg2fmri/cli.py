"""Command-line interface: ``eeg2fmri <command> ...`` (see ``eeg2fmri --help``).

Subcommands live in :mod:`eeg2fmri.commands`, one module each.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from eeg2fmri.commands._common import add_common
from eeg2fmri.utils.logs import logger, set_log_level
from eeg2fmri.utils.validation import Eeg2fmriInputError

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
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP))
        mod.add_arguments(p)
        add_common(p)
        handlers[mod.NAME] = mod
    return parser, handlers


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eeg2fmri`` console script; returns the exit status."""
    parser, handlers = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    set_log_level("info" if args.verbose else "warning")
    try:
        return int(handlers[args.command].run(args) or 0)
    except Eeg2fmriInputError as err:
        logger.debug("input error", exc_info=True)
        print(f"eeg2fmri {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was left behind.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
