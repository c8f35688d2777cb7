"""NODDI (Deligianni et al. 2014; OSF 94c5t) as used by the EEG-to-fMRI package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.utils.validation import Eeg2fmriInputError

#: EEG folders from OSF's EEG1.zip / EEG2.zip (E2fNet merges them into EEG/).
EEG_FOLDERS = ("EEG", "EEG1", "EEG2")
#: Subjects reported broken (excluded unless include_broken=True).
BROKEN = ("35",)
#: When export/ holds several headers, the preferred kinds in order.
EXPORT_PREFERENCE = ("Pulse_Artifact_Correction", "Segmentation")


@register_layout("noddi")
class NoddiLayout(Layout):
    """NODDI: Analyzer-exported BrainVision EEG (250 Hz) and 1.5 T resting BOLD."""

    TITLE = "NODDI resting state (Deligianni 2014, OSF 94c5t): 16 subjects, 250 Hz EEG, TR 2.16 s"
    DESCRIPTION = (
        "Unzip OSF's EEG1.zip, EEG2.zip and fMRI.zip into one folder. EEG: EEG1/<id>/export/ and EEG2/<id>/export/ "
        "(or a merged EEG/<id>/export/) holding one BrainVision Analyzer export, *_Pulse_Artifact_Correction_bin.vhdr "
        "(*_Segmentation_bin.vhdr for subject 32) with its .vmrk and a .dat binary (a stale DataFile= line is repaired "
        "on the fly); gradient and pulse artifacts are already removed; raw/ (5 kHz, uncorrected) is ignored. BOLD: "
        "fMRI/<id>/*rest_with_cross.nii.gz (3_nw_mepi_..., 05_nw_mepi_... for subject 40). Volumes are timed by the "
        "'Scanner/Scan Start' markers (one per volume, the first about 0.144 s into the export); TR is fixed to "
        "2.16 s as in the EEG-to-fMRI package; the ECG channel is typed ecg and dropped. Subject 35 is excluded "
        "(reported broken by NTViT) unless include_broken=True. Some BOLD headers have a zero affine offset (the "
        "EEG-to-fMRI package skips them in its population mask); they are read as they are."
    )
    NEEDS = (
        "EEG1/<id>/export/*_bin.vhdr + .vmrk + .dat   (and/or EEG2/<id>/..., or EEG/<id>/...)",
        "fMRI/<id>/*rest_with_cross.nii.gz",
    )
    MARKER = ("Scanner/Scan Start",)
    TR = 2.16
    EEG_READER = "brainvision"
    NON_EEG = ("ECG",)
    OPTIONS = {"include_broken": "also use subject 35 (reported broken; default False)"}

    def _eeg_dirs(self, root: Path) -> list[Path]:
        return [root / f for f in EEG_FOLDERS if (root / f).is_dir()]

    def detect(self, root: Path) -> bool:
        return any(next(iter(d.glob("*/export/*.vhdr")), None) is not None for d in self._eeg_dirs(root))

    def _pick_header(self, export: Path) -> Path | None:
        heads = sorted(export.glob("*.vhdr"))
        if len(heads) <= 1:
            return heads[0] if heads else None
        for kind in EXPORT_PREFERENCE:
            pick = [h for h in heads if kind in h.name]
            if len(pick) == 1:
                return pick[0]
        raise Eeg2fmriInputError(f"{export}: expected one exported header (*_Pulse_Artifact_Correction_bin.vhdr or *_Segmentation_bin.vhdr), found {[h.name for h in heads]}; move the extra exports elsewhere.")

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        include_broken = bool(options.get("include_broken", False))
        dirs = self._eeg_dirs(root)
        if not dirs:
            raise Eeg2fmriInputError(f"{root}: expected EEG1/ and/or EEG2/ (or EEG/) with <id>/export/*.vhdr, found none of them; unzip EEG1.zip and EEG2.zip from OSF 94c5t here.")
        fmri = root / "fMRI"
        if not fmri.is_dir():
            raise Eeg2fmriInputError(f"{root}: expected fMRI/<id>/*rest_with_cross.nii.gz, found no fMRI/ folder; unzip fMRI.zip from OSF 94c5t next to {dirs[0].name}/.")
        sc = Scan()
        seen: dict[str, Path] = {}
        for d in dirs:
            for sub in sorted(p for p in d.iterdir() if p.is_dir()):
                sid = sub.name
                if subjects is not None and sid not in subjects:
                    continue
                if sid in seen:
                    raise Eeg2fmriInputError(f"{sub}: subject {sid} is also in {seen[sid]}; expected each subject in one EEG folder, remove the duplicate.")
                seen[sid] = sub
                if sid in BROKEN and not include_broken:
                    sc.notes.append(f"subject {sid}: excluded (reported broken); pass include_broken=True to use it")
                    continue
                export = sub / "export"
                head = self._pick_header(export) if export.is_dir() else None
                if head is None:
                    sc.skipped.append(f"subject {sid}: no {sub.name}/export/*.vhdr (only the exported, artifact-corrected EEG is used)")
                    continue
                bolds = sorted((fmri / sid).glob("*rest_with_cross.nii*")) if (fmri / sid).is_dir() else []
                if len(bolds) > 1:
                    raise Eeg2fmriInputError(f"{fmri / sid}: expected one *rest_with_cross.nii.gz, found {[b.name for b in bolds]}; remove the extra copies.")
                if not bolds:
                    sc.skipped.append(f"subject {sid}: EEG but no fMRI/{sid}/*rest_with_cross.nii.gz")
                    continue
                sc.runs.append(self.make_run(sid, None, "rest", None, head, bolds[0], meta={"eeg_folder": d.name}))
        eeg_ids = set(seen)
        for b in sorted(p for p in fmri.iterdir() if p.is_dir()):
            if b.name not in eeg_ids and (subjects is None or b.name in subjects):
                sc.skipped.append(f"subject {b.name}: fMRI but no EEG folder")
        sc.runs.sort(key=lambda r: (len(r.subject), r.subject))
        return sc
