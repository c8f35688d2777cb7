"""``eeg2fmri classify``."""

from __future__ import annotations

NAME = "classify"
ORDER = 64
HELP = "decode task condition (or a participants.tsv column) from synthesised BOLD, EEG band power and measured BOLD"
DESCRIPTION = (
    "One sample per block of consecutive volumes with one label (task blocks from the runs' events.tsv, or --labels "
    "participants:COLUMN split into 30 s blocks). Every source -- synth (the trained model's BOLD from EEG), eeg (band power), "
    "bold (measured) -- is scored with subject-wise cross-validation (leave-one-subject-out, or GroupKFold with --n-splits), "
    "the logistic penalty chosen by inner grouped CV, a label-permutation null (within subjects; between subjects for "
    "subject-level labels) and a subject-bootstrap 95 percent CI of the balanced accuracy. Writes classify.json and classify.tsv."
)


def add_arguments(p) -> None:
    p.add_argument("run_dir", nargs="?", help="training run folder or model directory (for the synth source)")
    p.add_argument("--model", help="model directory (instead of RUN_DIR)")
    p.add_argument("--data", help="prepared dataset (default: the one recorded with the model)")
    p.add_argument("--labels", default="events", help="events | participants:COLUMN | a per-volume label the prepared dataset stores (ds003768: sleep_stage, "
                        "sleep_stage_certain) (default: %(default)s)")
    p.add_argument("--participants", help="participants.tsv (default: the BIDS root's)")
    p.add_argument("--sources", nargs="+", choices=["synth", "eeg", "bold"], help="default: synth (with a model), eeg, bold")
    p.add_argument("--atlas", help="NIfTI of ROI labels on the data grid (BOLD sources averaged per ROI)")
    p.add_argument("--delay", type=float, default=5.0, help="haemodynamic delay of the BOLD sources in seconds (default: %(default)s)")
    p.add_argument("--n-splits", type=int, help="outer GroupKFold folds (default: leave one subject out)")
    p.add_argument("--n-permutations", type=int, default=100, help="label permutations (default: %(default)s)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/classify)")
    p.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def run(args) -> int:
    from eeg2fmri.workflows.classify import classify_run, format_table

    out, res = classify_run(args.run_dir, model=args.model, data=args.data, labels=args.labels, participants=args.participants,
                            sources=args.sources, atlas=args.atlas, delay_s=args.delay, n_splits=args.n_splits,
                            n_permutations=args.n_permutations, out=args.out, random_state=args.seed, overwrite=args.overwrite,
                            progress_bar=not args.quiet)
    import json

    print(format_table(res, json.loads((out / "classify.json").read_text(encoding="utf-8")).get("notes")))
    print(f"wrote {out}/classify.json and {out}/classify.tsv")
    return 0
