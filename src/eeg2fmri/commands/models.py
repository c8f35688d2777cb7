"""``eeg2fmri models``."""

from __future__ import annotations

NAME = "models"
ORDER = 90
HELP = "list the registered models"
DESCRIPTION = "List every registered model with its one-line description."


def add_arguments(p) -> None:
    pass


def run(args) -> int:
    from eeg2fmri.models import get_model_class, list_models

    for name in list_models():
        doc = (get_model_class(name).__doc__ or "").strip().splitlines()
        print(f"{name:22s} {doc[0] if doc else ''}")
    return 0
