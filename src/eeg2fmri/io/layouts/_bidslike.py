"""Helpers for layouts that are BIDS-like but not plain BIDS (inherited sidecars, entity keys, acq- pairing)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eeg2fmri.io.bids import parse_entities
from eeg2fmri.io.bold import bold_sidecar
from eeg2fmri.io.pairing import acquisition_candidates, natural_key
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["EntityPairing", "entity_key", "index_files", "inherited_tr", "key_label", "key_order", "pair_entities"]

#: The entities of a key, in file-name order.
KEY_ENTITIES = ("sub", "ses", "task", "acq", "run")


def entity_key(path: Path) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    """``(sub, ses, task, acq, run)`` of a BIDS-like file name (missing entities are ``None``)."""
    e = parse_entities(Path(path).name)
    return tuple(e.get(k) for k in KEY_ENTITIES)  # type: ignore[return-value]


def key_label(key: tuple[str | None, ...]) -> str:
    """``sub-x_task-y_acq-z`` for messages (the entities present)."""
    return "_".join(f"{n}-{v}" for n, v in zip(KEY_ENTITIES, key) if v is not None)


def key_order(key: tuple[str | None, ...]) -> tuple:
    """Sort key of runs: sub, ses, task, run, then acq, numbers in numeric order (as
    :func:`eeg2fmri.io.pairing.pair_bids_runs` sorts its table: ``run-2`` before ``run-10``)."""
    sub, ses, task, acq, run = key
    return tuple(natural_key(v) for v in (sub, ses, task, run, acq))


def index_files(paths: Iterable[Path], what: str, key=None) -> dict[tuple, Path]:
    """``{entity_key: path}`` of files that must have one file per sub/ses/task/acq/run.

    Parameters
    ----------
    paths : iterable of Path
    what : str
        What the files are, for the message (``"BOLD"``, ``"raw EEG"``).
    key : callable | None
        ``path -> key`` (default :func:`entity_key`).

    Raises
    ------
    Eeg2fmriInputError
        Two files with the same entities (they differ by another entity, an extension or a prefix), both named.
    """
    key = key or entity_key
    out: dict[tuple, Path] = {}
    for p in sorted(paths):
        k = key(p)
        if k in out:
            raise Eeg2fmriInputError(
                f"{p}: expected one {what} file per sub/ses/task/acq/run, found it and {out[k].name} with the same entities "
                f"({key_label(k)}); the run would pair with either. Move one of them out of the dataset, or give each its own acq- "
                "label (the EEG and the BOLD file of one recording the same one).")
        out[k] = p
    return out


@dataclass
class EntityPairing:
    """EEG and BOLD files paired by their entities (see :func:`pair_entities`).

    Attributes
    ----------
    pairs : dict
        EEG key -> BOLD key.
    eeg_only : dict
        EEG key -> why no BOLD pairs with it (empty when no BOLD file of the run exists; otherwise the BOLD files
        left aside for another acq- label, named).
    bold_only : list
        Keys of the BOLD files no EEG file pairs with.
    notes : list of str
        A BOLD file shared by several EEG files (acq- labels on the EEG only).
    """

    pairs: dict[tuple, tuple] = field(default_factory=dict)
    eeg_only: dict[tuple, str] = field(default_factory=dict)
    bold_only: list[tuple] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def pair_entities(eegs: Mapping[tuple, Path], bolds: Mapping[tuple, Path]) -> EntityPairing:
    """Pair EEG and BOLD files keyed by ``(sub, ses, task, acq, run)`` as the generic BIDS pairing does.

    EEG and BOLD share sub, ses, task and run; an ``acq-`` label on both must be the same, a BOLD without
    ``acq-`` serves an EEG with one when no BOLD has its label
    (:func:`eeg2fmri.io.pairing.acquisition_candidates`).

    Raises
    ------
    Eeg2fmriInputError
        An EEG file without ``acq-`` whose run has several BOLD files that differ by ``acq-``: which one is its
        recording is unknown (the files are named).
    """
    by_base: dict[tuple, list[tuple[Path, dict[str, str]]]] = {}
    key_of: dict[Path, tuple] = {}
    for k, p in bolds.items():
        by_base.setdefault(k[:3] + k[4:], []).append((p, {"acq": k[3]} if k[3] is not None else {}))
        key_of[p] = k
    out = EntityPairing()
    claimed: dict[Path, list[tuple]] = {}
    for k in sorted(eegs, key=key_order):
        cands, other = acquisition_candidates(k[3], by_base.get(k[:3] + k[4:], []))
        for p, _ in cands:
            claimed.setdefault(p, [])
        if len(cands) > 1:
            names = ", ".join(p.name for p, _ in cands)
            raise Eeg2fmriInputError(
                f"{eegs[k]}: expected one BOLD file for this EEG run, found {len(cands)} that differ by their acq- label ({names}); "
                f"give the EEG file the acq- label of its BOLD file (e.g. {key_label(key_of[cands[0][0]])}), or move the other BOLD "
                "files out of the dataset.")
        if cands:
            out.pairs[k] = key_of[cands[0][0]]
            claimed[cands[0][0]].append(k)
        else:
            out.eeg_only[k] = (f"BOLD with another acq- label only ({', '.join(p.name for p in other)}; an acq- label on both files must "
                               "be the same: rename them so that they agree)") if other else ""
    out.bold_only = sorted((key_of[p] for p in bolds.values() if p not in claimed), key=key_order)
    for p, ks in sorted(claimed.items()):
        if len(ks) > 1:
            out.notes.append(f"{p.name} is the BOLD of {len(ks)} EEG runs ({', '.join(key_label(k) for k in ks)}); each is prepared with it")
    return out


def inherited_tr(bold: Path, root: Path, task: str | None) -> float | None:
    """``RepetitionTime`` from the top-level ``task-<task>_bold.json`` when the run's own sidecar lacks it.

    Returns ``None`` when the run's sidecar has it (``read_bold`` then reads
    and cross-checks it) or no sidecar has it (the NIfTI header is used).
    """
    own = bold_sidecar(bold)
    if own is not None and "RepetitionTime" in json.loads(own.read_text(encoding="utf-8")):
        return None
    top = root / f"task-{task}_bold.json"
    if task is not None and top.is_file():
        meta = json.loads(top.read_text(encoding="utf-8"))
        if "RepetitionTime" in meta:
            return float(meta["RepetitionTime"])
    return None
