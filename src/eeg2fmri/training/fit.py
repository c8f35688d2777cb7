"""Fit a registered model on a leak-free split of a prepared dataset: one entry point for every model.

scikit-learn-style models (``kind = "sklearn"``: ``ridge_hrf``, ``mean``) are
fitted in closed form; the validation split only chooses hyperparameters.
Torch models are trained with PyTorch Lightning
(:func:`eeg2fmri.training.trainer.fit_torch`): early stopping and the
checkpoint choice use the validation split; the test split is never read.
Either way the result's ``model`` has ``predict(x) -> array``.
"""

from __future__ import annotations

import os
import time

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.datasets.targets import Split, check_split_fits, split_targets
from eeg2fmri.datasets.windows import window_matrix
from eeg2fmri.models.base import build_model, get_model_class
from eeg2fmri.training.result import FitResult
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.rng import preserve_global_rng
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_like

__all__ = ["FitResult", "check_input_kind", "data_spec", "fit_model", "stack_split"]


def data_spec(ds: PreparedDataset, n_frames: int) -> DataSpec:
    """The :class:`DataSpec` of windows of ``n_frames`` -> masked voxels."""
    from eeg2fmri.datasets.windows import dataset_spec

    return dataset_spec(ds, n_frames)


def check_input_kind(name: str, representation: str | None) -> None:
    """Refuse to fit registered model ``name`` on windows of a representation it does not read.

    A model class lists the representations it reads in ``input_kinds`` (preferred first); one
    without ``input_kinds`` (or with an empty one) accepts every representation. ``benchmark``
    refuses the same pairings with the same kind of reason.

    Raises
    ------
    Eeg2fmriInputError
        ``representation`` is not one of the model's ``input_kinds``.
    """
    kinds = tuple(getattr(get_model_class(name), "input_kinds", None) or ())
    if representation is None or not kinds or representation in kinds:
        return
    raise Eeg2fmriInputError(
        f"model {name!r} reads {' or '.join(kinds)} windows (its input_kinds), the dataset holds {representation}; "
        f"prepare the data with representation={kinds[0]} (eeg2fmri prepare ROOT --out DIR --representation {kinds[0]}, or "
        f"data.prepare.representation: {kinds[0]} with a BIDS root) or choose a model that reads {representation} windows."
    )


def stack_split(ds: PreparedDataset, split: Split, targets: dict, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windows, targets and run index of every sample of split ``name``."""
    sel = split.selections[name]
    if not sel:
        return np.empty((0,)), np.empty((0,)), np.empty((0,), dtype=int)
    x, _, runs = window_matrix(ds, sel, split.n_frames, split.lag)
    y = np.concatenate([targets[name][i] for i in sel])
    return x, y, runs


def supervoxels(ds: PreparedDataset, size: int = 3) -> np.ndarray | None:
    """Group of every output: cubes of ``size`` x ``size`` x ``size`` voxels of the mask's grid (``None`` for ROI targets).

    Returns
    -------
    groups : array of int, shape (n_voxels,) | None
    """
    if getattr(ds, "rois", None):
        return None
    ijk = np.argwhere(np.asarray(ds.mask, bool)) // int(size)
    return np.unique(ijk, axis=0, return_inverse=True)[1].reshape(-1)


@preserve_global_rng()  # also around closed-form fits: the lazy imports of a first fit (scikit-learn, Lightning) draw from `random`
def fit_model(
    ds: PreparedDataset,
    split: Split,
    name: str = "ridge_hrf",
    hparams: dict | None = None,
    targets: dict | None = None,
    *,
    train_config: dict | None = None,
    out_dir: str | os.PathLike | None = None,
    progress_bar: bool | None = None,
) -> FitResult:
    """Fit registered model ``name`` on ``split``'s training windows.

    Parameters
    ----------
    ds : PreparedDataset
    split : Split
    name : str
        Registered model (``eeg2fmri.models.list_models()``).
    hparams : dict | None
        Model hyperparameters.
    targets : dict | None
        Output of :func:`split_targets` (computed when ``None``).
    train_config : dict | None
        Training config for torch models (``seed``, ``optimizer``, ``loss``,
        ``trainer`` sections; see :mod:`eeg2fmri.training.config`); keys it
        leaves out (all of them with ``None``) take the model's
        ``recommended_train_config``, then the generic defaults -- the settings
        ``eeg2fmri train`` and ``benchmark`` use. Ignored by closed-form models.
    out_dir : path-like | None
        Torch models: folder for checkpoints and logs (a temporary folder
        when ``None``); ignored by closed-form models.
    progress_bar : bool | None
        Torch models: show the epoch progress bar (``None``: as ``train_config``'s
        ``trainer.progress_bar`` says, on by default); ``False`` silences it, as
        ``prepare_dataset(progress_bar=False)`` does.

    Raises
    ------
    Eeg2fmriInputError
        E.g. a model whose ``input_kinds`` do not include the dataset's representation
        (:func:`check_input_kind`); torch models: see :func:`~eeg2fmri.training.trainer.fit_torch`.

    Returns
    -------
    FitResult
        ``model.predict(x)`` maps windows ``(n, *spec.input_shape)`` to
        ``(n, *spec.output_shape)`` float32 for every kind of model; ``dataset`` and ``split`` are ``ds`` and
        ``split`` (so that ``save_fit(result, FOLDER)`` and ``synthesize(eeg, result, out)`` need nothing else).
    """
    check_like(ds, ("runs", "ch_names"), "ds", "a PreparedDataset", where="fit_model", fix="prepare_dataset(...) returns one, load_prepared(PATH) reads one from its folder; the order is fit_model(ds, split, name, hparams, targets)")
    check_like(split, ("selections",), "split", "a Split", where="fit_model", fix="make_split(ds, protocol) returns one; the order is fit_model(ds, split, name, hparams, targets)")
    check_split_fits(ds, split, targets, where="fit_model", names=("train", "val"))
    hparams = dict(hparams or {})
    cls = get_model_class(name)
    check_input_kind(name, getattr(ds, "representation", None))
    if getattr(cls, "kind", "torch") != "sklearn":
        from eeg2fmri.training.trainer import fit_torch

        if progress_bar is not None:
            if not isinstance(progress_bar, bool):
                raise Eeg2fmriInputError(f"fit_model: expected progress_bar as True, False or None, got {progress_bar!r}.")
            train_config = dict(train_config or {})
            train_config["trainer"] = {**dict(train_config.get("trainer") or {}), "progress_bar": progress_bar}
        res = fit_torch(ds, split, name, hparams, targets, train_config=train_config, out_dir=out_dir)
        res.dataset, res.split = ds, split
        _remember_split(res.model, split)
        return res
    targets = split_targets(ds, split) if targets is None else targets
    spec = data_spec(ds, split.n_frames)
    model = build_model(name, spec, **hparams)
    x, y, runs = stack_split(ds, split, targets, "train")
    xv, yv, _ = stack_split(ds, split, targets, "val")
    t0 = time.perf_counter()
    subjects = np.array([ds.runs[i].subject for i in runs])
    if name == "mean":
        model.fit(x, y, subjects=subjects)
    elif getattr(model, "hrf_select", None) == "r":  # ridge_hrf choosing its basis on supervoxels: cubes of the mask's grid
        model.fit(x, y, xv if len(xv) else None, yv if len(yv) else None, output_groups=supervoxels(ds))
    else:
        model.fit(x, y, xv if len(xv) else None, yv if len(yv) else None)
    dt = time.perf_counter() - t0
    info = {"n_train": int(len(x)), "n_val": int(len(xv))}
    if getattr(model, "n_fit_windows_", len(x)) != len(x):  # refit=True: the coefficients saw the validation windows too
        info["n_fit_windows"] = int(model.n_fit_windows_)
    if isinstance(getattr(model, "hrf_", None), str):  # ridge_hrf: the haemodynamic basis chosen on validation (hrf="auto") or given
        info["hrf"] = model.hrf_
        if len(getattr(model, "hrf_scores_", {}) or {}) > 1:
            info["hrf_scores"] = {k: float(v) for k, v in model.hrf_scores_.items()}
        if getattr(model, "hrf_margin_", None):
            info["hrf_margin"] = dict(model.hrf_margin_)
        if getattr(model, "hrf_r_", None):
            info["hrf_r"] = {k: float(v) for k, v in model.hrf_r_.items()}
        reads = getattr(model, "_reads", (True, False))
        if all(reads) and getattr(model, "n_events", 0):  # EEG + event regressors: the events' gain chosen (user test 51: not said)
            info["event_gain"] = float(getattr(model, "event_gain_", 1.0))
        if getattr(model, "_slow_index", None) is not None:  # prepare option slow_potential: its columns' gain (one, or per output)
            sg = np.asarray(getattr(model, "slow_gain_", 1.0), dtype=np.float64)
            info["slow_gain"] = (float(sg) if not sg.ndim else
                                 {"per_target": {f"{g:g}": int((sg == g).sum()) for g in np.unique(sg)}})
        info["model_name"] = getattr(type(model), "registry_name", None) or name
    if hasattr(model, "alpha_"):
        alpha = np.asarray(model.alpha_, dtype=np.float64)
        if alpha.size == 1:
            info["alpha"] = float(alpha.reshape(-1)[0])
            grid = np.asarray(getattr(model, "alphas_", None) or getattr(model, "alphas", None) or (), dtype=np.float64)
            if grid.size > 1 and info["alpha"] >= grid.max() * (1 - 1e-9):  # (user test 20: 1e5, the grid's top, R^2 -6e-7, said nowhere)
                info["alpha_at_grid_top"] = True
        else:  # one penalty per output (alpha_per_target): a summary, not thousands of numbers in metrics.json/model.json
            info["alpha"] = float(np.median(alpha))  # (user test 14: the array crashed train's model.json)
            info["alpha_per_target"] = {"median": float(np.median(alpha)), "min": float(alpha.min()), "max": float(alpha.max())}
            if hasattr(model, "own_alpha_fraction_"):  # alpha_per_target="guarded"
                info["alpha_per_target"]["own_fraction"] = float(model.own_alpha_fraction_)
    logger.info("fitted %s on %d windows in %.2f s", name, len(x), dt)
    _remember_split(model, split)
    return FitResult(model, spec, name, hparams, dt, info, dataset=ds, split=split)


def _remember_split(model, split: Split) -> None:
    """The split a model was fitted on, kept on the model itself (``fit_split_``): evaluate_split checks it for test
    windows the model saw when it is given the bare model rather than the FitResult (user test 16: a within-subject
    model scored on a leave-one-subject-out split reached r 0.32 instead of 0.007, unchecked)."""
    try:
        model.fit_split_ = split
    except (AttributeError, TypeError):  # an object that takes no attributes: the FitResult still carries the split
        pass


#: Bytes per coefficient a linear fit holds at its peak, in copies of its dense (features x outputs) float32 matrix (user
#: test 47: 3,456 lag features x 235,375 voxels peaked at 11.6 GB training the flagship, 3.0 copies of 3.25 GB).
_COEF_COPIES = 3.0


def memory_check(ds: PreparedDataset, n_frames: int, where: str) -> float | None:
    """Warn before fitting when the linear models' dense coefficient matrices would not fit in this machine's memory.

    ``ridge_hrf`` (also the flagship's linear path) fits up to ``n_chans x n_bands x n_frames`` lag features per output,
    a dense float32 matrix held in about three copies at its peak (user test 47: 2 mm MNI BOLD, 235,375 voxels, 11.6 GB
    for one fit, and a LOSO benchmark that ran out of memory after 21 minutes with a numpy traceback).

    Returns
    -------
    float | None
        The estimated peak in bytes (None where the representation has no band-power block or the memory is unknown).
    """
    bands = getattr(getattr(ds, "config", None), "bands", None) or {}
    if getattr(ds, "representation", None) not in ("bandpower", "tangent") or not bands:
        return None
    try:
        total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return None
    p = len(ds.ch_names) * len(bands) * int(n_frames)
    est = _COEF_COPIES * 4.0 * p * int(ds.n_outputs)
    if est > 0.5 * total:
        logger.warning("%s: the linear models' coefficients alone will need about %.1f GB (%d lag features x %d outputs, float32, "
                       "~%g copies at the peak) of this machine's %.1f GB: expect swapping or an out-of-memory error; prepare with a "
                       "coarser grid (prepare option voxel_size, e.g. 3 or 4 mm: 8x fewer voxels at 4 mm for 2 mm data), region targets "
                       "(atlas), or a smaller mask, or use a machine with more memory", where, est / 1e9, p, int(ds.n_outputs),
                       _COEF_COPIES, total / 1e9)
    return est


def split_summary(split: Split, ds: PreparedDataset | None = None) -> dict:
    """A split's protocol, window, gap and number of windows per part (what model cards and metrics record), with ``ds``
    also the subjects of each part (``train_subjects``, ``val_subjects``, ``test_subjects``)."""
    out = {"protocol": split.protocol, "n_frames": split.n_frames, "lag": split.lag, "gap_volumes": split.gap,
           "n_train": split.n_samples("train"), "n_val": split.n_samples("val"), "n_test": split.n_samples("test")}
    if getattr(split, "options", None):  # fractions / val_subjects / n_folds, fold as given: evaluate rebuilds the split from them
        out["options"] = dict(split.options)
    if ds is not None:
        out.update({f"{k}_subjects": v for k, v in split.subjects(ds).items()})
    return out


def _saved_hparams(fitted) -> dict:
    """The hyperparameters ``model.json`` records: the model's ``get_params()`` where it has one, less its ``spec`` (a
    scikit-learn ``BaseEstimator`` plugin lists it, user test 31: ``save_fit`` failed on it) and any value JSON cannot hold
    (kept from the fit's own ``hparams`` where given there)."""
    import json

    from eeg2fmri.utils.jsonable import to_jsonable

    out = dict(fitted.hparams or {})
    model = fitted.model
    if not hasattr(model, "get_params"):
        return out
    try:
        got = model.get_params(deep=False)
    except TypeError:  # a get_params without the deep keyword
        got = model.get_params()
    for k, v in dict(got).items():
        if k == "spec":
            continue
        try:
            json.dumps(to_jsonable(v))
        except (TypeError, ValueError):
            continue
        out[k] = v
    return out


def save_fit(fitted: FitResult, ds: PreparedDataset | str | os.PathLike | None = None, split: Split | None = None,
             out: str | os.PathLike | None = None, *, card: dict | None = None, overwrite: bool = False) -> os.PathLike:
    """Save a :func:`fit_model` result as a model folder that ``load_model``, ``evaluate`` and ``synthesize`` read.

    ``save_fit(result, FOLDER)`` saves it with the dataset and split it was fitted on (``result.dataset``,
    ``result.split``); ``save_fit(result, ds, split, FOLDER)`` names them (e.g. for a result made by hand).

    Parameters
    ----------
    fitted : FitResult
        What :func:`fit_model` returned.
    ds : PreparedDataset | None
        The dataset it was fitted on (its mask, affine, ROIs and preparation travel with the model, so that
        synthesis prepares a new recording the same way); default ``fitted.dataset``.
    split : Split | None
        The split it was fitted with (its window length and lag are the model's); default ``fitted.split``.
    out : path-like
        The model folder to write (atomically; an existing one only with ``overwrite=True``).
    card : dict | None
        Extra entries for the model card (``MODEL_CARD.md``).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    Eeg2fmriInputError
        ``fitted`` is not a FitResult, or the dataset, split or folder is missing.
    """
    check_like(fitted, ("model", "spec", "name"), "fitted", "a FitResult", where="save_fit",
               fix="fit_model(ds, split, name) returns one; the order is save_fit(result, FOLDER)")
    if isinstance(ds, (str, os.PathLike)) and split is None and out is None:  # save_fit(result, FOLDER)
        ds, out = None, ds
    ds = getattr(fitted, "dataset", None) if ds is None else ds
    split = getattr(fitted, "split", None) if split is None else split
    if ds is None or split is None:
        raise Eeg2fmriInputError("save_fit: expected the dataset and split the model was fitted on, found none in the result (it was not "
                                 "made by fit_model); pass them: save_fit(result, ds, split, FOLDER).")
    if out is None:
        raise Eeg2fmriInputError("save_fit: expected the model folder to write, got none; pass it: save_fit(result, FOLDER).")
    check_like(ds, ("runs", "ch_names"), "ds", "a PreparedDataset", where="save_fit", fix="the order is save_fit(result, ds, split, FOLDER)")
    check_like(split, ("selections",), "split", "a Split", where="save_fit", fix="the order is save_fit(result, ds, split, FOLDER)")
    from eeg2fmri.datasets.prepared import (
        model_prepare_config,
        training_artifact_summary,
        training_notch_summary,
    )
    from eeg2fmri.models import save_model

    hparams = _saved_hparams(fitted)
    split_info = split_summary(split, ds)
    return save_model(getattr(fitted.model, "module", fitted.model), out, spec=fitted.spec, name=fitted.name, hparams=hparams, mask=ds.mask,
                      affine=ds.affine, window={"n_frames": split.n_frames, "lag": split.lag}, prepare=model_prepare_config(ds),
                      card={"split": split_info, "fit": fitted.info, **(card or {})}, overwrite=overwrite, xform_code=ds.xform_code, rois=ds.rois,
                      gradient_artifacts=training_artifact_summary(ds), training_notch=training_notch_summary(ds))
