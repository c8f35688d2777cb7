"""Evaluate a trained model directory and write ``metrics.json`` and a report (``eeg2fmri evaluate``).

The model directory (written by ``eeg2fmri train``, the quickstart or
:func:`eeg2fmri.models.save_model`) says which prepared dataset and split it
was trained on (``train_config.json``, or the card's ``training data`` and
``split``); the same split is rebuilt, so the test windows are exactly those
held out in training. Without that record, ``data`` and ``protocol`` must be
given. The reference ``ridge_hrf`` and the subject-mean baseline are fitted
on the same training windows and scored on the same test windows.

``protocol="cross"`` scores the model on every complete window of another
prepared dataset: the model's channels are looked up there by name
(case-insensitive), voxels are those inside both brain masks, and the
reference and baseline are fitted on the model's training data restricted to
the same channels and voxels (when it can be found).

Where every run of the evaluated data holds the same physiological regressors
(prepare builds them from ECG / respiration channels or BIDS physio files:
``PreparedRun.physio``), a ``physiology only`` row is scored too, as in
``eeg2fmri benchmark``: a ridge from those regressors alone, no EEG
(:func:`~eeg2fmri.evaluation.protocol.physiology_model`), fitted on the same
training windows and scored on the same test windows, listed after the
reference (could the cardiac and respiratory traces alone explain the
scores?). Not with ``protocol="cross"``; where the data hold regressors but
get no row, the notes say why.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import (
    PreparedDataset,
    load_prepared,
    select_subjects,
    subject_labels,
)
from eeg2fmri.datasets.targets import make_split, split_targets
from eeg2fmri.evaluation.protocol import (
    BASELINE,
    DEFAULT_N_BOOT,
    PHYSIOLOGY,
    REFERENCE,
    evaluate_models,
    physiology_model,
    physiology_not_above,
    physiology_notes,
    physiology_row,
    results_to_json,
)
from eeg2fmri.models.base import get_model_class
from eeg2fmri.training.predictor import predict_windows
from eeg2fmri.utils.atomic import atomic_dir, final_paths
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.provenance import software
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice

__all__ = ["EVAL_PROTOCOLS", "evaluate_run", "resolve_run"]

EVAL_PROTOCOLS = ("within", "loso", "kfold", "subjects", "cross")


def _read_json(p: Path) -> dict:
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def resolve_run(run_dir: str | os.PathLike | None = None, *, model: str | os.PathLike | None = None, command: str = "evaluate") -> tuple[Path, Path | None]:
    """The model directory (and the run folder around it) of ``eeg2fmri evaluate`` arguments.

    Parameters
    ----------
    run_dir : path-like | None
        A model directory (holding ``model.json``) or a run folder holding
        ``model/model.json`` (``eeg2fmri train`` and quickstart outputs).
    model : path-like | None
        An explicit model directory (``--model``).
    command : str
        The command asking (``evaluate``, ``explain``, ``classify``): errors suggest its own options.

    Returns
    -------
    model_dir, run_dir : Path, Path | None
    """
    if model is not None:
        md = Path(model)
        if not (md / "model.json").exists():
            raise Eeg2fmriInputError(f"{md}: expected a model directory with model.json, found none; pass the folder written by training.")
        return md, (Path(run_dir) if run_dir is not None else None)
    if run_dir is None:
        raise Eeg2fmriInputError("evaluate: expected RUN_DIR (a training run or model directory) or --model DIR, got neither.")
    rd = Path(run_dir)
    if (rd / "model.json").exists():
        return rd, rd.parent
    if (rd / "model" / "model.json").exists():
        return rd / "model", rd
    if (rd / "config.yaml").is_file() and ((rd / "checkpoints").is_dir() or (rd / "logs").is_dir()):  # an unfinished training run
        raise Eeg2fmriInputError(f"{rd}: expected a run folder with model/model.json, found a training run that did not finish (config.yaml and "
                                 f"checkpoints, no model); finish it with eeg2fmri train {rd / 'config.yaml'} --resume --out {rd}, then run {command} again.")
    other = "--model DIR --data PREPARED --protocol within" if command == "evaluate" else "--model DIR (and --data PREPARED)"
    raise Eeg2fmriInputError(f"{rd}: expected a model directory (model.json) or a run folder with model/model.json, found neither; "
                             f"pass the folder written by `eeg2fmri train` or the quickstart, or {other}.")


def _load_data(model_dir: Path, data: Any, rec_data: Path | None) -> PreparedDataset:
    """The prepared dataset to evaluate/explain on: ``data`` if given, else the one recorded with the model -- with the fix
    named when that one is no longer where it was recorded (user test 11: "create it with eeg2fmri prepare" when it
    had been moved)."""
    if data is None and rec_data is not None and not (Path(rec_data) / "manifest.json").is_file():
        raise Eeg2fmriInputError(f"{model_dir}: the model was trained on the prepared dataset {rec_data}, which is not there any more "
                                 "(moved or deleted?); pass --data with its new place (data= in Python), or prepare it again "
                                 "with eeg2fmri prepare.")
    if data is None and rec_data is None:
        raise Eeg2fmriInputError(f"{model_dir}: the model records no prepared dataset; pass --data PREPARED.")
    return load_prepared(Path(data) if data is not None else rec_data)


def _recorded(model_dir: Path, run_dir: Path | None, meta: dict) -> tuple[Path | None, dict | None, str, str, list[str] | None]:
    """(prepared path, split options, where each came from, training subjects or None for all) recorded with a model."""
    cfg = _read_json(model_dir / "train_config.json")
    card = meta.get("card", {}) or {}
    data = None
    d = cfg.get("data", {}) if isinstance(cfg.get("data"), dict) else {}
    for key in ("prepared", "prepared_out"):
        if d.get(key):
            data = Path(d[key])
            break
    if data is None and d.get("bids") and run_dir is not None and (run_dir / "prepared" / "manifest.json").exists():
        data = run_dir / "prepared"
    td = card.get("training data", {}) if isinstance(card.get("training data"), dict) else {}
    if data is None and td.get("prepared"):
        data = Path(td["prepared"])
    source = "recorded in train_config.json" if cfg else "recorded in the model card"
    if data is None:
        for cand in ([run_dir / "prepared"] if run_dir is not None else []) + [model_dir.parent / "prepared"]:
            if (cand / "manifest.json").exists():
                data, source = cand, "found next to the model"
                break
    split_source = "train_config.json" if cfg.get("split") else "the model card"
    split = None
    if isinstance(cfg.get("split"), dict) and cfg["split"].get("protocol"):
        split = dict(cfg["split"])
    elif isinstance(card.get("split"), dict) and card["split"].get("protocol"):
        cs = card["split"]
        split = {"protocol": cs["protocol"]}
        opts = cs.get("options") if isinstance(cs.get("options"), dict) else {}
        if opts:  # the options the split was made with (cards since 2026-12-07): the same split again
            split.update({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in opts.items()
                          if k in ("fractions", "val_subjects", "n_folds", "fold")})
            if cs.get("test_subjects") and cs["protocol"] in ("loso", "subjects"):
                split["test_subjects"] = list(cs["test_subjects"])
            elif cs.get("test_subjects") and cs["protocol"] == "kfold":
                # a fold's subjects depend on the subject list loaded (dealt in sorted order): hold out the recorded ones, as
                # for older cards (a review: --subjects or a changed prepared folder would rebuild another fold, leaking)
                split = {"protocol": "subjects", "test_subjects": list(cs["test_subjects"]),
                         **({"fractions": split["fractions"]} if "fractions" in split else {})}
            if cs.get("gap_volumes") is not None and "val_subjects" not in split:
                split["gap"] = int(cs["gap_volumes"])
            return data, split, source, split_source, _subjects(d, td)
        # (the card lists the test subjects of every protocol; only the subject-wise ones take them as an option -- user
        # test 42: a within model folder of quickstart/save_fit could not be evaluated at all)
        if cs.get("test_subjects") and cs["protocol"] in ("loso", "subjects"):
            split["test_subjects"] = list(cs["test_subjects"])
        elif cs.get("test_subjects") and cs["protocol"] == "kfold":
            # the card records no n_folds/fold: the fold's test subjects, held out whole, are the same test set (a review:
            # the defaults scored a kfold model on one of its training subjects)
            split = {"protocol": "subjects", "test_subjects": list(cs["test_subjects"])}
        if cs.get("gap_volumes") is not None:
            split["gap"] = int(cs["gap_volumes"])
    return data, split, source, split_source, _subjects(d, td)


def _subjects(d: dict, td: dict) -> list[str] | None:
    """The training subjects a train config (``data.subjects``) or the card's training data record; None for all."""
    subjects = d.get("subjects") if d else td.get("subjects")
    return list(subjects) if isinstance(subjects, (list, tuple)) and subjects else None


def _check_subject_positions(trained: list[str], used: list[str]) -> None:
    """Refuse a subject set that moves training subjects to other positions.

    A torch model's per-subject parameters (e.g. FiLM) are looked up by the
    subject's position among the dataset's sorted subjects, so a training
    subject must keep its training position in the evaluated dataset.
    """
    trained = sorted(trained)
    moved = [s for s in used if s in trained and trained.index(s) != used.index(s)]
    if moved:
        raise Eeg2fmriInputError(
            f"subjects (--subjects): expected a set in which the training subjects {trained} keep their positions (the model's per-subject "
            f"parameters are looked up by position), got {used}, which moves {moved}; include every training subject, and add only subjects "
            "that sort after all of them."
        )


def _restricted_model(model: Any, keep: np.ndarray):
    """A predictor returning only the outputs ``keep`` (bool over the model's outputs)."""

    class _Subset:
        kind = getattr(model, "kind", "torch")

        def predict(self, x, subject=None):
            p = predict_windows(model, x, subject_index=None if subject is None else int(np.asarray(subject).ravel()[0]))
            return p[:, keep]

    return _Subset()


def _refitted_on_validation(model: Any, run_dir: Path | None) -> str | None:
    """Why a loaded model's validation windows are in its training data (refit on them), or None."""
    if run_dir is not None and (run_dir / "metrics.json").is_file():
        try:
            why = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8")).get("validation_in_sample")
        except (OSError, ValueError):
            why = None
        if why:
            return str(why)
    m = getattr(model, "module", model)
    if getattr(m, "refit", False) is True:
        return "refit=True fitted the model on the validation windows too"
    if getattr(m, "linear_refit", False) is True:
        return "linear_refit=True fitted the linear path on the validation windows too"
    return None


def evaluate_run(
    run_dir: str | os.PathLike | None = None,
    *,
    model: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    protocol: str | None = None,
    split_options: dict | None = None,
    train_data: str | os.PathLike | None = None,
    subjects: list[str] | None = None,
    out: str | os.PathLike | None = None,
    atlas: Any = None,
    n_boot: int = DEFAULT_N_BOOT,
    random_state: int = 0,
    html_report: bool = True,
    overwrite: bool = False,
    progress_bar: bool = True,
    device: str | None = "auto",
    intervals: bool = True,
    extra_metrics: dict[str, Any] | None = None,
    save_predictions: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Evaluate a trained model and write ``metrics.json``, ``report.md`` and figures.

    Parameters
    ----------
    run_dir : path-like | None
        Training run folder or model directory (see :func:`resolve_run`).
    model : path-like | None
        Model directory, when ``run_dir`` is not one.
    data : path-like | None
        Prepared dataset (default: the one recorded with the model).
    protocol : {"within", "loso", "kfold", "subjects", "cross"} | None
        Split protocol (default: the recorded one). ``cross``: test on every
        window of ``data``, another dataset.
    split_options : dict | None
        :func:`~eeg2fmri.datasets.targets.make_split` options overriding the
        recorded ones (``test_subjects``, ``n_folds``, ``fold``, ...); not
        with ``cross`` (it tests on every window of ``data``).
    train_data : path-like | None
        For ``cross`` only: the model's training dataset, to fit the reference
        and baseline (default: the recorded one).
    subjects : list of str | None
        Subjects of the model's training dataset to use, as ``data.subjects``
        of a train config: the split is rebuilt on their runs only (for
        ``cross``: the reference and baseline are fitted on them). Default:
        the subjects recorded with the model (every subject when none were).
    out : path-like | None
        Output folder (default ``<run>/evaluation``); written atomically.
    atlas : path-like | image | array | None
        ROI labels on the data grid, for ROI r.
    n_boot, random_state
        Bootstrap resamples per subject and seed.
    html_report : bool
        Also write ``report.html`` (:func:`eeg2fmri.workflows.report.build_report`: tables, r maps,
        figures, calibration curve, model card in one self-contained page).
    overwrite : bool
        Replace an existing output folder.
    progress_bar : bool
    device : {"auto", "cpu", "cuda"} | "cuda:N" | None
        Where a torch model predicts (``"auto"``: a visible GPU, else the CPU).
    intervals : bool
        Calibrate per-voxel conformal intervals (50/80/95%) on the validation
        windows and report their coverage on the test windows
        (``results["conformal"]``; not for ``cross``).
    extra_metrics : dict | None
        Metrics of your own, ``name -> function(y_true, y_pred) -> float`` on one subject's test windows
        ``(n_windows, n_outputs)``, or ``name -> "module:function"`` (imported); averaged over subjects into
        ``results["group"]["models"][model][name]`` (``eeg2fmri evaluate --metric NAME=module:function``).
    save_predictions : bool
        Also write ``predictions/<run key>.npz``: the scored test targets ``y`` and every model's ``pred_<model>``
        (shape (n_windows, n_outputs)), the windows' ``volumes``, ``subject`` and ``tr``
        (:func:`eeg2fmri.evaluation.protocol.save_predictions`; ``--save-predictions``).

    Returns
    -------
    out, results : Path, dict
        The output folder and the evaluation results (arrays included). Where the data hold physiological
        regressors: ``results["physiology"]`` (``name``, ``available``, ``reason`` where there is no row,
        ``regressors``, ``not_above``: the models scoring no higher than it) and, where there is a row,
        ``"physiology only"`` among ``results["models"]`` after the reference (``results["roles"]["physiology"]``).
    """
    from eeg2fmri.models import load_model
    from eeg2fmri.models.predictor import place_model, resolve_device
    from eeg2fmri.plotting.report import (
        plot_r_distributions,
        plot_r_map,
        plot_subject_r,
        plot_timecourses,
        write_evaluation_report,
    )

    t0 = time.perf_counter()
    model_dir, rdir = resolve_run(run_dir, model=model)
    out_path = Path(out) if out is not None else (rdir if rdir is not None else model_dir.parent) / "evaluation"
    if out_path.exists() and not overwrite:
        raise Eeg2fmriInputError(f"{out_path}: output directory already exists; choose another --out or pass overwrite=True (--overwrite).")
    from eeg2fmri.utils.atomic import check_writable

    check_writable(out_path)  # before any work (user test 29)
    dev = resolve_device(device, where="evaluate: device") if device is not None else None
    lm = load_model(model_dir)
    place_model(lm.model, dev)
    meta, spec = lm.meta, lm.spec
    name = str(meta["model"])
    rec_data, rec_split, source, split_source, rec_subjects = _recorded(model_dir, rdir, meta)
    notes: dict[str, Any] = {"model directory": str(model_dir.absolute())}
    if protocol is not None:
        check_choice(protocol, "protocol", EVAL_PROTOCOLS)
    proto_given = protocol or (rec_split or {}).get("protocol")
    if proto_given == "cross" and split_options:
        raise Eeg2fmriInputError(f"protocol 'cross': expected no split options (it tests on every window of --data), got {sorted(split_options)}; "
                                 "drop --test-subjects/--n-folds/--fold, or use another --protocol.")
    if proto_given != "cross" and train_data is not None:
        raise Eeg2fmriInputError(f"train_data: expected only with protocol 'cross' (the reference is fitted on the split's training windows "
                                 f"otherwise), got {str(train_data)!r} with protocol {proto_given!r}; drop --train-data or use --protocol cross.")
    use_subjects = rec_subjects if subjects is None else list(subjects)
    subjects_where = "subjects (--subjects)" if subjects is not None else f"{model_dir}: data.subjects recorded in train_config.json"
    data_path = Path(data) if data is not None else rec_data
    ds = _load_data(model_dir, data, rec_data)
    notes["data"] = f"{Path(data_path).absolute()}" + (f" ({source})" if data is None else "")
    window = meta.get("window", {})
    n_frames, lag = int(window.get("n_frames", 0)) or None, int(window.get("lag", 0))
    proto = protocol or (rec_split or {}).get("protocol")
    if proto is None:
        raise Eeg2fmriInputError(f"{model_dir}: the model records no split; pass --protocol within|loso|kfold|subjects (and the split options used in training).")
    if isinstance(meta.get("prepare"), dict):  # (the model's own record: also where its training dataset cannot be found; a review)
        from eeg2fmri.preprocessing.representations.bandpower import SLOW_POTENTIAL_AUTO

        sp = meta["prepare"].get("slow_potential")
        slow_model = None if sp is None else tuple(SLOW_POTENTIAL_AUTO) if isinstance(sp, str) else (float(sp[0]), float(sp[1]))
        slow_data = getattr(ds.config, "slow_band", None)
        if slow_model != (None if slow_data is None else tuple(slow_data)):
            raise Eeg2fmriInputError(
                f"{data_path}: expected the slow_potential the model was trained with ({list(slow_model) if slow_model else 'none'}), "
                f"got {list(slow_data) if slow_data else 'none'}; prepare the data with the prepare option slow_potential as for "
                "training (--config '{\"slow_potential\": " + (json.dumps(list(slow_model)) if slow_model else "null") + "}').")
    if proto == "cross":
        ds_eval, split, targets, fitted, cross_info = _cross_setup(lm, ds, train_data if train_data is not None else rec_data, data_path, n_frames, lag,
                                                                   subjects=use_subjects, subjects_where=subjects_where)
        notes["cross-dataset"] = (f"{cross_info['n_channels']} model channels found by name in the test data (ignored there: "
                                  f"{cross_info['ignored_test_channels'][:10]}); {cross_info['n_voxels']} voxels inside both masks")
    else:
        opts = {k: v for k, v in (rec_split or {}).items() if k != "protocol"} if (rec_split or {}).get("protocol") == proto else {}
        opts.update(split_options or {})
        opts.update(n_frames=n_frames, lag=lag)
        all_subjects = ds.subjects
        try:
            ds = select_subjects(ds, use_subjects, where=subjects_where)
        except Eeg2fmriInputError as err:
            raise Eeg2fmriInputError(f"{err} To evaluate on other subjects, pass --subjects (subjects=) with the ones to use.") from None
        if subjects is not None and meta.get("kind") != "sklearn" and int(spec.n_subjects) > 1:
            _check_subject_positions(subject_labels(rec_subjects) if rec_subjects else all_subjects, ds.subjects)
        if use_subjects is not None:
            notes["subjects"] = f"{', '.join(ds.subjects)} (" + ("given" if subjects is not None else "recorded with the model, as in training") + ")"
        if list(ds.ch_names) != list(spec.ch_names):
            same = sorted(c.lower() for c in ds.ch_names) == sorted(c.lower() for c in spec.ch_names)
            how = ("the same channels in another order" if same else
                   f"{len(ds.ch_names)} vs {len(spec.ch_names)}: the model's missing here {sorted(set(spec.ch_names) - set(ds.ch_names))[:8]}, "
                   f"not the model's {sorted(set(ds.ch_names) - set(spec.ch_names))[:8]}")
            raise Eeg2fmriInputError(f"{data_path}: its EEG channels differ from the model's ({how}); "
                                     "to test on another dataset use --protocol cross (channels matched by name).")
        trained = meta.get("prepare") or {}
        for key, what in (("events", "event regressors"), ("event_durations", "event durations")):
            if (getattr(ds.config, key) or None) != (trained.get(key) or None):
                raise Eeg2fmriInputError(f"{data_path}: expected the {what} the model was trained with ({trained.get(key) or 'none'}), "
                                         f"got {getattr(ds.config, key) or 'none'}; prepare the data with the prepare options events and "
                                         "event_durations as for training (the manifest of the training data records them).")
        if ds.mask.shape != lm.mask.shape or not np.array_equal(ds.mask, lm.mask):
            raise Eeg2fmriInputError(f"{data_path}: its brain mask differs from the model's ({int(ds.mask.sum())} vs {int(lm.mask.sum())} voxels); "
                                     "evaluate on the dataset the model was trained on, or use --protocol cross.")
        split = make_split(ds, proto, **opts)
        card_n = ((meta.get("card") or {}).get("split") or {}).get("n_test")
        if (split_source == "the model card" and not split_options and subjects is None and proto == (rec_split or {}).get("protocol")
                and isinstance(card_n, int) and split.n_samples("test") != card_n):
            # a card from before 2026-12-07 records no fractions: a split of other shares would score windows the model was trained
            # near (a review)
            raise Eeg2fmriInputError(
                f"{model_dir}: expected the split recorded in the model card ({card_n} test windows), got {split.n_samples('test')} test "
                f"windows from protocol {proto!r} with its default options (the card records no fractions); pass the split options the "
                "model was fitted with (Python: evaluate_run(..., split_options={\"fractions\": [...]})), or hold out whole subjects the "
                "model was not trained on (--protocol subjects --test-subjects ...), so that its test windows are held out.")
        targets = split_targets(ds, split)
        ds_eval, fitted = ds, {name: lm.model}
        rebuilt = protocol is not None and protocol != (rec_split or {}).get("protocol") or bool(split_options)
        if rec_split is not None and rebuilt:
            _refuse_seen_test_windows(ds, split, rec_split, n_frames=split.n_frames, lag=split.lag, model_dir=model_dir)
        if rec_split is None:
            notes["split"] = ("rebuilt from the command line; the model records no split, so it cannot be checked that the "
                              "test windows were not seen in training")
        elif rebuilt:
            notes["split"] = (f"rebuilt from the command line ({proto}); checked against the split recorded in {split_source}: no "
                              "test window overlaps a window the model was trained or validated on")
        else:
            notes["split"] = f"rebuilt from the split recorded in {split_source}"
    # the physiology-only row, as benchmark's (user test 57): a ridge from the physiological regressors alone, fitted on the
    # split's training windows (ds: the evaluated subjects; cross: the test dataset as prepared, which gets no row)
    with_physiology, no_physiology_row = physiology_row(ds, proto)
    if with_physiology:
        phys, no_physiology_row = physiology_model(ds_eval, split, targets)
        if phys is not None:
            fitted[PHYSIOLOGY] = phys
    results = evaluate_models(ds_eval, split, targets, fitted, fit_missing=proto != "cross", atlas=atlas, n_boot=n_boot,
                              random_state=random_state, progress_bar=progress_bar, extra_metrics=resolve_metrics(extra_metrics),
                              keep_predictions=save_predictions)
    _record_physiology(results, ds, fitted.get(PHYSIOLOGY), no_physiology_row, notes)
    if proto == "cross":
        results["cross_dataset"] = cross_info
    results["model"] = name
    if proto != "cross" and intervals:
        from eeg2fmri.evaluation.uncertainty import conformal_coverage

        try:
            conf = conformal_coverage(lm.model, ds_eval, split, targets)
        except Eeg2fmriInputError as err:
            notes["conformal intervals"] = f"not computed: {err}"
        else:
            conf["_halfwidths"] = conf.pop("halfwidths")
            results["conformal"] = conf
            notes["conformal intervals"] = ("coverage on the test windows of per-voxel intervals calibrated on the validation windows: "
                                            + ", ".join(f"{lv:.0%} -> {c:.3f}" for lv, c in zip(conf["levels"], conf["coverage"])))
            why = _refitted_on_validation(lm.model, rdir)
            if why:  # the loaded model keeps no residuals from before its refit: these are in-sample
                notes["conformal intervals"] += (f"; the model was also fitted on those validation windows ({why}): the intervals are "
                                                 "calibrated on in-sample residuals and too narrow (train's calibration.json, which "
                                                 "synthesize --uncertainty uses, was calibrated on the residuals before the refit)")
            notes["conformal NLL"] = (f"test NLL {conf['nll_laplace']:.3f} nats per voxel and window (Laplace, per-voxel scale from the validation "
                                      f"residuals; {conf['nll_laplace_shared_scale']:.3f} with one scale for all voxels; Gaussian "
                                      f"{conf['nll_gaussian']:.3f}); rank correlation over voxels of that scale with the test error "
                                      f"{conf['scale_error_spearman']:.3f}")
        from eeg2fmri.evaluation.uncertainty import model_uncertainty

        try:
            mu = model_uncertainty(lm.model, ds_eval, split, targets)
        except Eeg2fmriInputError as err:
            notes["model uncertainty"] = f"not computed: {err}"
        else:
            if mu is not None and mu.get("available") is False:
                results["model_uncertainty"] = mu
                notes["model uncertainty"] = f"not reported: {mu['reason']}"
            elif mu is not None:
                results["model_uncertainty"] = mu
                notes["model uncertainty"] = (f"{mu['meaning']}; temperature {mu['temperature']:.3f} (validation); test coverage "
                                              + ", ".join(f"{lv:.0%} -> {c:.3f}" for lv, c in zip(mu["levels"], mu["coverage"]))
                                              + f"; NLL {mu['nll_laplace']:.3f} (uncalibrated {mu['nll_laplace_uncalibrated']:.3f}); "
                                              f"rank correlation of scale with |error| {mu['scale_error_spearman']:.3f}")
    seconds = time.perf_counter() - t0
    with atomic_dir(out_path, overwrite=overwrite, marker="metrics.json") as tmp:
        figs = _figures(results, ds_eval, name, tmp, plot_r_map, plot_r_distributions, plot_subject_r, plot_timecourses)
        _write_r_maps(results, ds_eval, name, tmp)
        if save_predictions:  # (user test 34: nothing to recompute the metrics from without re-fitting through the API)
            from eeg2fmri.evaluation.protocol import save_predictions as write_predictions

            write_predictions(results.pop("_predictions"), tmp / "predictions", ds_eval.tr)
        if proto != "cross":
            from eeg2fmri.workflows.insight import write_insight

            figs += write_insight(lm.model, ds_eval, split, tmp / "insight")  # patterns, learned HRFs, attention (torch models)
        doc = results_to_json(results)
        doc.update(model_dir=str(model_dir.absolute()), data=str(Path(data_path).absolute()), evaluation_seconds=seconds, notes=notes,
                   software=software())
        (tmp / "metrics.json").write_text(json.dumps(final_paths(doc), indent=1), encoding="utf-8")
        write_evaluation_report(tmp, results, figs, title=f"eeg2fmri evaluation: {name} ({results['protocol']})", model=name, extra=notes)
        if html_report:
            from eeg2fmri.workflows.report import build_report

            build_report(tmp, title=f"eeg2fmri evaluation: {name} ({results['protocol']})")
    logger.info("wrote %s (metrics.json, report.md, %d figures)", out_path, len(figs))
    return out_path, results


def _record_physiology(results: dict[str, Any], ds: PreparedDataset, model: Any, reason: str | None, notes: dict[str, Any]) -> None:
    """Place the physiology-only row after the reference (before the baseline), as benchmark ranks it; record it in
    ``results["physiology"]`` and ``results["roles"]``; add benchmark's physiology notes to ``notes``.

    Parameters
    ----------
    results : dict
        From :func:`~eeg2fmri.evaluation.protocol.evaluate_models`; changed in place.
    ds : PreparedDataset
        The evaluated data (its physiological channels and confounds, for the notes).
    model : object | None
        The physiology-only model scored, or None.
    reason : str | None
        Why there is no row although the data hold physiological regressors.
    notes : dict
        The evaluation's notes; changed in place.
    """
    from eeg2fmri.datasets.prepared import physiology_unregressed

    names = list(results["models"])
    if PHYSIOLOGY in names:
        names = [nm for nm in names if nm not in (PHYSIOLOGY, BASELINE)] + [PHYSIOLOGY] + [nm for nm in names if nm == BASELINE]
        results["models"] = names
        results["group"]["models"] = {nm: results["group"]["models"][nm] for nm in names}
    results["roles"]["physiology"] = PHYSIOLOGY if PHYSIOLOGY in names else None
    g, ref = results["group"]["models"], results["roles"]["reference"]
    rows: list[dict[str, Any]] = [{"name": nm, "median_r": g[nm].get("median_r"), "role": "reference" if nm == ref else "baseline"
                                   if nm == BASELINE else "physiology" if nm == PHYSIOLOGY else "model"} for nm in names]
    facts = next((r for r in rows if r["role"] == "reference"), None)
    if facts is None:  # (the notes read the dataset's facts from the reference's row: a row without a score where it is missing)
        rows.append(facts := {"name": REFERENCE, "role": "reference"})
    facts.update(physiology_unregressed=physiology_unregressed(ds), physiology_row=reason)
    notes.update(physiology_notes(rows))
    if PHYSIOLOGY in names or reason:
        results["physiology"] = {"name": PHYSIOLOGY, "available": PHYSIOLOGY in names, "reason": reason,
                                 "regressors": list(model.names) if model is not None else None, "not_above": physiology_not_above(rows)}


def _cross_setup(lm, ds_test: PreparedDataset, train_path, test_path, n_frames, lag, *, subjects: list[str] | None = None,
                 subjects_where: str = "subjects"):
    """Test view of another dataset for a trained model, and baselines fitted on its training data (``subjects`` of it only)."""
    from eeg2fmri.evaluation.crossdata import (
        all_test_split,
        check_disjoint,
        check_same_space,
        restrict_dataset,
    )
    from eeg2fmri.synthesis.synthesize import match_channels
    from eeg2fmri.training import fit_model

    spec = lm.spec
    picks, extra = match_channels(list(ds_test.ch_names), [str(c) for c in spec.ch_names], where=str(test_path))
    if ds_test.mask.shape != lm.mask.shape or not np.allclose(ds_test.affine, lm.affine, atol=1e-3):
        raise Eeg2fmriInputError(f"{test_path}: grid {ds_test.mask.shape} differs from the model's {lm.mask.shape} (or another affine); "
                                 "prepare the test data on the model's grid (e.g. both in MNI space).")
    inter = lm.mask & ds_test.mask
    if not inter.any():
        raise Eeg2fmriInputError(f"{test_path}: its brain mask shares no voxel with the model's; check the spaces.")
    test_view = restrict_dataset(ds_test, picks, inter, names=[str(c) for c in spec.ch_names], subject_prefix="test-")
    if n_frames is None:
        raise Eeg2fmriInputError("model.json: expected window.n_frames; re-save the model.")
    split = all_test_split(test_view, n_frames, lag)
    targets = split_targets(test_view, split)
    keep = inter[lm.mask]
    fitted: dict[str, Any] = {lm.meta["model"]: lm.model if keep.all() else _restricted_model(lm.model, keep)}
    info = {"n_channels": len(picks), "ignored_test_channels": extra, "n_voxels": int(inter.sum()), "train_data": None}
    if train_path is not None and Path(train_path).absolute() == Path(test_path).absolute():
        raise Eeg2fmriInputError(f"{test_path}: this is the model's training dataset; a cross-dataset test needs another dataset (or use --protocol within|loso).")
    if train_path is not None and (Path(train_path) / "manifest.json").exists():
        ds_train = select_subjects(load_prepared(train_path), subjects, where=subjects_where)
        check_same_space(ds_train, ds_test, where="cross-dataset")
        check_disjoint(ds_train, ds_test)
        usable = not (inter & ~ds_train.mask).any() and all(str(c) in ds_train.ch_names for c in spec.ch_names)
        a = restrict_dataset(ds_train, [str(c) for c in spec.ch_names], inter) if usable else None
        if a is not None:
            sp = make_split(a, "within", n_frames=n_frames, lag=lag, fractions=(0.8, 0.2, 0.0))
            sp.selections["test"] = {}
            tg = split_targets(a, sp)
            for nm in (REFERENCE, BASELINE):
                if nm == lm.meta["model"]:
                    continue
                if a.representation not in get_model_class(nm).input_kinds:  # ridge_hrf: band power, or tangent's band-power block
                    continue
                fitted[nm] = fit_model(a, sp, nm, targets=tg).model
            info["train_data"] = str(Path(train_path).absolute())
    return test_view, split, targets, fitted, info


def resolve_metrics(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """Metrics of your own as callables: a ``"module:function"`` (or ``"path/to/file.py:function"``) value is imported
    (user test 25: extra_metrics reached neither the commands nor their reports)."""
    if not metrics:
        return None
    import importlib
    import importlib.util

    out = {}
    for name, fn in metrics.items():
        if isinstance(fn, str):
            mod_name, _, attr = fn.rpartition(":")
            if not mod_name or not attr:
                raise Eeg2fmriInputError(f"metric {name!r}: expected 'module:function' or 'file.py:function', got {fn!r}.")
            try:
                if mod_name.endswith(".py"):
                    import sys

                    from eeg2fmri.utils.plugins import _imported_from

                    path = Path(mod_name).expanduser().absolute()
                    done = _imported_from(path) if path.is_file() else None
                    if done is not None:  # the file is a plugin (or a module) imported already: not run twice (user test 31:
                        mod = sys.modules[done]  # its models were registered again under another module and refused)
                    else:
                        spec = importlib.util.spec_from_file_location(f"eeg2fmri_metric_{path.stem}", path)
                        if spec is None or spec.loader is None:
                            raise FileNotFoundError(mod_name)
                        mod = importlib.util.module_from_spec(spec)
                        sys.modules[spec.name] = mod  # (its classes then know their source file)
                        try:
                            spec.loader.exec_module(mod)
                        except BaseException:
                            sys.modules.pop(spec.name, None)
                            raise
                else:
                    mod = importlib.import_module(mod_name)
                fn = getattr(mod, attr)
            except Exception as err:  # noqa: BLE001  (any failure of the user's module: say which metric)
                raise Eeg2fmriInputError(f"metric {name!r}: could not import {fn!r} ({type(err).__name__}: {err}); expected a module on "
                                         "PYTHONPATH or a .py file, and a function of it (y_true, y_pred) -> float.") from None
        out[name] = fn
    return out


def _mean_r_maps(results: dict, name: str) -> dict[str, np.ndarray]:
    """Per-voxel test r of ``name`` (and the reference), averaged over the test subjects.

    A model without an r (the subject-mean baseline predicts a constant per voxel) has no map.
    """
    subs = sorted(results["per_subject"])
    r_names = [nm for nm in results["models"] if nm in results["per_subject"][subs[0]]["_r"]]
    out = {}
    for nm in [n for n in r_names if n == name] + [n for n in r_names if n == REFERENCE and n != name]:
        stack = np.stack([results["per_subject"][s]["_r"][nm] for s in subs])
        seen = np.isfinite(stack).any(axis=0)  # (a constant prediction: r undefined everywhere; no "mean of empty slice": user test 25)
        out[nm] = np.full(stack.shape[1], np.nan)
        if seen.any():
            out[nm][seen] = np.nanmean(stack[:, seen], axis=0)
    return out


def _refuse_seen_test_windows(ds: PreparedDataset, split: Any, rec_split: dict, *, n_frames: int, lag: int, model_dir: Path) -> None:
    """Raise when a test window of ``split`` lies within the recorded gap of a window of the training or validation span
    of the split the model was trained with (:func:`~eeg2fmri.evaluation.protocol.seen_test_windows`): those scores would
    not be held out."""
    opts = {k: v for k, v in rec_split.items() if k != "protocol"}
    held = {str(s_).removeprefix("sub-") for s_ in (rec_split.get("test_subjects") or [])}
    if held and {str(s_) for s_ in ds.subjects} <= held:
        # only subjects the model's own split held out whole (LOSO): none of their windows trained or validated it, and the
        # split need not be rebuilt (user test 21: --subjects 04 of a LOSO model tested on 04 was refused, its training
        # subjects being left out of the data)
        return
    if held and not ({str(s_) for s_ in ds.subjects} & held):
        raise Eeg2fmriInputError(
            f"{model_dir}: the model was trained with protocol {rec_split['protocol']!r} holding out subject(s) {sorted(held)} only; "
            f"the subject(s) asked for, {sorted(ds.subjects)}, trained or validated it, so their scores would not be held out. "
            f"Evaluate the held-out subject(s) (--subjects {' '.join(sorted(held))}) or with the recorded split.")
    try:
        trained = make_split(ds, rec_split["protocol"], n_frames=n_frames, lag=lag, **opts)
    except Eeg2fmriInputError as err:
        raise Eeg2fmriInputError(f"{model_dir}: the split the model was trained with ({rec_split}) cannot be rebuilt on these data ({err}), "
                                 "so it cannot be checked that the requested test windows are held out; evaluate with the recorded split.") from None
    from eeg2fmri.evaluation.protocol import seen_test_windows

    seen, total = seen_test_windows(ds, split, trained)
    if seen:
        raise Eeg2fmriInputError(
            f"{model_dir}: the model was trained with protocol {rec_split['protocol']!r}"
            f"{' (test subjects ' + ', '.join(rec_split.get('test_subjects', [])) + ')' if rec_split.get('test_subjects') else ''}; "
            f"the requested split tests it on {seen} of {total} windows that lie within {trained.gap} volumes of windows it was trained "
            "or validated on, so its scores would not be held out. Evaluate with the recorded split (omit --protocol and the split "
            "options), or train a model for this protocol (eeg2fmri train with split.protocol set)."
        )


def _write_r_maps(results: dict, ds: PreparedDataset, name: str, folder: Path) -> list[Path]:
    """``r_map_<model>.nii.gz``: the mean test r per voxel on the prepared grid (0 outside the mask)."""
    import nibabel as nib

    from eeg2fmri.io.bold import grid_image

    paths: list[Path] = []
    if not getattr(ds, "has_grid", True):  # region tables: no grid to write a map on (per-region r are in metrics.json)
        return paths
    for nm, r in _mean_r_maps(results, name).items():
        vol = np.zeros(ds.mask.shape, np.float32)
        vol[ds.mask] = np.nan_to_num(ds.to_voxels(np.asarray(r, np.float32)))  # (ROI targets: each voxel its ROI's r)
        img = grid_image(vol, ds.affine, ds.xform_code)
        img.header.set_intent("estimate", name="test r")  # NIFTI_INTENT_ESTIMATE: a statistic's value (a mean r, no single dof)
        img.header["descrip"] = f"eeg2fmri test r {nm}"[:79].encode()
        nib.save(img, folder / f"r_map_{nm}.nii.gz")
        paths.append(folder / f"r_map_{nm}.nii.gz")
    return paths


def _figures(results: dict, ds: PreparedDataset, name: str, folder: Path, plot_r_map, plot_r_distributions, plot_subject_r, plot_timecourses) -> list[Path]:
    """r maps, r distributions, per-subject CIs and time courses of the first test run."""
    figs = []
    subs = sorted(results["per_subject"])
    r_names = [nm for nm in results["models"] if nm in results["per_subject"][subs[0]]["_r"]]
    grid = getattr(ds, "has_grid", True)  # (region tables: no maps, no volumes)
    for nm, r in (_mean_r_maps(results, name) if grid else {}).items():
        title = f"{nm}: test r" + (f" (mean over {len(subs)} subjects)" if len(subs) > 1 else "")
        figs.append(plot_r_map(ds.mask, ds.affine, ds.to_voxels(r), folder / f"r_map_{nm}.png", title, space=ds.space))
    dist = {}
    for nm in r_names:
        dist[nm] = np.concatenate([results["per_subject"][s]["_r"][nm] for s in subs])
        dist[f"{nm} shifted null"] = np.concatenate([results["per_subject"][s]["_r_null"][nm] for s in subs])
    what = "voxel" if grid else "region"
    figs.append(plot_r_distributions(dist, folder / "r_distributions.png", f"{what}-wise test r, all test subjects' {what}s pooled"))
    figs.append(plot_subject_r(results["per_subject"], r_names, folder / "subjects.png", "median r per test subject"))
    key, run = next(iter(results["runs"].items()))
    band, level = None, None
    conf = results.get("conformal")
    if conf is not None and 0.8 in conf["levels"]:
        level = 0.8
        band = np.asarray(conf["_halfwidths"])[conf["levels"].index(0.8)]
    # voxels ranked (and the MNI cut placed) by the mean r over the test subjects: the best of one run's r over a short
    # span is often a noise voxel (a user test: r 0.60 over 26 volumes, a flat prediction, outside every driven region)
    rank_r = _mean_r_maps(results, name).get(name) if len(subs) > 1 else None
    ranked = f", voxels ranked by the mean r over {len(subs)} test subjects" if rank_r is not None else ""
    if "_r" in run["models"][name]:  # (best, median and worst voxel by r: the subject-mean baseline has no r)
        figs.append(plot_timecourses(run["_y"], run["_preds"][name], run["models"][name]["_r"], ds.tr, folder / "timecourses.png",
                                     f"{key}: {name}, test span{ranked}", halfwidth=band, level=level, rank_r=rank_r))
    if not grid:
        return figs
    from eeg2fmri.plotting import plot_volumes_mni

    mid = len(run["_y"]) // 2
    r_cut = rank_r if rank_r is not None else (np.asarray(run["models"][name]["_r"]) if "_r" in run["models"][name] else None)
    r_vox = ds.to_voxels(np.asarray(r_cut)[None])[0] if r_cut is not None else None
    figs.append(plot_volumes_mni(ds.mask, ds.affine, ds.to_voxels(run["_y"][mid]), ds.to_voxels(run["_preds"][name][mid]), folder / "volumes_mni.png",
                                 f"{key}: test volume {mid} of the test span, measured vs synthesised", r=r_vox, space=ds.space))
    return figs
