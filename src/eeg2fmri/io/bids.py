"""Find simultaneous EEG-fMRI runs in a BIDS dataset and pair EEG with BOLD."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["EEG_EXTENSIONS", "RunRecord", "find_runs", "parse_entities"]

#: EEG file endings read through MNE (first match wins per run).
EEG_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set", ".fif")
_ENTITY = re.compile(r"(sub|ses|task|acq|run)-([a-zA-Z0-9]+)")


def parse_entities(name: str) -> dict[str, str]:
    """BIDS entities (sub, ses, task, acq, run) of a file name."""
    return {k: v for k, v in _ENTITY.findall(Path(name).name)}


@dataclass(frozen=True)
class RunRecord:
    """One simultaneous run: an EEG file and its BOLD file.

    Attributes
    ----------
    subject, session, task, run : str | None
        BIDS entities (``session``/``run`` are ``None`` when absent).
    eeg_path : Path
        EEG recording (any format MNE reads).
    bold_path : Path | None
        4D BOLD NIfTI (``None`` for EEG-only datasets).
    """

    subject: str
    session: str | None
    task: str | None
    run: str | None
    eeg_path: Path
    bold_path: Path | None

    @property
    def key(self) -> str:
        """A readable identifier such as ``sub-01_ses-1_task-rest_run-1``."""
        parts = [f"sub-{self.subject}"]
        for ent, val in (("ses", self.session), ("task", self.task), ("run", self.run)):
            if val is not None:
                parts.append(f"{ent}-{val}")
        return "_".join(parts)


def _bold_candidates(func_dir: Path, ent: dict[str, str]) -> list[Path]:
    out = []
    for p in sorted(func_dir.glob("*_bold.nii*")) if func_dir.is_dir() else []:
        e = parse_entities(p.name)
        if all(e.get(k) == ent.get(k) for k in ("sub", "ses", "task", "run")):
            out.append(p)
    return out


def find_runs(bids_root: str | os.PathLike, *, require_bold: bool = True, subjects: list[str] | None = None) -> list[RunRecord]:
    """Pair every EEG run of a BIDS dataset with its BOLD run.

    Parameters
    ----------
    bids_root : path-like
        BIDS root folder (containing ``sub-*`` folders).
    require_bold : bool
        Raise if an EEG run has no matching ``func/*_bold.nii[.gz]`` (same
        subject, session, task and run); ``False`` keeps EEG-only runs with
        ``bold_path=None``.
    subjects : list of str | None
        Restrict to these subject labels (without ``sub-``).

    Returns
    -------
    runs : list of RunRecord
        Sorted by subject, session, task, run.
    """
    root = Path(bids_root)
    if not root.is_dir():
        raise Eeg2fmriInputError(f"{root}: expected a BIDS dataset folder, found {'a file' if root.exists() else 'nothing'}; pass the folder that holds sub-*/.")
    eeg_files = []
    for ext in EEG_EXTENSIONS:
        eeg_files += list(root.glob(f"sub-*/eeg/*_eeg{ext}")) + list(root.glob(f"sub-*/ses-*/eeg/*_eeg{ext}"))
    if not eeg_files:
        raise Eeg2fmriInputError(
            f"{root}: expected EEG files sub-*/[ses-*/]eeg/*_eeg.{{vhdr,edf,bdf,set,fif}}, found none; "
            "is this a BIDS EEG dataset? For a published dataset's own layout see `eeg2fmri datasets`."
        )
    runs: dict[tuple, RunRecord] = {}
    for eeg in sorted(eeg_files):
        ent = parse_entities(eeg.name)
        if "sub" not in ent:
            continue
        if subjects is not None and ent["sub"] not in subjects:
            continue
        key = tuple(ent.get(k) for k in ("sub", "ses", "task", "run"))
        if key in runs:  # a second format of the same run (e.g. .edf next to .vhdr): keep the first
            continue
        func = eeg.parent.parent / "func"
        cands = _bold_candidates(func, ent)
        if len(cands) > 1:
            raise Eeg2fmriInputError(f"{eeg}: expected one matching BOLD file, found {len(cands)}: {[c.name for c in cands]}; remove duplicates or use acq- entities.")
        if not cands and require_bold:
            stem = "_".join(f"{k}-{ent[k]}" for k in ("sub", "ses", "task", "run") if k in ent)
            raise Eeg2fmriInputError(
                f"{eeg}: found EEG but no BOLD run; expected {func / (stem + '_bold.nii.gz')}. "
                "Add the BOLD file, remove the EEG run, or pass require_bold=False for EEG-only use."
            )
        runs[key] = RunRecord(ent["sub"], ent.get("ses"), ent.get("task"), ent.get("run"), eeg, cands[0] if cands else None)
    if not runs:
        raise Eeg2fmriInputError(f"{root}: no runs left for subjects={subjects}; check the subject labels (without 'sub-').")
    return [runs[k] for k in sorted(runs, key=lambda k: tuple("" if v is None else v for v in k))]
