"""``eeg2fmri report``."""

from __future__ import annotations

NAME = "report"
ORDER = 80
HELP = "one self-contained HTML page (tables, figures, forest plot, r map, model card) from a run or benchmark folder"
DESCRIPTION = (
    "Collect what a quickstart, evaluate or benchmark folder holds into one HTML file with every image embedded (no scripts, no "
    "external links): the summary numbers of metrics.json, the leaderboard of leaderboard.json with a forest plot of median r and "
    "its 95% CI, every PNG figure in the folder and its subfolders, an r-map NIfTI (evaluation/r_map_*.nii.gz) over the MNI152 "
    "template, and the model card; a last section lists what was not found. Default output: FOLDER/report.html."
)


def add_arguments(p) -> None:
    p.add_argument("folder", help="quickstart, evaluate or benchmark output folder (with metrics.json or leaderboard.json)")
    p.add_argument("--out", help="HTML file to write (default: FOLDER/report.html)")
    p.add_argument("--title", help="page title (default: 'eeg2fmri report: <folder name>')")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args) -> int:
    from eeg2fmri.workflows.report import build_report

    path = build_report(args.folder, args.out, title=args.title, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0
