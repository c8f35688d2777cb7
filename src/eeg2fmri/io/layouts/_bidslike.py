"""Helpers for layouts that are BIDS-like but not plain BIDS (inherited sidecars, entity keys)."""

from __future__ import annotations

import json
from pathlib import Path

from eeg2fmri.io.bids import parse_entities
from eeg2fmri.io.bold import bold_sidecar

__all__ = ["entity_key", "inherited_tr", "key_label"]


def entity_key(path: Path) -> tuple[str | None, str | None, str | None, str | None]:
    """``(sub, ses, task, run)`` of a BIDS-like file name (missing entities are ``None``)."""
    e = parse_entities(path.name)
    return e.get("sub"), e.get("ses"), e.get("task"), e.get("run")


def key_label(key: tuple[str | None, ...]) -> str:
    """``sub-x_task-y`` for messages."""
    return "_".join(f"{n}-{v}" for n, v in zip(("sub", "ses", "task", "run"), key) if v is not None)


def inherited_tr(bold: Path, root: Path, task: str | None) -> float | None:
    """``RepetitionTime`` from the top-level ``task-<task>_bold.json`` when the run's own sidecar lacks it.

    Returns ``None`` when the run's sidecar has it (``read_bold`` then reads
    and cross-checks it) or no sidecar has it (the NIfTI header is used).
    """
    own = bold_sidecar(bold)
    if own is not None and "RepetitionTime" in json.loads(own.read_text()):
        return None
    top = root / f"task-{task}_bold.json"
    if task is not None and top.is_file():
        meta = json.loads(top.read_text())
        if "RepetitionTime" in meta:
            return float(meta["RepetitionTime"])
    return None
