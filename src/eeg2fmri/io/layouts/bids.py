"""Plain BIDS (EEG in ``sub-*/[ses-*/]eeg``, BOLD in ``func``): the package's native layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eeg2fmri.io.bids import EEG_EXTENSIONS, find_runs
from eeg2fmri.io.layouts._base import Layout, Scan, register_layout


@register_layout("bids")
class BidsLayout(Layout):
    """Plain BIDS through :func:`eeg2fmri.io.find_runs`."""

    TITLE = "any BIDS EEG-fMRI dataset (what `eeg2fmri simulate` writes)"
    DESCRIPTION = (
        "EEG in sub-*/[ses-*/]eeg/*_eeg.{vhdr,edf,bdf,set,fif} and BOLD in the sibling func/ folder as "
        "*_bold.nii[.gz] with the same sub/ses/task/run entities; the TR comes from the *_bold.json sidecar "
        "(RepetitionTime) or the NIfTI header; channel types from *_channels.tsv. Volume onsets come from the "
        "scanner markers in PrepareConfig.marker (R128, Scanner/Scan Start, ...). EEG runs without BOLD raise "
        "unless require_bold=False."
    )
    NEEDS = ("sub-*/[ses-*/]eeg/sub-*_task-*[_run-*]_eeg.{vhdr,edf,bdf,set,fif}", "sub-*/[ses-*/]func/sub-*_task-*[_run-*]_bold.nii[.gz] (+ _bold.json)")
    OPTIONS = {"require_bold": "raise when an EEG run has no BOLD (default True); False keeps EEG-only runs with bold_path=None"}

    def detect(self, root: Path) -> bool:
        return any(next(iter(root.glob(f"sub-*/{mid}eeg/*_eeg{ext}")), None) is not None for mid in ("", "ses-*/") for ext in EEG_EXTENSIONS)

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        recs = find_runs(root, subjects=sorted(subjects) if subjects is not None else None, require_bold=options.get("require_bold", True))
        return Scan([self.make_run(r.subject, r.session, r.task, r.run, r.eeg_path, r.bold_path) for r in recs])
