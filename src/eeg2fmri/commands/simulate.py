"""``eeg2fmri simulate``."""

from __future__ import annotations

from eeg2fmri.utils.config import read_config
from eeg2fmri.utils.validation import Eeg2fmriInputError

NAME = "simulate"
ORDER = 20
HELP = "write a simulated simultaneous EEG-fMRI BIDS dataset with ground truth"
DESCRIPTION = (
    "Write a BIDS dataset (BrainVision EEG with R128 volume markers, ECG/EOG channels, NIfTI BOLD, sidecars) plus "
    "derivatives/groundtruth (drives, envelopes, lead field, noise-free BOLD, parameters)."
)


#: Command-line option (argparse dest) -> (SimulationConfig field, its default as shown in --help). The
#: options default to None, so that a --config file's value is used unless the option is given.
_OPTIONS = {
    "subjects": ("n_subjects", 4), "minutes": ("minutes", 6.0), "runs": ("n_runs", 1), "seed": ("seed", 0), "tr": ("tr", 2.0),
    "sfreq": ("sfreq", 250.0), "channels": ("n_channels", 32), "montage": ("montage", "easycap-M1"), "voxel_size": ("voxel_size", 6.0),
    "regions": ("n_regions", 24), "task": ("task", None), "hemodynamics": ("hemodynamics", "gamma"), "eeg_format": ("eeg_format", "BrainVision"),
}


def add_arguments(p) -> None:
    d = {k: v for k, (_, v) in _OPTIONS.items()}
    p.add_argument("out", help="output BIDS folder (must not exist unless --overwrite)")
    p.add_argument("--subjects", type=int, help=f"number of subjects (default: {d['subjects']})")
    p.add_argument("--minutes", type=float, help=f"scan minutes per run (default: {d['minutes']})")
    p.add_argument("--runs", type=int, help=f"runs per subject (default: {d['runs']})")
    p.add_argument("--seed", type=int, help=f"random seed (default: {d['seed']})")
    p.add_argument("--tr", type=float, help=f"repetition time in s (default: {d['tr']})")
    p.add_argument("--sfreq", type=float, help=f"EEG sampling rate in Hz (default: {d['sfreq']})")
    p.add_argument("--channels", type=int, help=f"EEG channels (default: {d['channels']})")
    p.add_argument("--montage", help=f"MNE standard montage (default: {d['montage']})")
    p.add_argument("--voxel-size", type=float, help=f"BOLD voxel size in mm (default: {d['voxel_size']})")
    p.add_argument("--regions", type=int, help=f"source regions (default: {d['regions']})")
    p.add_argument("--task", choices=["blocks"], help="add a block design (default: rest)")
    p.add_argument("--hemodynamics", choices=["gamma", "balloon"], help=f"HRF model (default: {d['hemodynamics']})")
    p.add_argument("--eeg-format", choices=["BrainVision", "EDF", "EEGLAB"], help=f"EEG file format (default: {d['eeg_format']})")
    p.add_argument("--no-artifacts", action="store_true", help="no blinks, ECG or line noise")
    p.add_argument("--config", help="JSON/YAML/TOML file of SimulationConfig fields, or the JSON itself (options given on the command "
                   "line win; the others take the file's values, then the defaults)")
    p.add_argument("--generator", choices=["envelope", "neural_mass"], default="envelope",
                   help="generative model: 'envelope' (prescribed band envelopes following a latent drive; default) or "
                   "'neural_mass' (Jansen-Rit columns on a connectome, Balloon-Windkessel BOLD; --config then takes "
                   "NEURAL_MASS_DEFAULTS keys)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


#: Options the neural-mass generator takes (argparse dest -> keyword of simulate_neural_mass_dataset).
_NEURAL_MASS_OPTIONS = {
    "subjects": "n_subjects", "minutes": "minutes", "seed": "seed", "tr": "tr", "sfreq": "sfreq", "channels": "n_channels",
    "montage": "montage", "voxel_size": "voxel_size", "regions": "n_regions",
}


def _run_neural_mass(args, base: dict) -> int:
    from eeg2fmri.simulate import simulate_neural_mass_dataset

    refused = [f"--{d.replace('_', '-')}" for d in _OPTIONS if d not in _NEURAL_MASS_OPTIONS and getattr(args, d) is not None]
    if args.no_artifacts:
        refused.append("--no-artifacts")
    if refused:
        raise Eeg2fmriInputError(
            f"--generator neural_mass does not take {', '.join(refused)} (one resting BrainVision run per subject, "
            f"no artefacts, Balloon-Windkessel BOLD); drop them or use --generator envelope."
        )
    kwargs = {**base, **{kw: getattr(args, d) for d, kw in _NEURAL_MASS_OPTIONS.items() if getattr(args, d) is not None}}
    root = simulate_neural_mass_dataset(args.out, overwrite=args.overwrite, progress_bar=not args.quiet, **kwargs)
    print(f"wrote {root}")
    return 0


def run(args) -> int:
    from eeg2fmri.simulate import SimulationConfig, simulate_dataset

    base = read_config(args.config)
    if getattr(args, "generator", "envelope") == "neural_mass":
        return _run_neural_mass(args, base)
    # SimulationConfig's defaults < the config file < the options given on the command line
    cli = {field: getattr(args, dest) for dest, (field, _) in _OPTIONS.items() if getattr(args, dest) is not None}
    if args.no_artifacts:
        cli["artifacts"] = False
    unknown = set(base) - set(SimulationConfig.__dataclass_fields__)
    if unknown:
        raise Eeg2fmriInputError(f"{args.config}: unknown simulation setting(s) {sorted(unknown)}; valid: {sorted(SimulationConfig.__dataclass_fields__)}.")
    root = simulate_dataset(args.out, SimulationConfig(**{**base, **cli}), overwrite=args.overwrite, progress_bar=not args.quiet)
    print(f"wrote {root}")
    return 0
