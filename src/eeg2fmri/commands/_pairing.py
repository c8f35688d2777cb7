"""Command-line options of BIDS pairing shared by ``eeg2fmri prepare`` and ``eeg2fmri datasets --check``."""

from __future__ import annotations

import json
from typing import Any

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["add_pairing_arguments", "pairing_options"]


def add_pairing_arguments(p) -> None:
    """Add ``--bold-filter``, ``--derivatives`` and ``--space`` to an argparse parser."""
    p.add_argument("--bold-filter", nargs="+", metavar="ENTITY=VALUE", default=None,
                   help="BIDS layouts: choose among BOLD files of one run that differ by acq/echo/ce/dir/rec/space, e.g. echo=1 acq=mb")
    p.add_argument("--derivatives", metavar="DIR", default=None,
                   help="BIDS layouts: fMRIPrep derivatives folder; BOLD is its *_space-<space>_desc-preproc_bold.nii.gz (confounds beside it)")
    p.add_argument("--space", default=None, help="with --derivatives: fMRIPrep output space, e.g. MNI152NLin2009cAsym")
    p.add_argument("--layout-option", nargs="+", action="extend", metavar="KEY=VALUE", default=None, dest="layout_option",
                   help="an option of the dataset layout (see `eeg2fmri datasets NAME`), e.g. eeg=raw for ds002336; a VALUE that "
                        "reads as JSON is taken as such (tasks='[\"motorloc\"]')")


def pairing_options(args) -> dict[str, Any]:
    """Layout options from the parsed pairing arguments (only those given)."""
    from eeg2fmri.io.pairing import parse_bold_filter

    out: dict[str, Any] = {}
    if getattr(args, "bold_filter", None):
        out["bold_entities"] = parse_bold_filter(args.bold_filter)
    if getattr(args, "derivatives", None):
        out["derivatives"] = args.derivatives
    if getattr(args, "space", None):
        out["space"] = args.space
    for item in getattr(args, "layout_option", None) or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise Eeg2fmriInputError(f"--layout-option: expected KEY=VALUE, got {item!r}; e.g. --layout-option eeg=raw.")
        if key.strip() in out:
            raise Eeg2fmriInputError(f"--layout-option: {key.strip()!r} given twice ({out[key.strip()]!r} and {value!r}); give each option once.")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out
