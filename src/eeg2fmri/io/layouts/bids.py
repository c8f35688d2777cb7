"""Plain BIDS (EEG in ``sub-*/[ses-*/]eeg``, BOLD in ``func``): the package's native layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.io.bids import EEG_EXTENSIONS
from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.io.layouts._bidslike import inherited_tr
from eeg2fmri.io.pairing import pair_bids_runs
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError


@register_layout("bids")
class BidsLayout(Layout):
    """Plain BIDS, paired through mne-bids (:func:`eeg2fmri.io.pairing.pair_bids_runs`)."""

    TITLE = "any BIDS EEG-fMRI dataset (what `eeg2fmri simulate` writes)"
    DESCRIPTION = (
        "EEG in sub-*/[ses-*/]eeg/*_eeg.{vhdr,edf,bdf,set,fif} and BOLD in the sibling func/ folder as "
        "*_bold.nii[.gz] with the same sub/ses/task/run entities (run indices as integers; an acq- label on both must match); the TR comes from the *_bold.json sidecar "
        "(RepetitionTime) or the NIfTI header; channel types from *_channels.tsv. Volume onsets come from the "
        "scanner markers in PrepareConfig.marker (R128, Scanner/Scan Start, ...). Pairing goes through mne-bids by "
        "sub/ses/task/run; BOLD files of one run that differ by acq/echo/ce/dir/rec are chosen with bold_entities "
        "(--bold-filter echo=1); fMRIPrep derivatives (derivatives=, space=) give preprocessed BOLD and confounds. "
        "EEG runs without BOLD (and BOLD without EEG) are left out and listed in the pairing table."
    )
    NEEDS = ("sub-*/[ses-*/]eeg/sub-*_task-*[_run-*]_eeg.{vhdr,edf,bdf,set,fif}", "sub-*/[ses-*/]func/sub-*_task-*[_run-*]_bold.nii[.gz] (+ _bold.json)")
    OPTIONS = {
        "require_bold": "None (default): EEG runs without BOLD are left out (listed, warned); True: raise; False: keep them with bold_path=None",
        "bold_entities": "choose among BOLD files of one run that differ by acq/echo/ce/dir/rec/space, e.g. {'echo': '1'} (--bold-filter echo=1)",
        "derivatives": "fMRIPrep derivatives folder: BOLD from *_space-<space>_desc-preproc_bold.nii.gz (confounds beside it) (--derivatives)",
        "space": "fMRIPrep output space to use, e.g. 'MNI152NLin2009cAsym' (--space)",
        "sessions": "only these session labels",
        "tasks": "only these task labels",
    }

    def detect(self, root: Path) -> bool:
        return any(next(iter(root.glob(f"sub-*/{mid}eeg/*_eeg{ext}")), None) is not None for mid in ("", "ses-*/") for ext in EEG_EXTENSIONS)

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        return scan_bids(self, root, subjects, **options)


def scan_bids(layout: Layout, root: Path, subjects: set[str] | None = None, *, require_bold: bool | None = None, **options: Any) -> Scan:
    """Pair a BIDS(-like) dataset through :func:`eeg2fmri.io.pairing.pair_bids_runs` for ``layout``.

    Ambiguous BOLD runs raise (the message says which ``bold_entities`` option
    resolves it); EEG runs without BOLD are left out (``Scan.skipped``), raise
    (``require_bold=True``) or are kept EEG-only (``require_bold=False``); BOLD
    runs without EEG are left out.

    Returns
    -------
    scan : Scan
        ``scan.table`` holds the pairing table.
    """
    table = pair_bids_runs(root, subjects=sorted(subjects) if subjects is not None else None, keep_eeg_only=require_bold is False, **options)
    if not any(r.eeg_path is not None for r in table.rows):
        raise Eeg2fmriInputError(f"{root}: expected EEG files sub-*/[ses-*/]eeg/*_eeg.{{vhdr,edf,bdf,set,fif}}, found none; is this a BIDS EEG dataset? For a published dataset's own layout see `eeg2fmri datasets`; for files in folders of your own, list them in a runs table (tab-separated columns eeg, bold, subject; eeg2fmri prepare runs.tsv).")
    sc = Scan(table=table, notes=list(table.notes))
    fmriprep = Path(root) / "derivatives" / "fmriprep"
    if not options.get("derivatives") and fmriprep.is_dir():  # the raw BOLD is read although the preprocessed one is there
        msg = (f"{fmriprep} exists but the raw BOLD is read; to use fMRIPrep's preprocessed BOLD pass --derivatives {fmriprep} --space NAME "
               "(benchmark: --train-config '{\"data\": {\"layout_options\": {\"derivatives\": ..., \"space\": ...}}}')")
        logger.warning("%s", msg)
        sc.notes.append(msg)
    for r in table.rows:
        if r.status == "ambiguous":
            raise Eeg2fmriInputError(f"{r.eeg_path}: expected one matching BOLD file, found {r.reason}.")
        if r.status == "left out":
            if require_bold and r.eeg_path is not None:
                raise Eeg2fmriInputError(f"{r.eeg_path}: found EEG but {r.reason}. Add the BOLD file, remove the EEG run, or leave require_bold unset to leave the run out.")
            sc.skipped.append(f"{r.key}: {'EEG ' + r.eeg_path.name if r.eeg_path is not None else 'BOLD ' + r.bold_path.name} left out: {r.reason}")
        else:
            meta = {"confounds": str(r.confounds_path)} if r.confounds_path is not None else {}
            # BIDS inheritance: RepetitionTime from a top-level task-<task>_bold.json when the run's own sidecar lacks it
            tr = inherited_tr(r.bold_path, root, r.task) if r.bold_path is not None and layout.TR is None else None
            extra = {"tr": tr} if tr is not None else {}
            if r.marker_block is not None:  # one EEG recording across several BOLD runs: this run's block of scanner markers
                extra["marker_block"] = r.marker_block
                meta["runs_in_eeg_file"] = r.runs_in_eeg_file
            sc.runs.append(layout.make_run(r.subject, r.session, r.task, r.run, r.eeg_path, r.bold_path, meta=meta, acquisition=r.acquisition, **extra))
    return sc
