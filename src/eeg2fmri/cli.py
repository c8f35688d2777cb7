"""Command-line interface: ``eeg2fmri <command> ...`` (see ``eeg2fmri --help``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eeg2fmri.utils.logs import logger, set_log_level
from eeg2fmri.utils.validation import Eeg2fmriInputError

DESCRIPTION = """Synthesise fMRI (BOLD) from EEG: simulate data, prepare recordings, train,
evaluate honestly, and turn EEG-only recordings into 4D NIfTI.

Start with `eeg2fmri quickstart` (runs everything on simulated data)."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or info messages")
    p.add_argument("-v", "--verbose", action="store_true", help="report what each step does (info messages)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eeg2fmri", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    from eeg2fmri import __version__

    parser.add_argument("--version", action="version", version=f"eeg2fmri {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("quickstart", help="simulate a small dataset, train, evaluate, synthesise, report (minutes on a laptop)",
                       description="Simulate a small EEG-fMRI dataset, prepare it, fit the default model, evaluate it on a held-out later span "
                                   "of each subject (with a gap) against the subject-mean baseline, a time-shifted null and the ground-truth "
                                   "ceilings, synthesise a 4D NIfTI from an EEG-only recording, and write metrics.json, report.md and figures.")
    p.add_argument("--out", default="eeg2fmri_quickstart", help="output folder (default: %(default)s)")
    p.add_argument("--subjects", type=int, default=4, help="simulated subjects (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=8.0, help="minutes per subject (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    _add_common(p)

    p = sub.add_parser("simulate", help="write a simulated simultaneous EEG-fMRI BIDS dataset with ground truth",
                       description="Write a BIDS dataset (BrainVision EEG with R128 volume markers, ECG/EOG channels, NIfTI BOLD, sidecars) "
                                   "plus derivatives/groundtruth (drives, envelopes, lead field, noise-free BOLD, parameters).")
    p.add_argument("out", help="output BIDS folder (must not exist unless --overwrite)")
    p.add_argument("--subjects", type=int, default=4, help="number of subjects (default: %(default)s)")
    p.add_argument("--minutes", type=float, default=6.0, help="scan minutes per run (default: %(default)s)")
    p.add_argument("--runs", type=int, default=1, help="runs per subject (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--tr", type=float, default=2.0, help="repetition time in s (default: %(default)s)")
    p.add_argument("--sfreq", type=float, default=250.0, help="EEG sampling rate in Hz (default: %(default)s)")
    p.add_argument("--channels", type=int, default=32, help="EEG channels (default: %(default)s)")
    p.add_argument("--montage", default="easycap-M1", help="MNE standard montage (default: %(default)s)")
    p.add_argument("--voxel-size", type=float, default=6.0, help="BOLD voxel size in mm (default: %(default)s)")
    p.add_argument("--regions", type=int, default=24, help="source regions (default: %(default)s)")
    p.add_argument("--task", choices=["blocks"], default=None, help="add a block design (default: rest)")
    p.add_argument("--hemodynamics", choices=["gamma", "balloon"], default="gamma", help="HRF model (default: %(default)s)")
    p.add_argument("--eeg-format", choices=["BrainVision", "EDF", "EEGLAB"], default="BrainVision", help="EEG file format (default: %(default)s)")
    p.add_argument("--no-artifacts", action="store_true", help="no blinks, ECG or line noise")
    p.add_argument("--config", help="JSON/YAML file of SimulationConfig fields (command-line options win)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    _add_common(p)

    p = sub.add_parser("prepare", help="read, synchronise and preprocess a BIDS EEG-fMRI dataset into a prepared dataset",
                       description="Pair EEG and BOLD runs, find volume onsets from scanner markers, preprocess EEG into band-power frames and "
                                   "mask BOLD; write continuous arrays once plus manifest.json.")
    p.add_argument("bids_root", help="BIDS dataset folder")
    p.add_argument("--out", required=True, help="output folder for the prepared dataset")
    p.add_argument("--config", help="JSON/YAML file of PrepareConfig fields")
    p.add_argument("--subjects", nargs="*", help="subset of subject labels")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    _add_common(p)

    p = sub.add_parser("synthesize", help="turn an EEG-only recording into a 4D BOLD NIfTI with a trained model",
                       description="Predict BOLD volumes from an EEG recording in any format MNE reads; writes OUT (.nii.gz) and a JSON sidecar.")
    p.add_argument("eeg", help="EEG recording (.vhdr, .edf, .bdf, .set, .fif)")
    p.add_argument("--model", required=True, help="trained model folder")
    p.add_argument("--out", required=True, help="output .nii.gz")
    p.add_argument("--tr", type=float, default=None, help="output volume spacing in s (default: training TR)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    _add_common(p)

    p = sub.add_parser("models", help="list the registered models")
    _add_common(p)
    return parser


def _read_config(path: str | None) -> dict:
    if not path:
        return {}
    p = Path(path)
    if not p.exists():
        raise Eeg2fmriInputError(f"{p}: config file not found.")
    text = p.read_text()
    if p.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or {}
    elif p.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        raise Eeg2fmriInputError(f"{p}: expected a .json, .yaml or .yml config, got {p.suffix!r}.")
    if not isinstance(data, dict):
        raise Eeg2fmriInputError(f"{p}: expected a mapping of settings at the top level, got {type(data).__name__}.")
    return data


def _run(args: argparse.Namespace) -> int:
    bars = not args.quiet
    if args.command == "quickstart":
        from eeg2fmri.quickstart import run_quickstart

        m = run_quickstart(args.out, subjects=args.subjects, minutes=args.minutes, seed=args.seed, overwrite=args.overwrite, progress_bar=bars)
        print(m["table"])
        print(f"\nwrote {Path(args.out).absolute()}: metrics.json, report.md, model/, synthesized/ ({m['timings_s']['total']:.0f} s)")
        return 0
    if args.command == "simulate":
        from eeg2fmri.simulate import SimulationConfig, simulate_dataset

        base = _read_config(args.config)
        cli = dict(n_subjects=args.subjects, minutes=args.minutes, n_runs=args.runs, seed=args.seed, tr=args.tr, sfreq=args.sfreq,
                   n_channels=args.channels, montage=args.montage, voxel_size=args.voxel_size, n_regions=args.regions, task=args.task,
                   hemodynamics=args.hemodynamics, eeg_format=args.eeg_format, artifacts=not args.no_artifacts)
        unknown = set(base) - set(SimulationConfig.__dataclass_fields__)
        if unknown:
            raise Eeg2fmriInputError(f"{args.config}: unknown simulation setting(s) {sorted(unknown)}; valid: {sorted(SimulationConfig.__dataclass_fields__)}.")
        cfg = SimulationConfig(**{**base, **cli})
        root = simulate_dataset(args.out, cfg, overwrite=args.overwrite, progress_bar=bars)
        print(f"wrote {root}")
        return 0
    if args.command == "prepare":
        from eeg2fmri.datasets import prepare_dataset

        ds = prepare_dataset(args.bids_root, _read_config(args.config), subjects=args.subjects, progress_bar=bars)
        out = ds.save(args.out, overwrite=args.overwrite)
        print(f"wrote {out}: {len(ds.runs)} run(s), {len(ds.ch_names)} EEG channels, {int(ds.mask.sum())} voxels")
        return 0
    if args.command == "synthesize":
        from eeg2fmri.synthesis import synthesize

        out = synthesize(args.eeg, args.model, args.out, tr=args.tr, overwrite=args.overwrite, progress_bar=bars)
        print(f"wrote {out}")
        return 0
    if args.command == "models":
        from eeg2fmri.models import get_model_class, list_models

        for name in list_models():
            doc = (get_model_class(name).__doc__ or "").strip().splitlines()
            print(f"{name:22s} {doc[0] if doc else ''}")
        return 0
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``eeg2fmri`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 1
    set_log_level("info" if args.verbose else "warning")
    try:
        return _run(args)
    except Eeg2fmriInputError as err:
        logger.debug("input error", exc_info=True)
        print(f"eeg2fmri {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; no partial output was left behind.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
