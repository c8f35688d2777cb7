"""``eeg2fmri quickstart``."""

from __future__ import annotations

from pathlib import Path

NAME = "quickstart"
ORDER = 10
HELP = "simulate a small dataset, train, evaluate, synthesise, report (about a minute on a laptop)"
DESCRIPTION = (
    "Simulate a small EEG-fMRI dataset, prepare it, fit the default model, evaluate it on a held-out later span of each "
    "subject (with a gap) against the subject-mean baseline, a time-shifted null and the ground-truth ceilings, synthesise "
    "a 4D NIfTI from an EEG-only recording, and write metrics.json, report.md and figures."
)


def add_arguments(p) -> None:
    p.add_argument("--out", default="eeg2fmri_quickstart", help="output folder (default: %(default)s)")
    p.add_argument("--subjects", type=int, default=4, help="simulated subjects (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=8.0, help="minutes per subject (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--model", default="eeg2fmri_net",  # = workflows.quickstart.DEFAULT_MODEL (not imported: the CLI starts fast)
                   help="model to train (default: %(default)s, the flagship; ridge_hrf fits only the linear reference, in seconds)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-report", action="store_true", help="do not write report.html")


def run(args) -> int:
    from eeg2fmri.workflows.quickstart import run_quickstart

    m = run_quickstart(args.out, subjects=args.subjects, minutes=args.minutes, seed=args.seed, model=args.model, overwrite=args.overwrite,
                       progress_bar=not args.quiet, html_report=not args.no_report)
    print(m["table"])
    print(f"\nwrote {Path(args.out).absolute()}: metrics.json, report.md{'' if args.no_report else ', report.html'}, model/, synthesized/ ({m['timings_s']['total']:.0f} s)")
    return 0
