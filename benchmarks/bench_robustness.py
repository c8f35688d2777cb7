"""Robustness matrix: the flagship and the linear references over generative settings it was not designed from.

Every cell is one generative setting x one simulator seed: a BIDS dataset
(``--subjects`` subjects x ``--minutes`` minutes, 250 Hz EEG, 6 mm BOLD,
TR 2 s) is simulated, prepared with the package defaults (band power,
``bands="auto"``: 1-45 Hz classical bands plus 55-95 Hz high gamma) and
scored under the ``within`` protocol (later 20 % of each run is the test
span, the 20 % before it validation, gaps between spans) and ``loso``
(each subject held out in turn; validation on the next subject held out whole,
then the closed-form parts refitted on every non-test subject, as ``benchmark``
does -- ``--loso-val`` gives the other choices). Models:

* ``ridge_hrf`` -- the package's reference (canonical HRF, SPM informed basis
  or FIR lags 0-16 s, chosen on validation; one penalty chosen on validation);
* ``ridge_fir_pt`` -- the field's strongest standard linear encoding model:
  FIR lags 0-16 s with a penalty per voxel chosen on validation;
* ``eeg2fmri_net`` -- the flagship with its recommended training config
  (early stopping and checkpoint on validation windows only);
* any other registered model given with ``--models``;
* with ``--oracles`` (neural-mass settings only): linear models given the ground-truth slow input of the neural
  masses in place of EEG features -- what a model that recovered that input from the EEG perfectly could reach:
  ``oracle_region`` (each voxel from its own region's input, a ridge per region), ``oracle_input`` and
  ``oracle_global`` (the FIR ridge of ``ridge_fir_pt`` on every region's input, or on their mean). They say how
  much of the BOLD the EEG could explain at best and how much of that is region-specific
  (``bench_input_decoding.py`` then asks how much of the input the EEG features carry).

Settings (``--settings``; every one differs from the default in one respect):

=============  ==============================================================
default        the package simulator's defaults (the flagship was designed on it)
balloon        Balloon-Windkessel haemodynamics instead of the double gamma
hrf_far        region HRFs peaking anywhere in 4-9 s, undershoot ratio 0-0.5
saturating     the drive enters the haemodynamics through tanh (non-linear EEG-BOLD coupling)
other_bands    the EEG-BOLD coupling in 1-4 Hz delta and 55-90 Hz high gamma (and weak alpha) only
per_subject    every subject has its own parcellation and network loadings
low_snr        twice the thermal and physiological BOLD noise
short          4-minute recordings
long           12-minute recordings
neural_mass    another generator family: Jansen-Rit neural masses on a connectome,
               Balloon-Windkessel BOLD (eeg2fmri.simulate.simulate_neural_mass_dataset)
=============  ==============================================================

Acquisition probes (``--settings`` only; not in the default matrix): the default
simulator (or the neural-mass family) acquired differently, to check that the
flagship's design holds on shapes it was not chosen on:

=============  ==============================================================
tr_1s          TR 1 s (twice the frames per window)
tr_2p5s        TR 2.5 s
dense_eeg      64 EEG channels at 500 Hz
two_runs       two runs per subject
edf            EEG written as EDF instead of BrainVision
nm_tr1s        the neural-mass family at TR 1 s
neurolib_wc    a generator whose dynamics nobody here wrote: neurolib's Wilson-Cowan
               network and Balloon-Windkessel BOLD (benchmarks/sim_neurolib.py; needs
               the optional neurolib library)
tvb_jr         a generator and a measurement nobody here wrote: The Virtual Brain's
               Jansen-Rit network on its 76-region connectome, its 65-electrode EEG
               projection and its BOLD monitor; EDF + NIfTI through MNE-BIDS
               (benchmarks/sim_tvb.py; needs tvb-library and tvb-data)
focal          the default simulator with the EEG-BOLD relation in 15 % of the regions
               (driven_regions=0.15); its r is the median over the ground-truth driven
               voxels (the whole-mask median, mostly noise voxels, is kept as
               per_subject_mask in the cell)
=============  ==============================================================

For each cell and protocol the per-subject median voxel r of every model is
kept; the difference of a model to a reference is summarised over seeds and
subjects with a hierarchical bootstrap (seeds resampled, then subjects
within each seed: :func:`eeg2fmri.evaluation.hierarchical.hierarchical_bootstrap`).
Printed: one table, rows = settings, columns = within / LOSO median r of each
model (mean over seeds), and Δr of the flagship vs each reference with its
95 % CI; then the cells in which the CI lies above 0.

Every cell's result is written to ``--out/cells/<setting>_s<seed>.json`` as
soon as it is done; a re-run skips the cells already there (so a long matrix
can be run in pieces). ``--jobs N`` runs N cells in parallel processes,
``--threads`` CPU threads each; ``--accelerator gpu`` trains the torch
models on the GPU (processes share it).

Usage::

    python benchmarks/bench_robustness.py --out robustness/ [--settings default hrf_far ...] [--seeds 0 1 2 3 4]
        [--subjects 4] [--minutes 6] [--models eeg2fmri_net] [--jobs 4] [--threads 2] [--accelerator cpu|gpu]
        [--quick] [--table-only] [--variants '{"label": {"hparams": {...}}}']

``--variants`` adds flagship variants (or other models with hyperparameters) as
extra columns: for design experiments on design seeds (e.g. ``--seeds 100 101``),
never on the seeds of the reported matrix. A variant is
``{"model": ..., "representation": ..., "hparams": {...}, "prepare": {...}, "train_config": {...}}``
(all optional; ``train_config`` sections are merged key by key onto the model's recommended config; ``prepare`` takes :class:`~eeg2fmri.datasets.prepared.PrepareConfig`
keywords such as ``bands``, and the variant reads its own prepared copy).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

SETTINGS: dict[str, dict] = {
    "default": {},
    "balloon": {"sim": {"hemodynamics": "balloon"}},
    "hrf_far": {"sim": {"hrf_peak_range": [4.0, 9.0], "hrf_undershoot_range": [0.0, 0.5]}},
    "saturating": {"sim": {"bold_nonlinearity": "saturating"}},
    "other_bands": {"sim": {"bands": {"delta": [1.0, 4.0], "alpha": [8.0, 12.0], "high_gamma": [55.0, 90.0]},
                            "coupling": {"delta": 0.4, "alpha": -0.2, "high_gamma": 0.6},
                            "band_amplitude": {"delta": 1.0, "alpha": 1.0, "high_gamma": 0.3}}},
    "per_subject": {"sim": {"subject_variability": 1.0}},
    "low_snr": {"sim": {"thermal_noise": 1.6, "physio_noise": 1.6}},
    "short": {"minutes": 4.0},
    "long": {"minutes": 12.0},
    "neural_mass": {"generator": "neural_mass"},
}
#: Acquisition probes: run with --settings only (see the module docstring).
PROBES: dict[str, dict] = {
    "tr_1s": {"sim": {"tr": 1.0}},
    "tr_2p5s": {"sim": {"tr": 2.5}},
    "dense_eeg": {"sim": {"n_channels": 64, "sfreq": 500.0}},
    "two_runs": {"sim": {"n_runs": 2}},
    "edf": {"sim": {"eeg_format": "EDF"}},
    "nm_tr1s": {"generator": "neural_mass", "sim": {"tr": 1.0}},
    "neurolib_wc": {"generator": "neurolib"},
    "tvb_jr": {"generator": "tvb"},
    # the EEG-BOLD relation in 15 % of the regions only; scored on the ground-truth driven voxels ("metric": "driven")
    "focal": {"sim": {"driven_regions": 0.15}, "metric": "driven"},
}
ALL_SETTINGS = {**SETTINGS, **PROBES}
#: Linear references (label -> (registered model, hyperparameters)).
#: Fit-info keys recorded per fold in a cell (``protocols.<p>.choices.<model>``): what a model chose on validation windows.
_CHOICE_KEYS = ("ridge_weight", "ridge_weight_kept_linear", "output_rank", "output_rank_kept_full", "tangent_weight", "tangent_hrf",
                "ridge_hrf", "alpha", "tangent_weight_kept_power", "val_r_power_ridge", "val_r_tangent_ridge", "tangent_weight_validation",
                "best_epoch", "refit_epochs", "refit_skipped")

REFERENCES = {"ridge_hrf": ("ridge_hrf", {}), "ridge_fir_pt": ("ridge_hrf", {"hrf": "lags", "alpha_per_target": True})}
FLAGSHIP = "eeg2fmri_net"
#: PrepareConfig keywords a variant may set (they change the EEG features, not the volumes, frames or mask).
_PREPARE_KEYS = {"bands", "l_freq", "h_freq", "notch", "reference", "clean", "work_sfreq", "check_artifacts",
                 "stft_fmin", "stft_fmax", "stft_log", "raw_sfreq"}


def _simulate(bids: Path, setting: str, seed: int, args) -> None:
    spec = ALL_SETTINGS[setting]
    minutes = spec.get("minutes", args.minutes)
    if (bids / "dataset_description.json").exists():
        return
    if spec.get("generator") == "neurolib":
        try:
            import neurolib  # noqa: F401
            from sim_neurolib import simulate_neurolib_dataset
        except ImportError as err:
            raise RuntimeError(f"setting {setting!r} needs the optional neurolib library ({err}); "
                               'pip install neurolib numba xarray h5py dill "dpath<2.2"') from err
        simulate_neurolib_dataset(bids, n_subjects=args.subjects, minutes=minutes, seed=seed, overwrite=bids.exists(), **spec.get("sim", {}))
    elif spec.get("generator") == "tvb":
        try:
            import tvb.simulator  # noqa: F401
            from sim_tvb import simulate_tvb_dataset
        except ImportError as err:
            raise RuntimeError(f"setting {setting!r} needs The Virtual Brain ({err}); pip install tvb-library tvb-data") from err
        simulate_tvb_dataset(bids, n_subjects=args.subjects, minutes=minutes, seed=seed, overwrite=bids.exists(), **spec.get("sim", {}))
    elif spec.get("generator") == "neural_mass":
        from eeg2fmri.simulate import simulate_neural_mass_dataset

        simulate_neural_mass_dataset(bids, n_subjects=args.subjects, minutes=minutes, seed=seed, overwrite=bids.exists(), **spec.get("sim", {}))
    else:
        from eeg2fmri.simulate import simulate_dataset

        sim = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.get("sim", {}).items()}
        if "bands" in sim:
            sim["bands"] = {k: tuple(v) for k, v in sim["bands"].items()}
        simulate_dataset(bids, n_subjects=args.subjects, minutes=minutes, seed=seed, progress_bar=False, overwrite=bids.exists(), **sim)


#: Input oracles (``--oracles``), fitted and scored on the same splits and test windows as the models, with the
#: ground-truth slow input of the neural masses in place of EEG features -- what a model that recovered that input from
#: the EEG perfectly could reach: ``oracle_region`` (each voxel from its own region's input only, a ridge per region
#: over the window's frames, penalty chosen on the validation windows), ``oracle_input`` (the FIR ridge with a
#: penalty per voxel, ``ridge_fir_pt``, on every region's input) and ``oracle_global`` (the same on their mean).
#: Neural-mass settings only (their ground truth records the input).
ORACLES = ("oracle_region", "oracle_input", "oracle_global")
_NM_SETTINGS = {name for name, spec in ALL_SETTINGS.items() if spec.get("generator") in ("neural_mass", "neurolib")}


def _groundtruth_input(bids: Path, subject: str) -> tuple:
    """The ground-truth slow input of one subject's run: times (s, first volume at 0) and values ``(n_times, n_regions)``."""
    import numpy as np

    files = sorted((bids / "derivatives" / "groundtruth" / f"sub-{subject}").glob("*_groundtruth.npz"))
    if len(files) != 1:
        raise RuntimeError(f"{bids}: expected one ground-truth file for sub-{subject} (one run), found {len(files)}")
    gt = np.load(files[0])
    if "input_slow" in gt:  # eeg2fmri.simulate.neural_mass: block means, times recorded
        return gt["t_neural"].astype(float), gt["input_slow"].astype(float)
    sim = json.loads((bids / "derivatives" / "groundtruth" / "simulation.json").read_text())
    chunk = float(sim["settings"]["neurolib"]["chunk_s"])  # sim_neurolib: knots of exc_ext every chunk_s s of simulated time
    knots = gt["exc_ext"].astype(float)
    return (np.arange(len(knots)) + 0.5) * chunk - float(sim["pre_seconds"]), knots


def _oracle_datasets(ds, bids: Path) -> dict:
    """Copies of the band-power dataset whose features are the ground-truth input at the frames' times (z-scored per run)."""
    from dataclasses import replace

    import numpy as np

    out = {name: [] for name in ORACLES}
    for run in ds.runs:
        t_in, x_in = _groundtruth_input(bids, run.subject)
        # frame j ends (window_end[0] - j - 1) frames before the end of volume 0's acquisition; times from volume 0's onset
        j = np.arange(len(run.features))
        t = ds.tr - (run.window_end[0] - j - 0.5) / ds.frame_rate
        x = np.stack([np.interp(t, t_in, x_in[:, r]) for r in range(x_in.shape[1])], 1)
        x = (x - x.mean(0)) / x.std(0)
        g = x.mean(1, keepdims=True)
        for name, f in (("oracle_input", x), ("oracle_global", (g - g.mean()) / g.std())):
            out[name].append(replace(run, features=f[:, :, None].astype(np.float32)))
    n_reg = out["oracle_input"][0].features.shape[1]
    cfg = replace(ds.config, bands={"input": (0.0, 1.0)})
    return {"oracle_input": replace(ds, runs=out["oracle_input"], ch_names=[f"region{r}" for r in range(n_reg)], config=cfg, freqs=None),
            "oracle_global": replace(ds, runs=out["oracle_global"], ch_names=["global"], config=cfg, freqs=None)}


class _RegionOracle:
    """Each voxel predicted from its own region's input window (a ridge per region); voxels of no region from the mean input."""

    def __init__(self, region):
        self.region = region  # (n_voxels,) region of every voxel, -1 outside the ground-truth mask

    @staticmethod
    def _raw(x, r):  # windows (n, n_regions, 1, n_frames) -> (n, n_frames)
        return x[:, :, 0, :].mean(1) if r < 0 else x[:, r, 0, :]

    def fit(self, x, y, x_val, y_val):
        import numpy as np
        from sklearn.linear_model import Ridge

        self.scale_, self.models_ = {}, {}
        for r in np.unique(self.region):
            cols = self.region == r
            z = self._raw(x, r)
            self.scale_[r] = (z.mean(0), z.std(0) + 1e-9)
            z, zv = self._z(x, r), self._z(x_val, r)
            best = None
            for alpha in np.logspace(-2, 5, 15):  # chosen on the validation windows (mean voxel r)
                m = Ridge(alpha=alpha).fit(z, y[:, cols])
                p, t = m.predict(zv), y_val[:, cols]
                p, t = p - p.mean(0), t - t.mean(0)
                score = float(np.mean((p * t).sum(0) / np.sqrt((p * p).sum(0) * (t * t).sum(0) + 1e-30)))
                if best is None or score > best[0]:
                    best = (score, m)
            self.models_[r] = best[1]
        return self

    def _z(self, x, r):
        mu, sd = self.scale_[r]
        return (self._raw(x, r) - mu) / sd

    def predict(self, x):
        import numpy as np

        out = np.zeros((len(x), len(self.region)), dtype=np.float32)
        for r, m in self.models_.items():
            out[:, self.region == r] = m.predict(self._z(x, r))
        return out


def _voxel_regions(ds, bids: Path):
    """The ground-truth region of every voxel of the prepared mask (-1 outside the ground-truth mask); both neural-mass
    generators give every subject the same parcellation."""
    import nibabel as nib
    import numpy as np

    gdir = bids / "derivatives" / "groundtruth"
    gt_mask = np.asarray(nib.load(gdir / "mask.nii.gz").dataobj) > 0
    labels = np.load(next(gdir.glob("sub-*/*_groundtruth.npz")))["labels"]
    vol = np.full(gt_mask.shape, -1, dtype=int)
    vol[gt_mask] = labels  # the simulators store labels in the mask's C order
    return vol[np.asarray(ds.mask, bool)]


def _driven_voxels(ds, bids: Path):
    """Voxels of the prepared mask in a region whose BOLD carries its drive (the simulator's ``driven_regions``)."""
    import numpy as np

    regions = _voxel_regions(ds, bids)
    driven = np.load(next((bids / "derivatives" / "groundtruth").glob("sub-*/*_groundtruth.npz")))["driven"]
    return (regions >= 0) & driven[np.clip(regions, 0, None)]


def _rep_key(variant: dict) -> str:
    """Key of the prepared dataset a variant reads: its representation, plus its ``prepare`` keywords if any."""
    rep = variant.get("representation", "bandpower")
    return rep + (f"|{json.dumps(variant['prepare'], sort_keys=True)}" if variant.get("prepare") else "")


def _reusable(doc: dict, args: argparse.Namespace) -> bool:
    """Whether a stored cell answers this run: same subjects, every protocol and model asked for, and LOSO validated as
    asked (cells stored before session 23 have no ``validation`` key: spans). ``--table-only`` tabulates whatever LOSO
    validation is stored (the table says which)."""
    have = set(next(iter(next(iter(doc["protocols"].values()))["per_subject"].values()))) if doc["protocols"] else set()
    want = set(args.references + args.models) | (set(ORACLES) if args.oracles else set())
    same_val = args.table_only or "loso" not in args.protocols or "loso" not in doc["protocols"] or (
        doc["protocols"]["loso"].get("validation", "spans") == _loso_val(args, doc.get("subjects", args.subjects)))
    return doc.get("subjects") == args.subjects and all(p in doc["protocols"] for p in args.protocols) and want <= have and same_val


LOSO_VALIDATION = {"spans": "spans (the later span of every training run)",
                   "next-subject": "next-subject (the next subject held out whole)",
                   "next-subject-refit": "next-subject-refit (the next subject held out whole, closed-form parts refitted)"}


def _loso_val(args: argparse.Namespace, n_subjects: int) -> str:
    """The LOSO validation a cell uses: ``--loso-val``, or ``spans`` below 3 subjects (a held-out validation subject needs
    another training subject; ``benchmark`` does the same)."""
    v = getattr(args, "loso_val", "spans")
    return "spans" if n_subjects < 3 else v


def run_cell(setting: str, seed: int, args) -> dict:
    """Simulate, prepare and score one cell under every protocol; the cell's JSON document."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np
    import torch

    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.prepared import prepare
    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.evaluation.protocol import evaluate_models, merge_results
    from eeg2fmri.models import get_model_class
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.benchmark import _folds

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    data = Path(args.out) / "data"
    bids = data / f"{setting}_s{seed}_n{args.subjects}"
    _simulate(bids, setting, seed, args)
    t_sim = time.perf_counter() - t0
    # the prepared copies are this script's cache under --out/data: reused when up to date, replaced otherwise
    # (e.g. a data/ folder copied to another --out, whose checksummed inputs then live elsewhere)
    prepared, _ = prepare(bids, data / f"{bids.name}_prepared", None, progress_bar=False, overwrite="stale")
    ds = load_prepared(prepared)
    variants = getattr(args, "variant_hparams", {}) or {}
    # --representation LABEL=REP applies to a variant too (session 33: a variant given only that way read band power in silence)
    variants = {label: ({**v, "representation": args.representations[label]} if "representation" not in v and label in args.representations else v)
                for label, v in variants.items()}
    # other representations some models need (same volumes and frames, so the same splits and test windows)
    # a variant may also change how its representation is prepared ("prepare": PrepareConfig keywords, e.g. bands)
    reps = {"bandpower": ds}  # first: the references are fitted and scored on it
    for name in {_rep_key(v) for v in variants.values()} | {args.representations.get(m, "bandpower") for m in args.models}:
        if name not in reps:
            from eeg2fmri.datasets.prepared import PrepareConfig

            rep, _, extra = name.partition("|")
            kw = json.loads(extra) if extra else {}
            folder = data / (f"{bids.name}_prepared_{rep}" + (f"_{hashlib.sha1(extra.encode()).hexdigest()[:8]}" if extra else ""))
            p2, _ = prepare(bids, folder, PrepareConfig(representation=rep, **kw), progress_bar=False, overwrite="stale")
            reps[name] = load_prepared(p2)
    oracles = list(ORACLES) if getattr(args, "oracles", False) else []
    if oracles:
        reps.update(_oracle_datasets(ds, bids))
    t_prep = time.perf_counter() - t0 - t_sim
    doc: dict = {"setting": setting, "seed": seed, "subjects": args.subjects, "minutes": ALL_SETTINGS[setting].get("minutes", args.minutes),
                 "bands": {k: list(v) for k, v in ds.config.bands.items()}, "protocols": {}, "seconds": {"simulate": t_sim, "prepare": t_prep}}
    def seeded(name: str) -> dict:  # torch models take an initialisation seed, closed-form ones none
        return {} if getattr(get_model_class(name), "kind", "torch") == "sklearn" else {"seed": args.model_seed}

    models = {**{k: REFERENCES[k] for k in args.references},
              **{m: (m, seeded(m)) for m in args.models if m not in variants},
              **{label: (v.get("model", FLAGSHIP), {**seeded(v.get("model", FLAGSHIP)), **v.get("hparams", {})}) for label, v in variants.items()},
              **{label: REFERENCES["ridge_fir_pt"] for label in oracles}}
    rep_of = {label: ("oracle_input" if label == "oracle_region" else label) if label in oracles else _rep_key(variants[label]) if label in variants else args.representations.get(label, "bandpower")
              for label in models}
    for proto in args.protocols:
        parts, fit_s, choices = [], {nm: 0.0 for nm in models}, {nm: [] for nm in models}
        folds = _folds(ds, proto, 5, {})
        loso_val = _loso_val(args, len(ds.subjects))
        if proto == "loso" and loso_val in ("next-subject", "next-subject-refit"):
            from eeg2fmri.datasets.targets import make_split

            subs = list(ds.subjects)  # validation: the next training subject (cyclically), held out whole
            folds = [make_split(ds, "subjects", test_subjects=[s_], val_subjects=[subs[(i + 1) % len(subs)]]) for i, s_ in enumerate(subs)]
        refit = proto == "loso" and loso_val == "next-subject-refit"  # as benchmark's val_subjects: next does (refit_hparams)
        for k, split in enumerate(folds):
            targets = split_targets(ds, split)
            fitted = {}
            for label, (name, hp) in models.items():
                mds = reps[rep_of[label]]
                if refit:
                    from eeg2fmri.workflows.benchmark import refit_hparams

                    hp = refit_hparams([name], {name: hp})[name]
                t1 = time.perf_counter()
                cfg = None
                if getattr(get_model_class(name), "kind", "torch") != "sklearn":
                    rec = getattr(get_model_class(name), "recommended_train_config", {})
                    cfg = {**rec, "seed": args.model_seed, "trainer": {"accelerator": args.accelerator, "log": [], "progress_bar": False}}
                    for sect, extra in (variants.get(label, {}).get("train_config") or {}).items():  # e.g. {"optimizer": {"refit": true}}
                        cfg[sect] = {**dict(cfg.get(sect) or {}), **extra} if isinstance(extra, dict) else extra
                if label == "oracle_region":
                    from eeg2fmri.training.fit import stack_split

                    (x, y, _), (xv, yv, _) = (stack_split(mds, split, targets, part) for part in ("train", "val"))
                    fitted[label] = _RegionOracle(_voxel_regions(ds, bids)).fit(x, y, xv, yv)
                else:
                    res_fit = fit_model(mds, split, name, hp, targets=targets, train_config=cfg)
                    fitted[label] = res_fit.model
                    # what the model chose on the validation windows in this fold (the flagship's blend weight and
                    # whether the guard kept the linear path alone, its output rank; a ridge's penalty)
                    info = dict(res_fit.info or {})
                    if isinstance(info.get("refit"), dict):  # train config optimizer.refit: the refitted network's epochs, or why not
                        info["refit_epochs"], info["refit_skipped"] = info["refit"].get("epochs"), info["refit"].get("skipped")
                    choices[label].append({k: v for k, v in info.items() if k in _CHOICE_KEYS and isinstance(v, (int, float, str))})
                fit_s[label] += time.perf_counter() - t1
            part = None
            for rname, rds in reps.items():  # one evaluation per representation, merged: the same test windows and targets
                sub = {label: m for label, m in fitted.items() if rep_of[label] == rname}
                if not sub:
                    continue
                res_r = evaluate_models(rds, split, targets, sub, fit_missing=True, n_boot=20, random_state=k)
                if part is None:
                    part = res_r
                else:  # only this representation's own models: the reference evaluate_models fits on it by itself (on
                    # another band set, say) must not replace the reference fitted on the band-power dataset above
                    for s_, v in res_r["per_subject"].items():
                        part["per_subject"][s_]["_r"].update({nm: r for nm, r in v["_r"].items() if nm in sub})
            parts.append(part)
        res = merge_results(parts)
        per_subject = {s: {nm: float(np.nanmedian(v["_r"][nm])) for nm in models} for s, v in res["per_subject"].items()}
        ceil = res["group"].get("ceilings") or {}
        doc["protocols"][proto] = {"per_subject": per_subject, "fit_seconds": fit_s, "choices": {nm: c for nm, c in choices.items() if c},
                                   "noise_ceiling": ceil.get("noise_median_r"), "oracle_ceiling": ceil.get("oracle_median_r")}
        if proto == "loso":
            doc["protocols"][proto]["validation"] = loso_val
        if ALL_SETTINGS[setting].get("metric") == "driven":  # the median over the ground-truth driven voxels
            keep = _driven_voxels(ds, bids)
            doc["protocols"][proto]["per_subject_mask"] = per_subject
            doc["protocols"][proto]["per_subject"] = {s: {nm: float(np.nanmedian(np.asarray(v["_r"][nm])[keep])) for nm in models}
                                                      for s, v in res["per_subject"].items()}
            doc["metric"] = f"median voxel r over the {int(keep.sum())} ground-truth driven voxels of {len(keep)}"
    doc["seconds"]["total"] = time.perf_counter() - t0
    return doc


def _die_with_parent() -> None:
    """Worker initializer (Linux): end this worker when the parent process ends, so that a stopped run leaves no orphan
    still writing cells from the code it started with (the pool is created and fed from the main thread)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent ended before the call
            os._exit(1)


def _worker(setting: str, seed: int, args) -> tuple[str, int, dict | str]:
    try:
        doc = run_cell(setting, seed, args)
    except Exception as err:  # a failed cell is reported, the others go on
        import traceback

        return setting, seed, f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}"
    # written by the worker (atomically), so a cell finished after the parent was stopped is kept
    cell_dir = Path(args.out) / "cells"
    tmp = cell_dir / f".{setting}_s{seed}.json.tmp"
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, cell_dir / f"{setting}_s{seed}.json")
    return setting, seed, doc


def _fmt(v, d: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:+.{d}f}" if d < 0 else f"{v:.{d}f}"


def table(cells: dict, settings: list[str], protocols: list[str], models: list[str], references: list[str]) -> tuple[str, list[dict]]:
    """The printed matrix and its rows (Δr of every non-reference model vs every reference)."""
    import numpy as np

    from eeg2fmri.evaluation.hierarchical import hierarchical_bootstrap

    others = [m for m in models if m not in references]
    head = ["setting", "seeds"]
    for p in protocols:
        head += [f"{p} {m}" for m in models] + [f"{p} Δ {o} vs {ref} [95% CI]" for o in others for ref in references] + [f"{p} noise ceil."]
    body, rows = [], []
    for st in settings:
        docs = [d for (s, _), d in sorted(cells.items()) if s == st]
        if not docs:
            continue
        line = [st, str(len(docs))]
        for p in protocols:
            per = [d["protocols"][p]["per_subject"] for d in docs if p in d["protocols"]]
            for m in models:
                line.append(_fmt(float(np.mean([np.mean([v[m] for v in ps.values()]) for ps in per]))) if per else "-")
            for o in others:
                for ref in references:
                    groups = [[v[o] - v[ref] for v in ps.values()] for ps in per]
                    hb = hierarchical_bootstrap(groups, n_boot=2000, random_state=0)
                    # the issue's ratio target: mean r of the model over mean r of the reference (means over seeds of subject means)
                    m_o = float(np.mean([np.mean([v[o] for v in ps.values()]) for ps in per]))
                    m_ref = float(np.mean([np.mean([v[ref] for v in ps.values()]) for ps in per]))
                    ratio = m_o / m_ref if m_ref > 0 else float("nan")
                    rows.append({"setting": st, "protocol": p, "model": o, "reference": ref, "ratio": ratio, **hb})
                    line.append(f"{hb['mean']:+.3f} [{hb['low']:+.3f}, {hb['high']:+.3f}]")
            nc = [d["protocols"][p]["noise_ceiling"] for d in docs if d["protocols"].get(p, {}).get("noise_ceiling") is not None]
            line.append(_fmt(float(np.mean(nc))) if nc else "-")
        body.append(line)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    text = "\n".join("  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths))) for r in [head] + body)
    return text, rows


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, checked and completed (variants, representations, --quick)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for data/, cells/*.json and robustness.json")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(ALL_SETTINGS),
                    help="settings of the matrix (default: the ten of the matrix; the acquisition probes only when named)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--protocols", nargs="+", default=["within", "loso"], choices=["within", "loso"])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0, help="minutes per recording (settings short/long set their own)")
    ap.add_argument("--models", nargs="+", default=[FLAGSHIP], help="models compared with the references (default: the flagship)")
    ap.add_argument("--references", nargs="+", default=list(REFERENCES),
                    help=f"linear references, among {list(REFERENCES)} (default: all); with --table-only any model stored in the cells "
                         "(e.g. an earlier flagship, for a paired comparison)")
    ap.add_argument("--variants", default=None,
                    help='design experiments: JSON {"label": {"model": "eeg2fmri_net", "hparams": {...}}}; each label is scored as one more model')
    ap.add_argument("--oracles", action="store_true",
                    help=f"also score the input oracles {list(ORACLES)} (neural-mass settings only: {sorted(_NM_SETTINGS)})")
    ap.add_argument("--model-seed", type=int, default=0)
    ap.add_argument("--loso-val", choices=("spans", "next-subject", "next-subject-refit"), default="next-subject-refit",
                    help="LOSO validation: the next training subject held out whole with the closed-form parts fitted again on "
                         "training + validation windows (default since session 23: benchmark's val_subjects: next), the same without "
                         "the refit, or the later span of every training run (spans: the default before session 23, which every "
                         "matrix LOSO number measured before then used)")
    ap.add_argument("--representation", action="append", default=[], metavar="MODEL=REP",
                    help="prepare REP (e.g. tangent) for MODEL instead of band power (repeatable)")
    ap.add_argument("--jobs", type=int, default=1, help="cells run in parallel processes")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads per process")
    ap.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu", "auto"])
    ap.add_argument("--quick", action="store_true", help="smoke run: seeds 0, 3 subjects x 4 min, settings default and hrf_far")
    ap.add_argument("--table-only", action="store_true", help="print the table from the cells already in --out; run nothing")
    args = ap.parse_args(argv)
    unknown = [r for r in args.references if r not in REFERENCES]
    if unknown and not args.table_only:
        ap.error(f"--references {unknown}: expected references among {list(REFERENCES)}; other stored models can be references "
                 "only with --table-only")
    args.variant_hparams = json.loads(args.variants) if args.variants else {}
    for label, v in args.variant_hparams.items():  # the variant's copy must keep the base dataset's volumes, frames and mask
        bad = set(v.get("prepare", {})) - _PREPARE_KEYS
        if bad:
            ap.error(f"variant {label!r}: prepare keywords {sorted(bad)} would change the volumes, frames or mask the splits "
                     f"come from; use only {sorted(_PREPARE_KEYS)}")
    if args.oracles and set(args.settings) - _NM_SETTINGS:
        ap.error(f"--oracles: settings {sorted(set(args.settings) - _NM_SETTINGS)} record no neural-mass input; use it with {sorted(_NM_SETTINGS)}")
    args.representations = dict(r.split("=", 1) for r in args.representation)
    args.models = [*args.models, *[v for v in args.variant_hparams if v not in args.models]]
    if args.quick:
        args.seeds, args.subjects, args.minutes = [0], 3, 4.0
        if args.settings == list(SETTINGS):
            args.settings = ["default", "hrf_far"]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    cell_dir = args.out / "cells"
    cell_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cells: dict[tuple[str, int], dict] = {}
    todo = []
    for seed in args.seeds:  # seed-major: a run cut short still covers every setting
        for st in args.settings:
            f = cell_dir / f"{st}_s{seed}.json"
            if f.exists():
                doc = json.loads(f.read_text())
                if _reusable(doc, args):
                    cells[(st, seed)] = doc
                    continue
            todo.append((st, seed))
    if todo and not args.table_only:
        print(f"running {len(todo)} cell(s) ({len(cells)} already done) with {args.jobs} job(s) x {args.threads} thread(s), {args.accelerator}", flush=True)
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn"), initializer=_die_with_parent) as ex:
            futs = [ex.submit(_worker, st, seed, args) for st, seed in todo]
            for fut in as_completed(futs):
                st, seed, doc = fut.result()
                if isinstance(doc, str):
                    print(f"cell {st} seed {seed} FAILED: {doc}", flush=True)
                    continue
                cells[(st, seed)] = doc
                w = doc["protocols"].get("within", {}).get("per_subject", {})
                brief = ", ".join(f"{m} {sum(v[m] for v in w.values()) / max(len(w), 1):.3f}" for m in [*args.references, *args.models]) if w else ""
                print(f"done {st} seed {seed} in {doc['seconds']['total']:.0f} s (within: {brief})", flush=True)
    models = [*args.references, *args.models, *(ORACLES if args.oracles else ())]
    text, rows = table(cells, args.settings, args.protocols, models, args.references)
    import subprocess

    try:
        commit = os.environ.get("EEG2FMRI_COMMIT") or subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                                                    cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "unknown"
    print(f"\n## Robustness matrix: median voxel r on held-out data (mean over seeds and test subjects); Δr with a hierarchical "
          f"bootstrap CI (seeds, then subjects); {args.subjects} subjects, {args.minutes:g} min unless the setting says otherwise\n")
    print(text)
    for st in args.settings:
        if ALL_SETTINGS[st].get("metric") == "driven":
            print(f"  ({st}: r is the median over the ground-truth driven voxels, not over the mask)")
    if "loso" in args.protocols:
        vals = sorted({d["protocols"]["loso"].get("validation", "spans") for d in cells.values() if "loso" in d["protocols"]})
        if vals:
            print(f"  (LOSO validation: {' and '.join(LOSO_VALIDATION[v] for v in vals)}{'; MIXED across cells' if len(vals) > 1 else ''})")
    wins = [r for r in rows if r["low"] > 0]
    losses = [r for r in rows if r["high"] < 0]
    print(f"\nCI above 0: {len(wins)} of {len(rows)} comparisons; CI below 0: {len(losses)}")
    print("ratio of mean r, model / reference (target >= 1.25 against the FIR ridge on independent data):")
    for r in rows:
        print(f"  {r['setting']} {r['protocol']} {r['model']} / {r['reference']}: {r['ratio']:.3f}")
    for r in losses:
        print(f"  below 0: {r['setting']} {r['protocol']} {r['model']} vs {r['reference']}: {r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]")
    print(f"\n{time.perf_counter() - t0:.0f} s; commit {commit or 'unknown'}; command: python benchmarks/bench_robustness.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    (args.out / "robustness.json").write_text(json.dumps({"commit": commit, "rows": rows, "cells": {f"{s}_s{k}": d for (s, k), d in cells.items()}},
                                                         indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
