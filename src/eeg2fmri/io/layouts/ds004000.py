"""OpenNeuro ds004000: schizophrenia ultimatum game, EEG only (for classification from synthesised fMRI)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.io.layouts._bidslike import entity_key, index_files, key_label, key_order
from eeg2fmri.utils.validation import Eeg2fmriInputError

TASKS = ("proposer", "responder")


def read_groups(root: Path) -> dict[str, str]:
    """``{subject label: group}`` from ``participants.tsv`` (columns participant_id, group)."""
    path = root / "participants.tsv"
    if not path.is_file():
        raise Eeg2fmriInputError(f"{path}: expected participants.tsv with columns participant_id and group (HC/P), found nothing; it is part of ds004000, download it with the EEG.")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    cols = list(rows[0]) if rows else []
    if "participant_id" not in cols or "group" not in cols:
        raise Eeg2fmriInputError(f"{path}: expected columns participant_id and group, found {cols}; is this ds004000's participants.tsv?")
    out = {}
    for r in rows:
        pid = (r["participant_id"] or "").strip()
        out[pid[4:] if pid.startswith("sub-") else pid] = (r["group"] or "").strip()
    return out


@register_layout("ds004000")
class Ds004000Layout(Layout):
    """ds004000: 128-channel Biosemi EEG (exported to BrainVision), 2048 Hz, no BOLD."""

    TITLE = "ds004000 schizophrenia ultimatum game (EEG only): 43 subjects, 128 + 4 EOG channels at 2048 Hz, groups HC/P"
    DESCRIPTION = (
        "The OpenNeuro snapshot: sub-NNN/eeg/sub-NNN_task-{proposer,responder}_run-1_eeg.vhdr (+ .vmrk, .eeg; "
        "Biosemi ActiveTwo recordings exported to BrainVision, VECTORIZED float32 [I]) and participants.tsv with "
        "participant_id and group (HC = control, P = patient). There is no BOLD: runs have bold_path None and are "
        "meant for EEG-only synthesis and subject-wise classification (run.meta['group']). The task comes from "
        "the file name (the proposer sidecars wrongly say TaskName 'responder'). The 128 scalp channels A1-D32 "
        "are EEG; EXG1, EXG2, EXG7, EXG8 are typed eog and any further Biosemi auxiliary channel (the patients' "
        "files hold 133-134 channels [I]; EXG*, Status, GSR*, Erg*, Resp, Plet, Temp) non-EEG, so all subjects "
        "end up with the same 128 EEG channels. A recording with an acq- label (sub-NNN_task-T_acq-L_run-1_eeg.vhdr) is "
        "a run of its own (its key names the label)."
    )
    NEEDS = ("sub-NNN/eeg/sub-NNN_task-{proposer,responder}_run-1_eeg.vhdr + .vmrk + .eeg", "participants.tsv (participant_id, group)")
    MARKER = None
    TR = None
    EEG_READER = "brainvision"
    NON_EEG = ("EXG*", "Status", "GSR*", "Erg*", "Resp", "Plet", "Temp")
    HAS_BOLD = False
    OPTIONS = {"task": "'proposer', 'responder' or None (default: both)"}

    def detect(self, root: Path) -> bool:
        return any(next(iter(root.glob(f"sub-*/eeg/sub-*_task-{t}_run-*_eeg.vhdr")), None) is not None for t in TASKS) and not any(root.glob("sub-*/func"))

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        task = options.get("task")
        if task is not None and task not in TASKS:
            raise Eeg2fmriInputError(f"ds004000: task={task!r}; expected one of {list(TASKS)} or None.")
        groups = read_groups(root)
        sc = Scan()
        tasks = (task,) if task else TASKS
        files = sorted(p for t in tasks for p in root.glob(f"sub-*/eeg/sub-*_task-{t}_*run-*_eeg.vhdr"))  # with or without acq-
        if not files:
            raise Eeg2fmriInputError(f"{root}: expected sub-NNN/eeg/sub-NNN_task-{{{','.join(tasks)}}}_run-1_eeg.vhdr, found none; pass the ds004000 root.")
        # one run per sub/ses/task/acq/run: recordings that differ only by acq- keep their own run keys
        keep = [p for p in files if subjects is None or entity_key(p)[0] in subjects]
        for key, p in sorted(index_files(keep, "EEG").items(), key=lambda kv: key_order(kv[0])):
            sub, ses, t, acq, run = key
            if sub not in groups:
                sc.skipped.append(f"{key_label(key)}: subject not in participants.tsv (no group label)")
                continue
            sc.runs.append(self.make_run(sub, ses, t, run, p, None, meta={"group": groups[sub]}, acquisition=acq))
        return sc
