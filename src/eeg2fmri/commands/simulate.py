"""``eeg2fmri simulate``."""

from __future__ import annotations

from eeg2fmri.commands._common import read_config
from eeg2fmri.utils.validation import Eeg2fmriInputError

NAME = "simulate"
ORDER = 20
HELP = "write a simulated simultaneous EEG-fMRI BIDS dataset with ground truth"
DESCRIPTION = (
    "Write a BIDS dataset (BrainVision EEG with R128 volume markers, ECG/EOG channels, NIfTI BOLD, sidecars) plus "
    "derivatives/groundtruth (drives, envelopes, lead field, noise-free BOLD, parameters)."
)


def add_arguments(p) -> None:
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
    p.add_argument("--config", help="JSON/YAML/TOML file of SimulationConfig fields (command-line options win)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def run(args) -> int:
    from eeg2fmri.simulate import SimulationConfig, simulate_dataset

    base = read_config(args.config)
    cli = dict(n_subjects=args.subjects, minutes=args.minutes, n_runs=args.runs, seed=args.seed, tr=args.tr, sfreq=args.sfreq,
               n_channels=args.channels, montage=args.montage, voxel_size=args.voxel_size, n_regions=args.regions, task=args.task,
               hemodynamics=args.hemodynamics, eeg_format=args.eeg_format, artifacts=not args.no_artifacts)
    unknown = set(base) - set(SimulationConfig.__dataclass_fields__)
    if unknown:
        raise Eeg2fmriInputError(f"{args.config}: unknown simulation setting(s) {sorted(unknown)}; valid: {sorted(SimulationConfig.__dataclass_fields__)}.")
    root = simulate_dataset(args.out, SimulationConfig(**{**base, **cli}), overwrite=args.overwrite, progress_bar=not args.quiet)
    print(f"wrote {root}")
    return 0
