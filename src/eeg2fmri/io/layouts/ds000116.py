"""OpenNeuro ds000116 (auditory/visual oddball; Walz, Conroy, Sajda) in its legacy layout with EEG."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.utils.validation import Eeg2fmriInputError

#: layout option ``variant`` -> EEG file in each run folder.
VARIANTS = {"rereferenced": "EEG_rereferenced.mat", "noGA": "EEG_noGA.mat", "raw": "EEG_raw.mat"}
#: layout option ``bold`` -> BOLD file in each run folder.
BOLD_FILES = {"bold": "bold.nii.gz", "bold_mcf_brain": "bold_mcf_brain.nii.gz"}
TASKS = {"task001": "auditory", "task002": "visual"}
_RUN_DIR = re.compile(r"^(task\d{3})_run(\d{3})$")
_SUB_DIR = re.compile(r"^sub(\d{3})$")


@register_layout("ds000116")
class Ds000116Layout(Layout):
    """ds000116 legacy tarballs (``ds116_subNNN.tgz``): EEG as MATLAB arrays, no markers."""

    TITLE = "ds000116 auditory/visual oddball, legacy R1.0.0 layout with EEG (.mat, 1000 Hz, TR 2 s)"
    DESCRIPTION = (
        "The OpenNeuro BIDS snapshot of ds000116 has no EEG; extract the legacy ds116_subNNN.tgz tarballs into one "
        "folder so that subNNN/EEG/task00X_run00Y/EEG_rereferenced.mat (or EEG_noGA.mat / EEG_raw.mat) and "
        "subNNN/BOLD/task00X_run00Y/bold.nii.gz exist (task001 auditory, task002 visual, runs 001-003). The .mat "
        "files are read with scipy.io.loadmat: data_reref is 37 x samples (34 electrodes Fp1..O2, ECG, stimulus "
        "code, response code), data_noGA/data are 49 x samples (43 bipolar derivations, hEOG, vEOG, 2 ECG, "
        "stimulus, response; gradient removed but BCG left in noGA); the two code rows are named 'STI stim' and "
        "'STI behav'. The files store no sampling rate: 1000 Hz "
        "as documented; values are microvolts (EEG_raw.mat x100, as the published script does [I]). Stimulus "
        "codes (125/150 auditory, 225/250 visual) become 'Stimulus/S<code>' and button presses 'Response/R100' "
        "annotations (each step of the code channel to a non-zero value [I: pulse coding not documented]). There "
        "are no scanner markers: the EEG start is triggered by the scan, so volume k starts at k x 2 s (TR fixed "
        "to 2 s; no dummy volumes to drop). ECG/EOG/code channels are typed non-EEG and dropped."
    )
    NEEDS = ("subNNN/EEG/task00X_run00Y/EEG_rereferenced.mat   (or EEG_noGA.mat / EEG_raw.mat, see variant)", "subNNN/BOLD/task00X_run00Y/bold.nii.gz")
    MARKER = None
    FIRST_ONSET = 0.0
    TR = 2.0
    EEG_READER = "ds000116_mat"
    NON_EEG = ("ECG*", "hEOG", "vEOG", "STI *")
    OPTIONS = {
        "variant": "EEG file: 'rereferenced' (default; 34 referential electrodes), 'noGA' (43 bipolar, as EEG-to-fMRI/E2fNet) or 'raw'",
        "bold": "'bold' (default, bold.nii.gz) or 'bold_mcf_brain' (motion-corrected, brain-extracted)",
    }

    def detect(self, root: Path) -> bool:
        return next(iter(root.glob("sub[0-9][0-9][0-9]/EEG/task*_run*")), None) is not None

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        variant = options.get("variant", "rereferenced")
        bold_kind = options.get("bold", "bold")
        if variant not in VARIANTS:
            raise Eeg2fmriInputError(f"ds000116: variant={variant!r}; expected one of {sorted(VARIANTS)}.")
        if bold_kind not in BOLD_FILES:
            raise Eeg2fmriInputError(f"ds000116: bold={bold_kind!r}; expected one of {sorted(BOLD_FILES)}.")
        eeg_name, bold_name = VARIANTS[variant], BOLD_FILES[bold_kind]
        subs = sorted(p for p in root.iterdir() if p.is_dir() and _SUB_DIR.match(p.name))
        if not subs:
            raise Eeg2fmriInputError(f"{root}: expected subNNN/ folders from the legacy ds116_subNNN.tgz tarballs, found none; the OpenNeuro BIDS snapshot has no EEG.")
        sc = Scan()
        for sub in subs:
            sid = _SUB_DIR.match(sub.name).group(1)
            if subjects is not None and sid not in subjects and sub.name not in subjects:
                continue
            eeg_dir, bold_dir = sub / "EEG", sub / "BOLD"
            if not eeg_dir.is_dir():
                sc.skipped.append(f"{sub.name}: no EEG/ folder")
                continue
            run_dirs = sorted(p for p in eeg_dir.iterdir() if p.is_dir() and _RUN_DIR.match(p.name))
            for rd in run_dirs:
                task, run = _RUN_DIR.match(rd.name).groups()
                eeg = rd / eeg_name
                bold = bold_dir / rd.name / bold_name
                if not eeg.is_file():
                    have = sorted(p.name for p in rd.glob("EEG_*.mat"))
                    sc.skipped.append(f"{sub.name}/{rd.name}: no {eeg_name} (found {have}; choose variant=...)")
                    continue
                if not bold.is_file():
                    sc.skipped.append(f"{sub.name}/{rd.name}: EEG but no BOLD/{rd.name}/{bold_name}")
                    continue
                sc.runs.append(self.make_run(sid, None, TASKS.get(task, task), str(int(run)), eeg, bold, meta={"legacy_task": task, "variant": variant}))
        return sc
