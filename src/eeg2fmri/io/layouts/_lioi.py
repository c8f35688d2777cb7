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
    }

    def detect(self, root: Path) -> bool:
        return next(iter(root.glob(f"sub-{self.PREFIX}*/func/*_bold.nii*")), None) is not None and next(iter(root.glob(f"sub-{self.PREFIX}*/eeg/*_eeg.vhdr")), None) is not None

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
        bolds = index_files((p for p in root.glob(f"sub-{self.PREFIX}*/func/*_bold.nii*") if keep(entity_key(p))), "BOLD")
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
