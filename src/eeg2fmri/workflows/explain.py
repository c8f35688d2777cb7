"""Explain a trained model directory (``eeg2fmri explain``): attributions table, JSON and figures.

The split the model was trained with is rebuilt (as in ``eeg2fmri evaluate``)
so the attributions are computed on its held-out test windows.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset, select_subjects
from eeg2fmri.datasets.targets import Split, make_split
from eeg2fmri.evaluation.explain import dataset_montage, explain, explanation_rows
from eeg2fmri.utils.atomic import atomic_dir, final_paths
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError
from eeg2fmri.workflows.evaluate import _load_data, _recorded, resolve_run

__all__ = ["explain_run", "explain_fitted", "write_explanation", "atlas_labels"]


def atlas_labels(atlas: Any, mask: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
    """Integer labels of the in-mask voxels from a label image (:func:`eeg2fmri.preprocessing.atlas.load_labels`: an
    image on another grid is resampled to the data grid, nearest neighbour, when ``affine`` is given -- as `evaluate
    --atlas` does).

    Parameters
    ----------
    atlas : path-like | nibabel image | array, shape (X, Y, Z) or (n_voxels,)
    mask : array of bool, shape (X, Y, Z)
    affine : array, shape (4, 4) | None
        The data grid's affine.

    Returns
    -------
    labels : array of int, shape (n_voxels,)
    """
    from eeg2fmri.preprocessing.atlas import load_labels

    return load_labels(atlas, mask, affine)


def write_explanation(res: dict[str, Any], out: Path, *, montage: Any, montage_source: str, overwrite: bool = False,
                      extra: dict | None = None, say_written: bool = True) -> Path:
    """Write ``explain.json``, ``explain.tsv`` and the figures of an :func:`~eeg2fmri.evaluation.explain.explain` result atomically.

    Figures: ``channels_topomap.png`` (channel importance per method, MNE
    topomaps), ``bands.png`` (share of |attribution|), ``bands_signed.png`` (mean signed attribution: the
    direction), ``lags.png``; for the flagship
    ``patterns_topomap.png`` (Haufe patterns, member 0, the strongest sources
    per band) and ``hrfs.png``; for BEIRA ``patterns_topomap.png``; for calhas2022
    ``attention_graph.png`` (its topographical attention, mean over the test windows). ``say_written=False`` leaves out
    the "wrote" log line (a folder inside another command's temporary output).
    """
    from eeg2fmri.plotting.explain import (
        NoChannelPositions,
        plot_attention_graph,
        plot_channel_topomaps,
        plot_hrfs,
        plot_importance_bars,
        plot_lag_curves,
    )

    with atomic_dir(out, overwrite=overwrite, marker="explain.json") as tmp:
        figs: list[str] = []
        skipped: dict[str, str] = {}

        def draw(name: str, plot, *args, **kwargs) -> None:
            # a figure that needs channel positions the montage lacks is left out, with the reason; the rest is written
            try:
                plot(*args, tmp / name, *kwargs.pop("after", ()), **kwargs)
            except NoChannelPositions as err:
                skipped[name] = str(err)
                logger.warning("%s: %s not drawn: %s", out, name, err)
                return
            figs.append(name)

        meth = res["methods"]
        tgt = res["target"]
        if meth:
            draw("channels_topomap.png", plot_channel_topomaps, np.stack([m["channel"] for m in meth.values()]), res["channels"], montage,
                 after=([f"{k}: channel importance" for k in meth],), suptitle=f"target: {tgt}\nwhere the model reads its input, not a source map: neighbouring channels carry the same "
                          "source's power, and the weight spreads over them", symmetric=False, unit="share of |attribution|")
            first = next(iter(meth.values()))
            if "band" in first:
                names = res["band_names"] if res["band_names"] and len(res["band_names"]) == len(first["band"]) else [f"{f:g}" for f in res["freqs"]]
                plot_importance_bars({k: m["band"] for k, m in meth.items()}, names, tmp / "bands.png", f"band importance, target: {tgt}")
                figs.append("bands.png")
                # the direction: more power in a band raising (> 0) or lowering (< 0) the target (user test 9: only in explain.tsv)
                plot_importance_bars({k: m["band_signed"] for k, m in meth.items()}, names, tmp / "bands_signed.png",
                                     f"direction (> 0: more power in the band raises the target), target: {tgt}",
                                     ylabel="mean attribution x sign(input - baseline)")
                figs.append("bands_signed.png")
            if first.get("event_names"):  # event regressors: each condition's share of the whole attribution
                plot_importance_bars({k: m["event"] for k, m in meth.items()}, list(first["event_names"]), tmp / "events.png",
                                     f"event regressors ({100 * first['event_share']:.0f} % of the attribution), target: {tgt}",
                                     ylabel="share of |attribution|")
                figs.append("events.png")
            curves = {k: m["lag"] for k, m in meth.items()}
            if "lag_top_band" in first:  # the driving band's own lag profile (user test 18: the summed one was the same for every target)
                names = res["band_names"] if res["band_names"] and len(res["band_names"]) == len(first["band"]) else [f"{f:g}" for f in res["freqs"]]
                curves.update({f"{k}: {names[m['top_band']]} only": m["lag_top_band"] for k, m in meth.items()})
            plot_lag_curves(first["lag_s"], curves, tmp / "lags.png", f"lag importance, target: {tgt}")
            figs.append("lags.png")
        ins = res.get("insight")
        if ins is not None and ins["kind"] == "eeg2fmri_net":
            pats, wgt = ins["patterns"], ins["source_weight"]
            maps, titles = [], []
            names = res["band_names"] or [f"band {i}" for i in range(pats.shape[1])]
            n_top = min(3, pats.shape[2])
            for f in range(pats.shape[1]):
                for s in np.argsort(-wgt[0, f])[:n_top]:
                    maps.append(pats[0, f, s])
                    titles.append(f"{names[f]} source {s}")
            share = float(ins.get("network_share", 1.0))
            note = ("\nNOT USED in the predictions: the blend gave the linear path all the weight (ridge_weight 1)" if share == 0.0 else
                    f"\nthe network's share of the prediction: {share:.2f} (the rest: the linear path)" if share < 1.0 else "")
            if share == 0.0:
                logger.info("eeg2fmri_net insight: the network's patterns and HRFs are drawn, but the blend gave the linear path all the "
                            "weight (ridge_weight 1): they do not shape the predictions")
            draw("patterns_topomap.png", plot_channel_topomaps, np.array(maps), res["channels"], montage, after=(titles,), n_cols=n_top,
                 suptitle="eeg2fmri_net spatial patterns (Haufe), member 0, strongest sources per band" + note)
            plot_hrfs(ins["hrf_lag_s"], ins["hrf_kernels"], names, tmp / "hrfs.png", "eeg2fmri_net learned HRFs (mean per band)" + note)
            figs.append("hrfs.png")
        elif ins is not None and ins["kind"] == "calhas2022":
            draw("attention_graph.png", plot_attention_graph, ins["attention"], res["channels"], montage,
                 title="calhas2022 topographical attention, mean over the test windows")
        elif ins is not None and ins["kind"] == "beira":
            p = ins["patterns"][0, 0]
            draw("patterns_topomap.png", plot_channel_topomaps, p, res["channels"], montage, after=([f"virtual channel {i}" for i in range(len(p))],),
                 suptitle="BEIRA spatial patterns (Haufe)")
        rows = explanation_rows(res)
        with open(tmp / "explain.tsv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.DictWriter(fh, fieldnames=["method", "axis", "name", "importance", "signed"], delimiter="\t")
            wr.writeheader()
            wr.writerows(rows)
        doc = dict(res)
        doc["target_indices"] = np.asarray(res["target_indices"]).tolist()
        doc.update(montage=montage_source, figures=figs, figures_skipped=skipped, **(extra or {}))
        (tmp / "explain.json").write_text(json.dumps(final_paths(to_jsonable(doc, finite=True)), indent=1, allow_nan=False), encoding="utf-8")
    if say_written:  # (not for a folder inside another command's temporary output: user test 40 saw a path that was gone)
        logger.info("wrote %s (explain.json, explain.tsv, %d figures)", out, len(figs))
    return out


def explain_run(
    run_dir: str | os.PathLike | None = None,
    *,
    model: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    target: Any = "mask",
    atlas: Any = None,
    methods: str | tuple[str, ...] | list[str] = "auto",
    n_windows: int = 128,
    n_steps: int = 32,
    montage: str | None = None,
    out: str | os.PathLike | None = None,
    random_state: int = 0,
    overwrite: bool = False,
    progress_bar: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Explain a trained model on the test windows of its recorded split and write the outputs.

    Parameters
    ----------
    run_dir, model : path-like | None
        Training run folder or model directory (as ``eeg2fmri evaluate``).
    data : path-like | None
        Prepared dataset (default: the recorded one).
    target : "mask" | int | str
        ``"mask"``, ``"voxel:I"`` or ``"roi:L"`` (with ``atlas``).
    atlas : path-like | image | array | None
        Integer labels on the data grid.
    methods, n_windows, n_steps, random_state
        See :func:`eeg2fmri.evaluation.explain.explain`.
    montage : str | None
        An MNE standard montage for the topomaps; default the electrode
        positions of the training data (BIDS ``*_electrodes.tsv``), else
        ``colin27_1005`` by name.
    out : path-like | None
        Output folder (default ``<run>/explain``); written atomically.
    overwrite, progress_bar : bool

    Returns
    -------
    out, result : Path, dict
    """
    from eeg2fmri.models import load_model

    model_dir, rdir = resolve_run(run_dir, model=model, command="explain")
    out_path = Path(out) if out is not None else (rdir if rdir is not None else model_dir.parent) / "explain"
    if out_path.exists() and not overwrite:
        raise Eeg2fmriInputError(f"{out_path}: output directory already exists; choose another --out or pass overwrite=True (--overwrite).")
    from eeg2fmri.utils.atomic import check_writable

    check_writable(out_path)  # before any work (user test 29)
    lm = load_model(model_dir)
    if lm.meta.get("kind") == "sklearn" and not callable(getattr(lm.model, "input_weights", None)):
        raise Eeg2fmriInputError(f"{model_dir}: model {lm.meta['model']!r} is closed-form without input weights; explain works on torch models "
                                 "(e.g. eeg2fmri_net) and on linear closed-form ones (ridge_hrf).")
    rec_data, rec_split, _, _, rec_subjects = _recorded(model_dir, rdir, lm.meta)
    data_path = Path(data) if data is not None else rec_data
    if rec_split is None:
        raise Eeg2fmriInputError(f"{model_dir}: the model records no split, so its test windows are unknown; retrain with eeg2fmri train.")
    ds = select_subjects(_load_data(model_dir, data, rec_data), rec_subjects, where=f"{model_dir}: data.subjects")
    win = lm.meta.get("window", {})
    opts = {k: v for k, v in rec_split.items() if k != "protocol"}
    opts.update(n_frames=int(win.get("n_frames", 0)) or None, lag=int(win.get("lag", 0)))
    split = make_split(ds, rec_split["protocol"], **opts)
    labels = atlas_labels(atlas, lm.mask, lm.affine) if atlas is not None else None
    target = _roi_name_to_label(target, atlas, labels)
    res = explain(lm.model, ds, split, target=target, atlas=labels, methods=methods, n_windows=n_windows, n_steps=n_steps, window=win,
                  random_state=random_state, progress_bar=progress_bar)
    res["model"] = lm.meta["model"]
    evidence = target_evidence(model_dir, res.get("target_indices"))
    if evidence is not None:  # (user test 20: a control region the model cannot predict got "top band alpha, lowers" unqualified)
        res["target_validation"] = evidence
        if evidence["share_above_null"] <= 0.1:
            res["target_note"] = (f"no evidence that the model predicts this target: {evidence['outputs_above_null']} of its "
                                  f"{evidence['outputs']} output(s) are above chance on the validation windows (median r "
                                  f"{evidence['median_r']}); its attribution explains a prediction that need not follow the EEG")
            logger.warning("%s: %s", model_dir, res["target_note"])
    note = output_rank_note(lm.model)
    if note:
        logger.warning("%s: %s", model_dir, note)
        res["output_rank_note"] = note
    lag = lag_shape_note(lm.model)
    if lag:
        res["lag_note"] = lag
    mont, source = _montage(ds, montage)
    write_explanation(res, out_path, montage=mont, montage_source=source, overwrite=overwrite,
                      extra={"model_dir": str(model_dir.absolute()), "data": str(Path(data_path).absolute()), "split": rec_split})
    return out_path, res


def lag_shape_note(model: Any) -> str | None:
    """What the lag profile of an explanation can show, for models whose HRF shape is fixed or constrained.

    ``ridge_hrf`` with the canonical HRF (or the flagship whose network is unused and whose linear path has the canonical
    basis) gives every band, region and subject the same lag profile: the HRF's own shape, not an estimate (user test 44:
    "its attribution peaks 7.0 s before the volume's end" read as a finding). The informed basis constrains it to shapes near
    the canonical one. ``None`` for free lags (``hrf="lags"``) and for networks with learned HRFs.
    """
    hrf = getattr(model, "hrf_", None)
    basis = getattr(model, "ridge_basis", None)
    if hrf is None and basis is not None and getattr(model, "ridge_weight", None) is not None:
        if float(model.ridge_weight) >= 1.0 - 1e-9:  # the network is unused: the linear path alone predicts
            b = np.asarray(basis.detach().cpu() if hasattr(basis, "detach") else basis, dtype=np.float64)
            k = int(b.shape[0])
            free = b.ndim == 2 and b.shape[0] == b.shape[1] and np.allclose(b, np.eye(k))  # free lags (eye), also of 1 or 3 frames
            hrf = None if free else "canonical" if k == 1 else "basis" if k == 3 else None
    if hrf == "canonical":
        return ("the lag profile is the canonical HRF's shape, fixed by the model: the same for every band, region and subject, not "
                "estimated from the data; to estimate lags, train ridge_hrf with hparams hrf: lags")
    if hrf == "basis":
        return ("the lag profile lies within the shapes the informed basis allows (the canonical HRF and its time and dispersion "
                "derivatives: near the canonical peak); to estimate lags freely, train ridge_hrf with hparams hrf: lags")
    return None


def _roi_name_to_label(target: Any, atlas: Any, labels: np.ndarray | None) -> Any:
    """``roi:NAME`` -> ``roi:L`` for an atlas file with a look-up table beside it (``LABELS.tsv``, columns index and name, as
    ``evaluate --atlas`` and ``synthesize --atlas`` read it; user test 20: refused although evaluate named the ROIs so)."""
    if not isinstance(target, str) or not target.startswith("roi:") or labels is None:
        return target
    val = target.partition(":")[2]
    if val.lstrip("-").isdigit():
        return target
    from eeg2fmri.preprocessing.atlas import atlas_roi_names

    ids = np.array([int(v) for v in np.unique(labels) if v != 0])
    names = atlas_roi_names(atlas, ids)
    if val in names:
        return f"roi:{int(ids[names.index(val)])}"
    raise Eeg2fmriInputError(f"explain: target {target!r}: no ROI of the atlas is named {val!r}; names (from the .tsv beside the atlas, "
                             f"columns index and name): {names[:12]}; or give the label, e.g. roi:{int(ids[0]) if len(ids) else 1}.")


def target_evidence(model_dir: Path, indices: Any) -> dict[str, Any] | None:
    """How many of a target's outputs (``indices``) the model predicts above chance on its validation windows, from the
    calibration that ``train`` writes (``None`` without one, or without its validation r)."""
    from eeg2fmri.models.calibration import load_calibration

    try:
        cal = load_calibration(model_dir)
    except Eeg2fmriInputError:
        return None
    if not cal or cal.get("val_r") is None or cal.get("val_r_null95") is None or indices is None:
        return None
    idx = np.atleast_1d(np.asarray(indices, dtype=np.int64)).reshape(-1)
    vr, vn = np.asarray(cal["val_r"], np.float64), np.asarray(cal["val_r_null95"], np.float64)
    if not len(idx) or idx.max() >= len(vr):
        return None
    above = np.isfinite(vr[idx]) & np.isfinite(vn[idx]) & (vr[idx] > vn[idx])
    r = vr[idx][np.isfinite(vr[idx])]
    return {"outputs": int(len(idx)), "outputs_above_null": int(above.sum()), "share_above_null": round(float(above.mean()), 4),
            "median_r": round(float(np.median(r)), 4) if len(r) else None,
            "meaning": "validation r of the target's outputs against the level of a 5 % test over every circular shift "
                       "(calibration.npz); about 5 % of unpredictable outputs pass by chance"}


def output_rank_note(model: Any) -> str:
    """A note when a model's outputs span only a few response patterns (``eeg2fmri_net``'s reduced-rank output), so that
    attributions of different targets are mixtures of those few ('' otherwise)."""
    module = getattr(model, "module", model)
    basis = getattr(module, "_buffers", {}).get("out_basis") if hasattr(module, "_buffers") else None
    if basis is None:
        return ""
    k = int(basis.shape[0])
    keep = module._buffers.get("out_keep")
    n_kept = int((keep > 0).sum()) if keep is not None else 0
    if n_kept:  # rank_output_check: these outputs keep the full prediction
        return (f"{int(keep.numel()) - n_kept} of the model's {int(keep.numel())} outputs span only {k} response pattern(s) (output_rank {k}, "
                f"chosen on the validation windows; the other {n_kept} keep the full prediction): their attributions are mixtures of "
                f"those {k}; to tell all regions apart, train with model.hparams.output_rank: null and explain that model")
    same = ("every target's attribution is the same up to its sign and scale" if k == 1 else
            f"every target's attribution is a mixture of {k} patterns, so distant targets can look alike")
    return (f"the model's outputs span only {k} response pattern(s) (output_rank {k}, chosen on the validation windows): {same}; "
            "to tell regions apart, train with model.hparams.output_rank: null (or a larger rank) and explain that model")


def _montage(ds: PreparedDataset, name: str | None) -> tuple[Any, str]:
    import mne

    if name is None:
        return dataset_montage(ds)
    try:
        return mne.channels.make_standard_montage(name), f"MNE standard montage {name!r} (given)"
    except ValueError:
        raise Eeg2fmriInputError(f"montage: expected an MNE standard montage name, got {name!r}; "
                                 f"e.g. {', '.join(mne.channels.get_builtin_montages()[:4])}.") from None


def explain_fitted(model: Any, ds: PreparedDataset, split: Split, out: str | os.PathLike, **kwargs: Any) -> tuple[Path, dict[str, Any]]:
    """:func:`~eeg2fmri.evaluation.explain.explain` an in-memory model and write the outputs to ``out`` (``overwrite=`` passed through)."""
    overwrite = bool(kwargs.pop("overwrite", False))
    montage = kwargs.pop("montage", None)
    res = explain(model, ds, split, **kwargs)
    mont, source = _montage(ds, montage)
    return write_explanation(res, Path(out), montage=mont, montage_source=source, overwrite=overwrite), res
