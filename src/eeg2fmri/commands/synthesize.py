"""``eeg2fmri synthesize``."""

from __future__ import annotations

NAME = "synthesize"
ORDER = 70
HELP = "turn an EEG-only recording into a 4D BOLD NIfTI with a trained model"
DESCRIPTION = "Predict BOLD volumes from an EEG recording in any format MNE reads; writes OUT (.nii.gz) and a JSON sidecar."


def add_arguments(p) -> None:
    p.add_argument("eeg", help="EEG recording (.vhdr, .edf, .bdf, .set, .fif)")
    p.add_argument("--model", required=True, help="trained model folder")
    p.add_argument("--out", required=True, help="output .nii.gz")
    p.add_argument("--tr", type=float, default=None, help="output volume spacing in s (default: training TR)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")


def run(args) -> int:
    from eeg2fmri.synthesis import synthesize

    out = synthesize(args.eeg, args.model, args.out, tr=args.tr, overwrite=args.overwrite, progress_bar=not args.quiet)
    print(f"wrote {out}")
    return 0
