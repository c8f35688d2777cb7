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
    acquisition : str | None
        The EEG's ``acq-`` label (``None`` when absent); part of :attr:`key`,
        so runs that differ only by it are kept apart.
    """

    subject: str
    session: str | None
    task: str | None
    run: str | None
    eeg_path: Path
    bold_path: Path | None
    acquisition: str | None = None

    @property
    def key(self) -> str:
        """A readable identifier such as ``sub-01_ses-1_task-rest_run-1`` (``..._task-rest_acq-a_run-1`` with ``acq-``)."""
        parts = [f"sub-{self.subject}"]
        for ent, val in (("ses", self.session), ("task", self.task), ("acq", self.acquisition), ("run", self.run)):
            if val is not None:
                parts.append(f"{ent}-{val}")
        return "_".join(parts)


def find_runs(
    bids_root: str | os.PathLike,
    *,
    require_bold: bool = True,
    subjects: list[str] | None = None,
    sessions: list[str] | None = None,
    tasks: list[str] | None = None,
    bold_entities: dict[str, str | None] | list[str] | None = None,
    derivatives: str | os.PathLike | None = None,
    space: str | None = None,
) -> list[RunRecord]:
    """Pair every EEG run of a BIDS dataset with its BOLD run.

    Pairing goes through mne-bids (:func:`eeg2fmri.io.pairing.pair_bids_runs`,
    which also returns the table of what was left out and why).

    Parameters
    ----------
    bids_root : path-like
        BIDS root folder (containing ``sub-*`` folders).
    require_bold : bool
        Raise if an EEG run has no matching ``func/*_bold.nii[.gz]`` (same
        subject, session, task and run, run indices compared as integers, and
        the same ``acq-`` label where both files have one); ``False`` keeps
        EEG-only runs with ``bold_path=None``.
    subjects, sessions, tasks : list of str | None
        Restrict to these labels (without ``sub-``/``ses-``/``task-``).
    bold_entities : dict | list of "K=V" | None
        Choose among BOLD files that share subject/session/task/run and differ
        by ``acq-`` (where the EEG has none), ``echo-``, ``ce-``, ``dir-``, ``rec-`` (or ``space-``), e.g.
        ``{"echo": "1"}``.
    derivatives : path-like | None
        fMRIPrep derivatives folder: BOLD is its
        ``*_space-<space>_desc-preproc_bold.nii.gz`` (confounds beside it).
    space : str | None
        fMRIPrep output space (with ``derivatives``).

    Returns
    -------
    runs : list of RunRecord
        Sorted by subject, session, task, run.
    """
    from eeg2fmri.io.pairing import pair_bids_runs

    root = Path(bids_root)
    table = pair_bids_runs(root, subjects=subjects, sessions=sessions, tasks=tasks, bold_entities=bold_entities, derivatives=derivatives,
                           space=space, keep_eeg_only=not require_bold)
    eeg_rows = [r for r in table.rows if r.eeg_path is not None]
    if not eeg_rows and subjects is None:
        raise Eeg2fmriInputError(
            f"{root}: expected EEG files sub-*/[ses-*/]eeg/*_eeg.{{vhdr,edf,bdf,set,fif}}, found none; "
            "is this a BIDS EEG dataset? For a published dataset's own layout see `eeg2fmri datasets`; for files in folders of your own, list them in a runs table (tab-separated columns eeg, bold, subject; eeg2fmri prepare runs.tsv)."
        )
    for r in eeg_rows:
        if r.status == "ambiguous":
            raise Eeg2fmriInputError(f"{r.eeg_path}: expected one matching BOLD file, found {r.reason}.")
        if r.status == "left out":
            raise Eeg2fmriInputError(
                f"{r.eeg_path}: found EEG but {r.reason}. "
                "Add the BOLD file, remove the EEG run, or pass require_bold=False for EEG-only use."
            )
    runs = [RunRecord(r.subject, r.session, r.task, r.run, r.eeg_path, r.bold_path, r.acquisition) for r in eeg_rows]
    if not runs:
        raise Eeg2fmriInputError(f"{root}: no runs left for subjects={subjects}; check the subject labels (without 'sub-').")
    return runs


def inherited_sidecars(path: Path, kind: str, suffix: str) -> list[Path]:
    """BIDS sidecars ``*_<suffix>`` a ``*_<kind>.*`` file inherits (the inheritance principle), nearest level first and,
    at one level, the most specific first: from the file's own folder up to the dataset root (the folder with
    dataset_description.json), those whose entities are all among the file's own, the file's own sidecar excluded
    (e.g. ``task-rest_eeg.json`` at the root for ``sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr``). ``[]`` outside a BIDS
    dataset (no dataset_description.json within four levels)."""
    name = path.name
    tag = f"_{kind}"
    if tag not in name:
        return []
    folders = [path.parent]
    while not (folders[-1] / "dataset_description.json").exists():
        if len(folders) > 4 or folders[-1].parent == folders[-1]:
            return []  # not inside a BIDS dataset: nothing to inherit from
        folders.append(folders[-1].parent)
    stem = name[: name.rindex(tag)]
    mine = set(stem.split("_"))
    own = path.with_name(f"{stem}_{suffix}")
    out: list[Path] = []
    for folder in folders:
        found = []
        for cand in folder.glob(f"*_{suffix}"):
            ents = set(cand.name[: -len(suffix) - 1].split("_"))
            if cand != own and ents and ents <= mine and all("-" in e for e in ents):
                found.append((len(ents), cand.name, cand))
        out += [c for _, _, c in sorted(found, reverse=True)]
    return out
