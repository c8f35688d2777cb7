"""Shared code of ds002336 (XP1) and ds002338 (XP2): Lioi et al. 2020 motor-imagery neurofeedback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from eeg2fmri.io.layouts._base import Layout, Scan
from eeg2fmri.io.layouts._bidslike import (
    entity_key,
    index_files,
    inherited_tr,
    key_label,
    key_order,
    pair_entities,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError

EEG_CHOICES = ("pp", "raw")
SEGMENT_MARKER = "Stimulus/S 99"


def _space(path: Path) -> str | None:
    m = re.search(r"_space-([A-Za-z0-9]+)", path.name)
    return m.group(1) if m else None


class LioiLayout(Layout):
    """XP1/XP2 layouts; subclasses set ``PREFIX`` (subject label prefix) and the texts."""

    PREFIX = ""
    MARKER = ("Response/R128", "R128")
    TR = None
    EEG_READER = "brainvision"
    NON_EEG = ("ECG",)
    OPTIONS = {
        "eeg": "'pp' (default): derivatives/*/eeg_pp (gradient+BCG corrected, 200 Hz), placed in time with the raw markers; 'raw': sub-*/eeg (5 kHz, artifacts present)",
        "tasks": "restrict to these task labels (e.g. ['MIpre', 'MIpost'])",
        "derivatives": "an fMRIPrep output folder of this dataset (absolute or relative to the root): BOLD from its "
                       "sub-*/func/*_space-S_desc-preproc_bold.nii.gz instead of the raw sub-*/func, so that subjects share one "
                       "grid and can be pooled (prepare's confounds option reads fMRIPrep's confounds beside them)",
        "space": "with derivatives: the space- label of the BOLD files to use (needed when the folder holds several)",
    }

    def detect(self, root: Path) -> bool:
        return next(iter(root.glob(f"sub-{self.PREFIX}*/func/*_bold.nii*")), None) is not None and next(iter(root.glob(f"sub-{self.PREFIX}*/eeg/*_eeg.vhdr")), None) is not None

    def _bold_paths(self, root: Path, keep, derivatives, space) -> list[Path]:
        """BOLD files: the raw sub-*/func, or fMRIPrep's preprocessed ones in ``derivatives`` (of one ``space``)."""
        if derivatives is None:
            if space is not None:
                raise Eeg2fmriInputError(f"{self.NAME}: space={space!r} needs derivatives=<fMRIPrep folder> (--layout-option derivatives=DIR); "
                                         "the raw BOLD has no space. Add the derivatives folder or drop space.")
            return [p for p in root.glob(f"sub-{self.PREFIX}*/func/*_bold.nii*") if keep(entity_key(p))]
        deriv = Path(derivatives)
        if not deriv.is_absolute() and (root / deriv).is_dir():  # relative to the dataset root first, as documented
            deriv = root / deriv
        found = [p for p in sorted(deriv.glob(f"sub-{self.PREFIX}*/func/*_desc-preproc_bold.nii*")) if keep(entity_key(p))]
        if not found:
            raise Eeg2fmriInputError(f"{derivatives}: expected fMRIPrep output of {self.NAME} (sub-{self.PREFIX}NN/func/*_space-S_desc-preproc_bold.nii.gz), "
                                     f"found none{'' if deriv.is_dir() else ' (the folder does not exist)'}; pass the fMRIPrep folder "
                                     f"(absolute or relative to {root}).")
        spaces = sorted({_space(p) or "(none)" for p in found})
        if space is None and len(spaces) > 1:
            raise Eeg2fmriInputError(f"{deriv}: preprocessed BOLD in several spaces {spaces}; choose one with space=<label> "
                                     f"(--layout-option space={spaces[0]}).")
        if space is not None:
            found = [p for p in found if _space(p) == space]
            if not found:
                raise Eeg2fmriInputError(f"{deriv}: no preprocessed BOLD in space {space!r}; found spaces {spaces}: pass one of them.")
        return found

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        eeg_kind = options.get("eeg", "pp")
        if eeg_kind not in EEG_CHOICES:
            raise Eeg2fmriInputError(f"{self.NAME}: eeg={eeg_kind!r}; expected one of {list(EEG_CHOICES)}.")
        tasks = options.get("tasks")
        tasks = {tasks} if isinstance(tasks, str) else (set(tasks) if tasks is not None else None)
        if next(iter(root.glob(f"sub-{self.PREFIX}*")), None) is None:
            raise Eeg2fmriInputError(f"{root}: expected sub-{self.PREFIX}NN/ folders of {self.NAME}, found none; pass the dataset root.")

        def keep(key) -> bool:
            sub, _, task, _, _ = key
            return sub is not None and (subjects is None or sub in subjects) and (tasks is None or task in tasks)

        def pp_key(p: Path) -> tuple:
            return entity_key(Path(re.sub(r"^d_", "", p.name)))

        sc = Scan()
        # keyed by sub/ses/task/acq/run: files that differ only by acq- are separate runs, paired as the bids layout pairs them
        bolds = index_files(self._bold_paths(root, keep, options.get("derivatives"), options.get("space")), "BOLD")
        raws = index_files((p for p in root.glob(f"sub-{self.PREFIX}*/eeg/*_eeg.vhdr") if keep(entity_key(p))), "raw EEG")
        pp_files = []
        for p in sorted(root.glob(f"derivatives/sub-{self.PREFIX}*/eeg_pp/*_eeg_pp.vhdr")):
            key = pp_key(p)
            if key[2] is None:
                if keep(key):
                    sc.notes.append(f"{p.relative_to(root)}: no task- entity in the name; ignored")
                continue
            if keep(key):
                pp_files.append(p)
        pps = index_files(pp_files, "eeg_pp", key=pp_key)
        eegs = pps if eeg_kind == "pp" else raws
        where = "derivatives/sub-*/eeg_pp/*_eeg_pp.vhdr" if eeg_kind == "pp" else "sub-*/eeg/*_eeg.vhdr"
        pairing = pair_entities(eegs, bolds)
        sc.notes += pairing.notes
        events = [(k, "paired") for k in pairing.pairs] + [(k, "eeg") for k in pairing.eeg_only] + [(k, "bold") for k in pairing.bold_only]
        for key, what in sorted(events, key=lambda e: key_order(e[0])):
            lab = key_label(key)
            if what == "eeg":
                why = pairing.eeg_only[key]
                sc.skipped.append(f"{lab}: EEG ({eegs[key].name}) but no BOLD func/{lab}_bold.nii.gz" + (f": {why}" if why else ""))
                continue
            if what == "bold":
                extra = " (the raw EEG exists: eeg='raw' would use it)" if eeg_kind == "pp" and key in raws else ""
                sc.skipped.append(f"{lab}: BOLD but no EEG {where}{extra}")
                continue
            eeg, bold = eegs[key], bolds[pairing.pairs[key]]
            meta: dict[str, Any] = {"eeg": eeg_kind}
            if eeg_kind == "pp":
                if key not in raws:  # the raw recording of this eeg_pp: the same entities, acq- included
                    sc.skipped.append(f"{lab}: eeg_pp but no raw header sub-*/eeg/{lab}_eeg.vhdr (+ .vmrk), needed to place the eeg_pp segment in time")
                    continue
                meta.update(marker_source=str(raws[key]), segment_marker=SEGMENT_MARKER)
            sub, ses, task, acq, run = key
            sc.runs.append(self.make_run(sub, ses, task, run, eeg, bold, tr=inherited_tr(bold, root, task), meta=meta, acquisition=acq))
        return sc
