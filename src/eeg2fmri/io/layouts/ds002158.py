"""OpenNeuro ds002158 (CN-EPFL confidence task; Pereira et al. 2020)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.io.layouts._bidslike import (
    entity_key,
    index_files,
    inherited_tr,
    key_label,
    key_order,
    pair_entities,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError


@register_layout("ds002158")
class Ds002158Layout(Layout):
    """CN-EPFL: BrainVision 5 kHz EEG (artifacts present) and multiband BOLD, TR 1.28 s."""

    TITLE = "ds002158 CN-EPFL perceptual confidence (Pereira 2020): 20 subjects, BrainVision 5 kHz, TR 1.28 s"
    DESCRIPTION = (
        "The OpenNeuro snapshot (e.g. ds002158-download/): sub-XX/ses-001/eeg/sub-XX_ses-001_task-main_run-00N_eeg.vhdr "
        "(+ .vmrk, .eeg) and sub-XX/ses-001/func/sub-XX_ses-001_task-main_run-00N_bold.nii.gz (+ .json, TR 1.28 s); "
        "the task-rest BOLD has no EEG and the epoched derivatives/eegprep files are not used. The EEG is raw "
        "(gradient and BCG artifacts present: clean it before use). The .vhdr DataFile= lines still name the "
        "acquisition files (s2_run1_08062017.eeg): the .eeg beside the header is used instead. Volumes are timed "
        "by 'R128' markers [I: the marker name is not documented]; ECG is typed ecg and dropped. Quirks handled: "
        "runs in rejected/ subfolders (sub-14 run-005, sub-20 run-007) are ignored; sub-12's sixth EEG file named "
        "run-00 is paired with the only unpaired BOLD run whose label starts with it (run-006) [I]; unpaired runs "
        "(sub-19 run-006 EEG, sub-20 run-007 BOLD) are skipped with a warning; stray ._*.json files are ignored. Files with "
        "an acq- label (..._task-main_acq-L_run-00N_...) are runs of their own, paired as the bids layout pairs them (the "
        "same acq- label on both files, or none on the BOLD)."
    )
    NEEDS = (
        "sub-XX/ses-001/eeg/sub-XX_ses-001_task-main_run-00N_eeg.vhdr + .vmrk + .eeg",
        "sub-XX/ses-001/func/sub-XX_ses-001_task-main_run-00N_bold.nii.gz (+ _bold.json)",
    )
    MARKER = ("Response/R128", "R128")
    TR = None
    EEG_READER = "brainvision"
    NON_EEG = ("ECG",)
    OPTIONS = {}

    def detect(self, root: Path) -> bool:
        # the dataset's own naming (ses-001, run-00N): a BIDS dataset that merely has a 'main' task is not it
        return next(iter(root.glob("sub-*/ses-001/eeg/sub-*_ses-001_task-main_run-00*_eeg.vhdr")), None) is not None

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        if next(iter(root.glob("sub-*/ses-*")), None) is None:
            raise Eeg2fmriInputError(f"{root}: expected sub-XX/ses-001/ folders of ds002158, found none; pass the dataset root (e.g. ds002158-download/).")
        sc = Scan()
        # *_task-main_*run-*: with or without an acq- label between task and run
        eegs = [p for p in sorted(root.glob("sub-*/ses-*/eeg/*_task-main_*run-*_eeg.vhdr")) if not p.name.startswith("._")]
        bolds = [p for p in sorted(root.glob("sub-*/ses-*/func/*_task-main_*run-*_bold.nii*")) if not p.name.startswith("._")]
        # keyed by sub/ses/task/acq/run: files that differ only by acq- are separate runs, paired as the bids layout pairs them
        by_sub: dict[tuple, tuple[list, list]] = {}
        for p in eegs:
            by_sub.setdefault(entity_key(p)[:2], ([], []))[0].append(p)
        for p in bolds:
            by_sub.setdefault(entity_key(p)[:2], ([], []))[1].append(p)
        for (sub, _ses), (e_files, b_files) in sorted(by_sub.items(), key=lambda kv: tuple(v or "" for v in kv[0])):
            if subjects is not None and sub not in subjects:
                continue
            e, b = index_files(e_files, "EEG"), index_files(b_files, "BOLD")
            pairing = pair_entities(e, b)
            sc.notes += pairing.notes
            pairs = {k: (e[k], b[kb]) for k, kb in pairing.pairs.items()}
            lone_e, lone_b = sorted(pairing.eeg_only, key=key_order), list(pairing.bold_only)
            ke, kb = (lone_e[0], lone_b[0]) if len(lone_e) == len(lone_b) == 1 else (None, None)
            # a run label that lost digits (sub-12 run-00 for run-006): the only unpaired EEG and BOLD, whose acq- labels may pair
            if ke is not None and ke[4] and kb[4] and kb[4].startswith(ke[4]) and (None in (ke[3], kb[3]) or ke[3] == kb[3]):
                sc.notes.append(f"{key_label(ke)}: EEG run label '{ke[4]}' paired with the only unpaired BOLD {key_label(kb)}")
                pairs[kb[:3] + (ke[3], kb[4])] = (e[ke], b[kb])
                lone_e, lone_b = [], []
            for k in lone_e:
                why = pairing.eeg_only[k]
                sc.skipped.append(f"{key_label(k)}: EEG but no BOLD func/{key_label(k)}_bold.nii.gz" + (f": {why}" if why else ""))
            for k in lone_b:
                sc.skipped.append(f"{key_label(k)}: BOLD but no EEG eeg/{key_label(k)}_eeg.vhdr")
            for k in sorted(pairs, key=key_order):
                eeg, bold = pairs[k]
                sc.runs.append(self.make_run(k[0], k[1], k[2], k[4], eeg, bold, tr=inherited_tr(bold, root, k[2]), acquisition=k[3]))
        return sc
