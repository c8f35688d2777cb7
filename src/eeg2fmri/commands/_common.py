"""Helpers shared by subcommands."""

from __future__ import annotations

import argparse


def add_common(p: argparse.ArgumentParser) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` on every subcommand."""
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="report what each step does (info messages)")


def add_device(p: argparse.ArgumentParser, what: str) -> None:
    """``--device auto|cpu|cuda|cuda:N`` for commands that run torch models."""
    p.add_argument("--device", default="auto", metavar="{auto,cpu,cuda,cuda:N}",
                   help=f"where torch models {what} (default: auto, a visible GPU, else the CPU)")
