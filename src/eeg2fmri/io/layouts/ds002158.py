"""OpenNeuro ds002158 (CN-EPFL confidence task; Pereira et al. 2020)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.io.layouts._bidslike import entity_key, inherited_tr, key_label
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
        "(sub-19 run-006 EEG, sub-20 run-007 BOLD) are skipped with a warning; stray ._*.json files are ignored."
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
        return next(iter(root.glob("sub-*/ses-*/eeg/sub-*_task-main_run-*_eeg.vhdr")), None) is not None

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        if next(iter(root.glob("sub-*/ses-*")), None) is None:
            raise Eeg2fmriInputError(f"{root}: expected sub-XX/ses-001/ folders of ds002158, found none; pass the dataset root (e.g. ds002158-download/).")
        sc = Scan()
        eegs = [p for p in sorted(root.glob("sub-*/ses-*/eeg/*_task-main_run-*_eeg.vhdr")) if not p.name.startswith("._")]
        bolds = [p for p in sorted(root.glob("sub-*/ses-*/func/*_task-main_run-*_bold.nii*")) if not p.name.startswith("._")]
        by_sub: dict[tuple, tuple[dict, dict]] = {}
        for p in eegs:
            k = entity_key(p)
            by_sub.setdefault(k[:2], ({}, {}))[0][k] = p
        for p in bolds:
            k = entity_key(p)
            by_sub.setdefault(k[:2], ({}, {}))[1][k] = p
        for (sub, _ses), (e, b) in sorted(by_sub.items(), key=lambda kv: tuple(v or "" for v in kv[0])):
            if subjects is not None and sub not in subjects:
                continue
            pairs = {k: (e[k], b[k]) for k in e if k in b}
            lone_e = sorted(k for k in e if k not in b)
            lone_b = sorted(k for k in b if k not in e)
            if len(lone_e) == 1 and len(lone_b) == 1 and lone_e[0][3] and lone_b[0][3] and lone_b[0][3].startswith(lone_e[0][3]):
                ke, kb = lone_e[0], lone_b[0]
                sc.notes.append(f"{key_label(ke)}: EEG run label '{ke[3]}' paired with the only unpaired BOLD {key_label(kb)}")
                pairs[kb] = (e[ke], b[kb])
                lone_e, lone_b = [], []
            for k in lone_e:
                sc.skipped.append(f"{key_label(k)}: EEG but no BOLD func/{key_label(k)}_bold.nii.gz")
            for k in lone_b:
                sc.skipped.append(f"{key_label(k)}: BOLD but no EEG eeg/{key_label(k)}_eeg.vhdr")
            for k in sorted(pairs, key=lambda k: tuple(v or "" for v in k)):
                eeg, bold = pairs[k]
                sc.runs.append(self.make_run(k[0], k[1], k[2], k[3], eeg, bold, tr=inherited_tr(bold, root, k[2])))
        return sc
