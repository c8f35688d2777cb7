"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse


def add_common(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` on every subcommand."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="report what each step does (info messages)")
