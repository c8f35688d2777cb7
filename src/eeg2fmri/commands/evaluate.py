"""``eeg2fmri evaluate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from eeg2fmri.commands._common import add_device, add_metric, parse_metrics

NAME = "evaluate"
ORDER = 60
HELP = "evaluate a trained model on its held-out test split: metrics.json, report and figures"
DESCRIPTION = (
    "Score a trained model on the test windows of the split it was trained with (recorded in the model directory), next to the "
    "reference ridge_hrf and the subject-mean baseline fitted on the same training windows, the time-shifted null and, on simulated "
    "data, the noise/oracle ceilings. Writes metrics.json, report.md, report.html (one self-contained page; --no-report skips it) and figures (r maps over the MNI "
    "template, r distributions, per-subject CIs, time courses) into OUT (default RUN_DIR/evaluation). Without a recorded dataset "
    "and split, pass --data and --protocol. --protocol cross tests on every window of another prepared dataset (--data). "
    "The subjects the model was trained on (data.subjects of its training config) restrict the dataset as in training; "
    "--subjects gives others (e.g. to test on a subject left out of training). Where every run holds the same physiological "
    "regressors (prepare builds them from ECG / respiration channels or BIDS physio files), a 'physiology only' row is scored "
    "too, as in benchmark: a ridge from those regressors alone, no EEG, fitted on the same training windows (not with "
    "--protocol cross)."
)


def add_arguments(p) -> None:
    p.add_argument("run_dir", nargs="?", help="training run folder (with model/) or model directory")
    p.add_argument("--model", help="model directory (instead of RUN_DIR)")
    p.add_argument("--data", help="prepared dataset (default: the one recorded with the model)")
    p.add_argument("--protocol", choices=["within", "loso", "kfold", "subjects", "cross"], help="split protocol (default: the recorded one)")
    p.add_argument("--test-subjects", nargs="+", help="held-out subject labels (loso/subjects)")
    p.add_argument("--n-folds", type=int, help="subject folds (kfold)")
    p.add_argument("--fold", type=int, help="held-out fold (kfold)")
    p.add_argument("--train-data", help="cross: the model's training dataset, to fit the reference and baseline (default: recorded)")
    p.add_argument("--subjects", nargs="+", help="subjects of the training dataset to use, as data.subjects in training (default: the recorded ones)")
    p.add_argument("--atlas", help="NIfTI of integer ROI labels on the data grid (ROI r)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/evaluation)")
    p.add_argument("--n-boot", type=int, default=200, help="block-bootstrap resamples per subject (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: %(default)s)")
    p.add_argument("--html", action="store_true", help=argparse.SUPPRESS)  # report.html is written by default now; kept so old scripts run
    p.add_argument("--no-report", action="store_true", help="do not write report.html")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--save-predictions", action="store_true",
                   help="also write predictions/<run>.npz: the scored test targets (y) and every model's predictions (pred_<model>)")
    add_metric(p, "in metrics.json beside the built-in ones")
    add_device(p, "predict")


def run(args) -> int:
    from eeg2fmri.workflows.evaluate import evaluate_run

    opts = {}
    if args.test_subjects:
        opts["test_subjects"] = args.test_subjects
    if args.n_folds is not None:
        opts["n_folds"] = args.n_folds
    if args.fold is not None:
        opts["fold"] = args.fold
    metrics = parse_metrics(args.metric)
    out, res = evaluate_run(args.run_dir, model=args.model, data=args.data, protocol=args.protocol, split_options=opts, train_data=args.train_data,
                            subjects=args.subjects, out=args.out, atlas=args.atlas, n_boot=args.n_boot, random_state=args.seed, html_report=not args.no_report,
                            overwrite=args.overwrite, progress_bar=not args.quiet, device=args.device, extra_metrics=metrics or None,
                            save_predictions=args.save_predictions)
    g = res["group"]["models"]
    name = res["model"]
    ci = g[name].get("median_r_ci")
    line = f"{name}: median test r {g[name].get('median_r', float('nan')):.3f}"
    if ci:
        line += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    if "ridge_hrf" in g and name != "ridge_hrf":
        line += f"; ridge_hrf {g['ridge_hrf'].get('median_r', float('nan')):.3f}"
        pr = res["group"]["paired"].get(name)
        if pr:
            line += f" (difference {pr['diff_median_r']:+.3f}, p = {pr['p_value']:.3f})"
    print(line)
    phys = res.get("physiology") or {}
    if phys.get("available"):  # (user test 57: could the cardiac and respiratory traces alone explain the scores?)
        below = phys.get("not_above") or []
        print(f"{phys['name']} (a ridge from the physiological regressors alone, no EEG): median test r {g[phys['name']].get('median_r', float('nan')):.3f}"
              + (f"; {', '.join(below)} score{'s' if len(below) == 1 else ''} no higher: compare the ROI r before crediting the EEG "
                 f"(notes in {out}/report.md)" if below else ""))
    elif phys.get("reason"):
        print(f"no '{phys['name']}' row: {phys['reason']}")
    for key in metrics:  # the user's metrics, for every model scored
        print(f"{key}: " + ", ".join(f"{nm} {g[nm][key]:.4g}" for nm in g if isinstance(g[nm].get(key), (int, float))))
    roi = {nm: g[nm].get("roi_median_r") for nm in (name, "ridge_hrf") if nm in g and g[nm].get("roi_median_r") is not None}
    if roi:  # --atlas: the regions' own r (user test 13: only report.md had it, and on focal data it is the number that matters)
        print(f"ROI r (ROI-average series, {res.get('settings', {}).get('n_rois')} ROIs): "
              + ", ".join(f"{nm} median {v:.3f}" for nm, v in roi.items()) + f"; per ROI in {out}/report.md")
    html = f", {out}/report.html" if (Path(out) / "report.html").exists() else ""
    print(f"wrote {out}/metrics.json, {out}/report.md{html} and figures")
    return 0
