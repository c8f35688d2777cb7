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


def add_metric(p: argparse.ArgumentParser, where: str) -> None:
    """``--metric NAME=MODULE:FUNCTION`` (repeatable): a metric of the user's own."""
    p.add_argument("--metric", action="append", default=[], metavar="NAME=MODULE:FUNCTION",
                   help="a metric of your own, function(y_true, y_pred) -> float on one subject's test windows (module on PYTHONPATH "
                        f"or a .py file); repeatable; {where}")


def parse_metrics(items: list[str]) -> dict[str, str]:
    """``{name: "module:function"}`` from ``--metric`` values (refused unless NAME=MODULE:FUNCTION)."""
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    metrics = {}
    for item in items:
        name, eq, target = item.partition("=")
        if not eq or not name.strip() or ":" not in target:
            raise Eeg2fmriInputError(f"--metric: expected NAME=MODULE:FUNCTION (e.g. spearman=mylab.metrics:spearman), got {item!r}.")
        metrics[name.strip()] = target.strip()
    from eeg2fmri.workflows.benchmark import absolute_metric

    return {k: absolute_metric(v) for k, v in metrics.items()}  # (worker processes may run in another folder)
