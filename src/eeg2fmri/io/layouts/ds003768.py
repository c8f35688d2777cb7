"""OpenNeuro ds003768: Penn State simultaneous EEG-fMRI sleep study (rest and sleep runs, sleep stages)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.io.layouts.bids import scan_bids
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["Ds003768Layout", "normalise_sleep_stage", "read_sleep_stages"]

TASKS = ("rest", "sleep")


def read_sleep_stages(path: str | Path) -> dict[str, tuple[tuple[float, str], ...]]:
    """Sleep stages of one subject, per run, from ``sourcedata/sub-XX-sleep-stage.tsv``.

    The file has a ``session`` column naming the run (``task-sleep_run-1``), an
    ``epoch_start_time_sec`` column and a ``30-sec_epoch_sleep_stage`` column
    (W, 1, 2, 3, R); some files add a leading subject column and column names
    may carry spaces.

    Parameters
    ----------
    path : path-like
        The subject's sleep-stage TSV.

    Returns
    -------
    stages : dict
        ``{"task-sleep_run-1": ((start_s, stage), ...), ...}``, epochs in file order.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in csv.DictReader(f, delimiter="\t")]
    cols = list(rows[0]) if rows else []
    ses = next((c for c in cols if c.lower() == "session"), None)
    start = next((c for c in cols if "start" in c.lower()), None)
    stage = next((c for c in cols if "stage" in c.lower()), None)
    if rows and (ses is None or start is None or stage is None):
        raise Eeg2fmriInputError(f"{path}: expected columns session, epoch_start_time_sec and 30-sec_epoch_sleep_stage, found {cols}; is this a ds003768 sleep-stage file?")
    out: dict[str, list[tuple[float, str]]] = {}
    for r in rows:
        try:
            t = float(r[start])
        except ValueError:
            continue  # an unscored or malformed epoch line
        out.setdefault(r[ses], []).append((t, r[stage]))
    return {k: tuple(v) for k, v in out.items()}


STAGES = {"w": "W", "wake": "W", "1": "1", "n1": "1", "s1": "1", "2": "2", "n2": "2", "s2": "2", "3": "3", "n3": "3", "s3": "3",
          "4": "3", "s4": "3", "r": "R", "rem": "R"}


def normalise_sleep_stage(label: str) -> tuple[str | None, bool]:
    """A scorer's sleep-stage entry as one of W, 1, 2, 3, R, and whether the scorer marked it uncertain.

    ``'W (uncertain)'`` is ``('W', True)``; N1-N3/S1-S4/REM/Wake spellings map to 1, 2, 3 (S4 to 3, as AASM merges it)
    and R; an entry naming no single stage (``'unscorable'``, ``'2 or 3 (unscorable)'``, empty) is ``(None, False)``.

    Parameters
    ----------
    label : str
        The ``30-sec_epoch_sleep_stage`` entry.

    Returns
    -------
    stage : str | None
    uncertain : bool
    """
    text = str(label or "").strip().lower()
    uncertain = "uncertain" in text
    core = text.split("(", 1)[0].strip()
    if "unscor" in text or " or " in core:
        return None, False
    stage = STAGES.get(core)
    return (stage, uncertain) if stage is not None else (None, False)


@register_layout("ds003768")
class Ds003768Layout(Layout):
    """ds003768: 33 subjects, BrainVision 32 channels with R128 volume markers, BOLD 80x80x35 at TR 2.1 s."""

    TITLE = "ds003768 Penn State sleep study: 33 subjects, task rest/sleep runs, 32-ch BrainVision with R128, TR 2.1 s, sleep stages"
    DESCRIPTION = (
        "The OpenNeuro snapshot: sub-XX/eeg/sub-XX_task-{rest,sleep}_run-N_eeg.{vhdr,vmrk,eeg} (no EEG sidecars; 32-channel "
        "Brain Products MR amplifier, raw so gradient artifacts are present [I], likely INT_16 at 5 kHz [I]), "
        "sub-XX/func/sub-XX_task-{rest,sleep}_run-N_bold.{nii.gz,json} (80x80x35, 4 mm slices, TR 2.1 s) and "
        "sourcedata/sub-XX-sleep-stage.tsv (30-s sleep stages W/1/2/3/R per run). It is plain BIDS, so runs are "
        "paired through mne-bids like the bids layout (its options apply); one 'R128' marker per volume; the TR is "
        "fixed at 2.1 s. A channel named ECG/EKG (or EOG*/EMG*) is typed non-EEG [I: the channel list is not in the "
        "listing]. Each run carries its sleep stages in run.meta['sleep_stages'] ((start_s, stage), ...) when the "
        "subject's sleep-stage file names it; prepare stores them per volume (normalised to W/1/2/3/R; 'unscorable' and "
        "'2 or 3' entries unlabelled; epoch times taken from the run's first volume [I]) as labels sleep_stage and "
        "sleep_stage_certain (epochs the scorer marked uncertain unlabelled): eeg2fmri classify --labels sleep_stage."
    )
    NEEDS = (
        "sub-XX/eeg/sub-XX_task-{rest,sleep}_run-N_eeg.vhdr + .vmrk + .eeg",
        "sub-XX/func/sub-XX_task-{rest,sleep}_run-N_bold.nii.gz (+ _bold.json)",
        "sourcedata/sub-XX-sleep-stage.tsv (optional: sleep stages)",
    )
    MARKER = ("R128",)
    TR = 2.1
    NON_EEG = ("ECG", "EKG", "EOG*", "EMG*")
    OPTIONS = {
        "tasks": "'rest', 'sleep' or a list of them (default: both)",
        "require_bold": "as for the bids layout (default: EEG runs without BOLD are left out)",
        "bold_entities": "as for the bids layout",
        "derivatives": "as for the bids layout (fMRIPrep output of this dataset)",
        "space": "as for the bids layout",
        "sessions": "as for the bids layout",
    }

    def detect(self, root: Path) -> bool:
        return next(iter(root.glob("sourcedata/sub-*-sleep-stage.tsv")), None) is not None and any(
            next(iter(root.glob(f"sub-*/eeg/sub-*_task-{t}_run-*_eeg.vhdr")), None) is not None for t in TASKS
        )

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        tasks = options.pop("tasks", None)
        tasks = list(TASKS) if tasks is None else [tasks] if isinstance(tasks, str) else list(tasks)
        bad = [t for t in tasks if t not in TASKS]
        if bad:
            raise Eeg2fmriInputError(f"ds003768: tasks={bad}; expected 'rest' and/or 'sleep'.")
        sc = scan_bids(self, root, subjects, tasks=tasks, **options)
        stages: dict[str, dict] = {}
        runs = []
        for r in sc.runs:
            f = root / "sourcedata" / f"sub-{r.subject}-sleep-stage.tsv"
            if r.subject not in stages:
                stages[r.subject] = read_sleep_stages(f) if f.is_file() else {}
                if not f.is_file():
                    sc.notes.append(f"sub-{r.subject}: no sourcedata/{f.name}; runs have no sleep stages")
            meta = dict(r.meta)
            label = f"task-{r.task}_run-{r.run}"
            if label in stages[r.subject]:
                epochs = stages[r.subject][label]
                norm = [(t, *normalise_sleep_stage(s)) for t, s in epochs]
                # per-volume labels prepare stores (classify --labels sleep_stage): epoch times from the run's first
                # volume [I: the dataset does not say; the staged EEG was cut to the scan], uncertain epochs kept in
                # sleep_stage and left out of sleep_stage_certain, epochs naming no single stage left out of both
                meta.update(sleep_stages=epochs, sleep_stage_file=str(f), volume_label_epoch_s=30.0,
                            volume_label_epochs={"sleep_stage": tuple((t, s) for t, s, _ in norm),
                                                 "sleep_stage_certain": tuple((t, None if u else s) for t, s, u in norm)})
            runs.append(self.make_run(r.subject, r.session, r.task, r.run, r.eeg_path, r.bold_path, meta=meta, acquisition=r.acquisition))
        sc.runs = runs
        return sc
