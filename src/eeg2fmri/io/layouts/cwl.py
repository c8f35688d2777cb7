"""CWL EEG/fMRI eyes-open/eyes-closed data (van der Meer et al. 2016), as read by BEIRA."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.utils.validation import Eeg2fmriInputError

_EEG = re.compile(r"^(?P<subj>[A-Za-z0-9]+)_mrcorrected_eoec_in-scan_hpump-(?P<pump>on|off)\.set$")


def cwl_data_dirs(root: Path) -> list[Path]:
    """``CWL_Data`` folders at or below ``root`` (root itself, root/CWL_Data, root/<subject>/CWL_Data)."""
    cands = [root, root / "CWL_Data"] + sorted(root.glob("*/CWL_Data"))
    return [d for d in cands if (d / "eeg" / "in-scan").is_dir()]


@register_layout("cwl")
class CwlLayout(Layout):
    """CWL: EEGLAB ``.set`` EEG (gradient-corrected) and SPM-normalised BOLD, 3 T Trio / Verio."""

    TITLE = "CWL eyes-open/eyes-closed EEG-fMRI (van der Meer 2016): 8 subjects, EEGLAB .set at 1000 Hz, TR 1.95 s"
    DESCRIPTION = (
        "One CWL_Data/ folder (given directly, as ROOT/CWL_Data, or one per subject as ROOT/<subject>/CWL_Data) with "
        "eeg/in-scan/<subj>_mrcorrected_eoec_in-scan_hpump-{on,off}.set (EEGLAB, with its .fdt when the data are "
        "not embedded) and mri/epi_normalized/rwa<subj>_eoec_in-scan_hpump-{on,off}.nii (SPM slice-timed, "
        "normalised, resliced); subjects trio1-trio4 and verio5-verio8; runs are the helium pump states "
        "(run 'hpumpon' / 'hpumpoff'). 'mrcorrected' is read as gradient-corrected only: BCG and pump artifacts "
        "remain for carbon-wire-loop regression [I]. Volumes are timed by the 'mri' markers; TR is fixed to 1.95 s "
        "(marker spacing). When a run has fewer 'mri' markers than volumes (trio1: 143 for 146) the first volumes, "
        "one per marker, are kept, as BEIRA does [I: which volumes lack markers is not documented]. EOG, ECG and "
        "the carbon-wire loops CW1-CW6 are typed non-EEG and dropped. Motion parameters "
        "(mri/epi_motionparams/rp_a*.txt) are recorded in run.meta['motion'] when present."
    )
    NEEDS = (
        "[<subject>/]CWL_Data/eeg/in-scan/<subj>_mrcorrected_eoec_in-scan_hpump-{on,off}.set (+ .fdt)",
        "[<subject>/]CWL_Data/mri/epi_normalized/rwa<subj>_eoec_in-scan_hpump-{on,off}.nii",
    )
    MARKER = ("mri",)
    TR = 1.95
    EEG_READER = "mne"
    NON_EEG = ("EOG", "ECG", "CW[1-6]", "Status")
    OPTIONS = {}

    def detect(self, root: Path) -> bool:
        return any(next(iter(d.glob("eeg/in-scan/*_mrcorrected_eoec_in-scan_hpump-*.set")), None) is not None for d in cwl_data_dirs(root))

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        dirs = cwl_data_dirs(root)
        if not dirs:
            raise Eeg2fmriInputError(f"{root}: expected CWL_Data/eeg/in-scan/*.set (directly, in CWL_Data/ or in <subject>/CWL_Data/), found none; unpack the CWL archive here.")
        sc = Scan()
        seen: set[tuple[str, str]] = set()
        for d in dirs:
            for eeg in sorted((d / "eeg" / "in-scan").glob("*.set")):
                m = _EEG.match(eeg.name)
                if m is None:
                    sc.notes.append(f"{eeg.name}: not a <subj>_mrcorrected_eoec_in-scan_hpump-{{on,off}}.set recording; ignored")
                    continue
                subj, pump = m.group("subj"), m.group("pump")
                if subjects is not None and subj not in subjects:
                    continue
                if (subj, pump) in seen:
                    raise Eeg2fmriInputError(f"{eeg}: {subj} hpump-{pump} appears in two CWL_Data folders; expected it once, remove the duplicate.")
                seen.add((subj, pump))
                stem = f"{subj}_eoec_in-scan_hpump-{pump}"
                bold = next((p for p in (d / "mri" / "epi_normalized" / f"rwa{stem}{ext}" for ext in (".nii", ".nii.gz")) if p.is_file()), None)
                if bold is None:
                    sc.skipped.append(f"{subj} hpump-{pump}: EEG but no mri/epi_normalized/rwa{stem}.nii")
                    continue
                meta: dict[str, Any] = {"fewer_markers": "keep-first"}
                motion = d / "mri" / "epi_motionparams" / f"rp_a{stem}.txt"
                if motion.is_file():
                    meta["motion"] = str(motion)
                sc.runs.append(self.make_run(subj, None, "eoec", f"hpump{pump}", eeg, bold, meta=meta))
        sc.runs.sort(key=lambda r: (r.subject, r.run))
        return sc
