"""Decode labels from synthesised BOLD, EEG band power and measured BOLD (``eeg2fmri classify``).

Samples are blocks of consecutive volumes with one label (task blocks from the
runs' ``events.tsv``, or a ``participants.tsv`` column split into blocks of
``max_block`` volumes); every source is scored with the same subject-wise
nested cross-validation and permutation null
(:func:`eeg2fmri.evaluation.classify.classify`).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset, load_prepared, select_subjects
from eeg2fmri.datasets.windows import run_windows, valid_volumes
from eeg2fmri.evaluation.classify import (
    CLASSIFY_SOURCES,
    block_samples,
    classify,
    participant_labels,
    stored_volume_labels,
    volume_labels_from_events,
)
from eeg2fmri.training.predictor import predict_windows
from eeg2fmri.utils.atomic import atomic_dir, final_paths
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice

__all__ = ["classify_dataset", "classify_run", "format_table", "source_series"]


def _roi_means(s: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        return s
    ids = [v for v in np.unique(labels) if v != 0]
    return np.stack([s[:, labels == v].mean(1) for v in ids], 1)


def source_series(ds: PreparedDataset, source: str, *, model: Any = None, window: dict | None = None, rois: np.ndarray | None = None,
                  batch_size: int = 256) -> dict[int, np.ndarray]:
    """Per-volume features of every run for one source.

    Parameters
    ----------
    ds : PreparedDataset
    source : {"synth", "eeg", "bold"}
        ``synth``: the model's predicted BOLD (NaN rows where the EEG window
        is incomplete); ``eeg``: band power of the frames of each volume
        (channels x bands); ``bold``: the measured BOLD.
    model : fitted model | None
        Needed for ``synth``.
    window : dict | None
        ``{"n_frames", "lag"}`` of the model.
    rois : array of int, shape (n_voxels,) | None
        Average voxels per label (BOLD sources) instead of using every voxel.

    Returns
    -------
    dict of run index -> array, shape (n_volumes, n_features)
    """
    check_choice(source, "source", CLASSIFY_SOURCES, where="classify")
    out: dict[int, np.ndarray] = {}
    for i, run in enumerate(ds.runs):
        if source == "bold":
            if run.bold is None:
                raise Eeg2fmriInputError(f"{run.key}: no measured BOLD in this run; leave 'bold' out of the sources.")
            out[i] = _roi_means(np.asarray(run.bold, dtype=np.float64), rois)
        elif source == "eeg":
            if ds.representation not in ("bandpower", "tangent"):
                raise Eeg2fmriInputError(f"classify: the EEG source uses band power, got a {ds.representation!r} dataset; "
                                         "prepare the data with representation='bandpower' (or 'tangent', whose band-power block it reads).")
            f = np.asarray(run.features)
            f = f[:, :, : f.shape[2] - len(ds.config.event_names)]  # the EEG features, never the event regressors (the labels' markers)
            if ds.representation == "tangent":  # (n_frames, n_chans, n_bands * (1 + n_chans)): its band-power block
                f = f[:, :, : f.shape[2] // (1 + f.shape[1])]
            fpt = max(1, int(round(ds.frame_rate * ds.tr)))
            rows = np.full((run.n_volumes, f.shape[1] * f.shape[2]), np.nan)
            for v, end in enumerate(np.asarray(run.window_end)):
                if end >= 1 and end <= len(f):
                    rows[v] = f[max(0, end - fpt) : end].mean(0).ravel()
            out[i] = rows
        else:
            if model is None:
                raise Eeg2fmriInputError("classify: source 'synth' needs a trained model (RUN_DIR or model=).")
            n_frames, lag = int((window or {}).get("n_frames", 0)), int((window or {}).get("lag", 0))
            vols = valid_volumes(run, n_frames, lag)
            pred = predict_windows(model, run_windows(run, vols, n_frames, lag), batch_size=batch_size)
            rows = np.full((run.n_volumes, pred.shape[1]), np.nan)
            rows[vols] = pred
            out[i] = _roi_means(rows, rois)
    return out


def classify_dataset(
    ds: PreparedDataset,
    labels: dict[int, np.ndarray],
    *,
    sources: tuple[str, ...] | list[str] = ("eeg", "bold"),
    model: Any = None,
    window: dict | None = None,
    rois: np.ndarray | None = None,
    delay_s: float = 5.0,
    max_block: int | None = None,
    n_splits: int | None = None,
    n_permutations: int = 100,
    random_state: int = 0,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Score every source with :func:`~eeg2fmri.evaluation.classify.classify` on the same blocks.

    Parameters
    ----------
    ds : PreparedDataset
    labels : dict of run index -> array, shape (n_volumes,)
        Label of every volume (:func:`~eeg2fmri.evaluation.classify.volume_labels_from_events`,
        :func:`~eeg2fmri.evaluation.classify.participant_labels`).
    sources : sequence of {"synth", "eeg", "bold"}
    model, window
        The trained model and its window, for ``synth``.
    rois : array of int, shape (n_voxels,) | None
        ROI labels of the voxels (BOLD sources averaged per ROI).
    delay_s : float
        Haemodynamic delay applied to the BOLD sources (measured and
        synthesised), in seconds (rounded to volumes).
    max_block : int | None
        Longest sample in volumes (longer blocks are split).
    n_splits, n_permutations, random_state, progress_bar
        See :func:`~eeg2fmri.evaluation.classify.classify`.

    Returns
    -------
    dict of source -> result of :func:`~eeg2fmri.evaluation.classify.classify`
    """
    d = int(round(float(delay_s) / ds.tr))
    res = {}
    for src in sources:
        series = source_series(ds, src, model=model, window=window, rois=rois)
        X, y, g = block_samples(ds, labels, series, delay_volumes=0 if src == "eeg" else d, max_block=max_block)
        logger.info("classify %s: %d samples x %d features, %d subjects", src, X.shape[0], X.shape[1], len(np.unique(g)))
        res[src] = classify(X, y, g, n_splits=n_splits, n_permutations=n_permutations, random_state=random_state, progress_bar=progress_bar)
    return res


def _table_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"source": s, "balanced_accuracy": r["balanced_accuracy"], "ci_low": r["ci95"][0], "ci_high": r["ci95"][1], "chance": r["chance"],
             "null_mean": r["null_mean"], "null_95": r["null_95"], "p_value": r["p_value"], "n_samples": r["n_samples"],
             "n_subjects": r["n_subjects"], "n_features": r["n_features"], "cv": r["cv"]} for s, r in res.items()]


def format_table(res: dict[str, Any], notes: dict[str, str] | None = None) -> str:
    """A plain-text table of :func:`classify_dataset` results, with the permutation test's smallest p and ``notes``
    (source -> what the table must not hide, as :func:`classify_run` records them in ``classify.json``)."""
    # (user test 33: chance was only in the JSON)
    lines = [f"{'source':<8} {'bal. acc.':>9} {'95% CI':>15} {'chance':>6} {'null mean':>9} {'null 95%':>8} {'p':>7} {'samples':>7} {'subjects':>8}"]
    rows = _table_rows(res)
    for r in rows:
        lines.append(f"{r['source']:<8} {r['balanced_accuracy']:9.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] {r['chance']:6.3f} {r['null_mean']:9.3f} "
                     f"{r['null_95']:8.3f} {r['p_value']:7.3f} {r['n_samples']:7d} {r['n_subjects']:8d}")
    n_perm = {int(v.get("n_permutations", 0)) for v in res.values() if isinstance(v, dict) and v.get("n_permutations")}
    if len(n_perm) == 1:  # the smallest p a permutation test can give (user test 9: p = 0.048 was the floor of 20 permutations)
        n = n_perm.pop()
        lines.append(f"p: label permutations ({n}); the smallest p they can give is 1/({n}+1) = {1 / (n + 1):.3f}.")
    for src, note in (notes or {}).items():  # what the printed table must not hide (the synthesised source's windows)
        lines.append(f"note ({src}): {note}.")
    return "\n".join(lines)


def classify_run(
    run_dir: str | os.PathLike | None = None,
    *,
    data: str | os.PathLike | None = None,
    model: str | os.PathLike | None = None,
    labels: str = "events",
    participants: str | os.PathLike | None = None,
    sources: tuple[str, ...] | list[str] | None = None,
    atlas: Any = None,
    delay_s: float = 5.0,
    max_block: int | None = None,
    n_splits: int | None = None,
    n_permutations: int = 100,
    out: str | os.PathLike | None = None,
    random_state: int = 0,
    overwrite: bool = False,
    progress_bar: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Decode labels from a trained run's synthesised BOLD, EEG band power and measured BOLD; write ``classify.json`` and ``classify.tsv``.

    Parameters
    ----------
    run_dir, model : path-like | None
        A training run or model directory (needed for the ``synth`` source).
    data : path-like | None
        Prepared dataset (default: the model's).
    labels : str
        ``"events"`` (task condition of every volume from the runs'
        ``events.tsv``), ``"participants:COLUMN"``, or the name of a per-volume
        label the prepared dataset stores (ds003768: ``"sleep_stage"``,
        ``"sleep_stage_certain"``; :func:`~eeg2fmri.evaluation.classify.stored_volume_labels`).
    participants : path-like | None
        ``participants.tsv`` (default: the BIDS root's).
    sources : sequence of {"synth", "eeg", "bold"} | None
        Default: ``synth`` (with a model), ``eeg``, and ``bold`` where present.
    atlas : path-like | array | None
        ROI labels on the grid (BOLD sources averaged per ROI).
    delay_s, max_block, n_splits, n_permutations, random_state
        See :func:`classify_dataset`.
    out : path-like | None
        Output folder (default ``<run>/classify``, or ``<data>/../classify``).
    overwrite, progress_bar : bool

    Returns
    -------
    out, results : Path, dict
    """
    from eeg2fmri.workflows.evaluate import _recorded, resolve_run
    from eeg2fmri.workflows.explain import atlas_labels

    lm, model_dir, rdir, notes = None, None, None, {}
    if run_dir is not None or model is not None:
        from eeg2fmri.models import load_model

        model_dir, rdir = resolve_run(run_dir, model=model, command="classify")
        lm = load_model(model_dir)
        rec_data, rec_split, _, _, rec_subjects = _recorded(model_dir, rdir, lm.meta)
        data = data if data is not None else rec_data
        notes["synth"] = ("the synthesis model was fitted to the BOLD (never the labels) of its training windows "
                          f"(split {rec_split}); its synthesised BOLD there is in-sample for the synthesis, not for the classifier")
    if data is None:
        raise Eeg2fmriInputError("classify: expected a prepared dataset (--data) or a run directory recording one.")
    ds = load_prepared(data)
    if lm is not None:
        ds = select_subjects(ds, rec_subjects, where=f"{model_dir}: data.subjects")
    n_subjects = len(ds.subjects)
    if n_subjects < 3:  # checked before any source is built (user test 17: 35 s to say so)
        raise Eeg2fmriInputError(f"classify: expected samples from at least 3 subjects (subject-wise CV with nested selection), got "
                                 f"{n_subjects} ({', '.join(ds.subjects)}) in {data}; add subjects.")
    if sources is None:
        sources = (["synth"] if lm is not None else []) + ["eeg"] + (["bold"] if all(r.bold is not None for r in ds.runs) else [])
    for s in sources:
        check_choice(s, "sources", CLASSIFY_SOURCES, where="classify")
    if "synth" in sources and lm is None:
        raise Eeg2fmriInputError("classify: source 'synth' needs a trained model; pass RUN_DIR (or --model), or leave 'synth' out of --sources.")
    base = rdir if rdir is not None else (model_dir.parent if model_dir is not None else Path(data).parent)
    out_path = Path(out) if out is not None else base / "classify"
    if out_path.exists() and not overwrite:
        raise Eeg2fmriInputError(f"{out_path}: output directory already exists; choose another --out or pass overwrite=True (--overwrite).")
    if labels == "events":
        lab = volume_labels_from_events(ds)
    elif labels.startswith("participants:"):
        lab = participant_labels(ds, labels.partition(":")[2], participants=participants)
        max_block = max_block or int(round(30.0 / ds.tr))
    else:  # a per-volume label prepare stored from the layout (ds003768: sleep_stage)
        lab = stored_volume_labels(ds, labels)
        max_block = max_block or int(round(30.0 / ds.tr))  # one sample per 30-s scoring epoch, not per stretch of a stage (review)
    rois = atlas_labels(atlas, ds.mask, ds.affine) if atlas is not None else None
    res = classify_dataset(ds, lab, sources=sources, model=None if lm is None else lm.model, window=None if lm is None else lm.meta.get("window"),
                           rois=rois, delay_s=delay_s, max_block=max_block, n_splits=n_splits, n_permutations=n_permutations,
                           random_state=random_state, progress_bar=progress_bar)
    with atomic_dir(out_path, overwrite=overwrite, marker="classify.json") as tmp:
        rows = _table_rows(res)
        with open(tmp / "classify.tsv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t")
            wr.writeheader()
            wr.writerows(rows)
        doc = {"results": res, "labels": labels, "delay_s": delay_s, "data": str(Path(data).absolute()),
               "model_dir": None if model_dir is None else str(model_dir.absolute()), "notes": notes}
        # strict JSON: a p-value without permutations (n_permutations=0) or a CI without bootstraps is null, never NaN
        (tmp / "classify.json").write_text(json.dumps(final_paths(to_jsonable(doc, finite=True)), indent=1, allow_nan=False), encoding="utf-8")
    logger.info("wrote %s", out_path)
    return out_path, res
