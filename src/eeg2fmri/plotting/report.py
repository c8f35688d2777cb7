"""Figures and Markdown/HTML reports of an evaluation (matplotlib Agg; nilearn for brain maps).

* :func:`plot_r_map` - voxel-wise test r on orthogonal slices over the MNI152
  template (nilearn ships it, no download), or over the measured mean when
  the grid is not in MNI space;
* :func:`plot_timecourses` - measured vs predicted time courses of the best,
  median and worst voxel by r;
* :func:`plot_r_distributions` - histograms of voxel r for the model, the
  reference and their time-shifted nulls;
* :func:`plot_subject_r` - per-subject median r with bootstrap CIs;
* :func:`plot_slices` - measured vs predicted axial slices at one time point;
* :func:`write_evaluation_report` - ``report.md`` with
  the summary, the paired comparison, the per-subject table, the baselines
  and the peers' metrics, each labelled;
* :func:`write_report` - the short report of the quickstart.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.datasets.targets import volumes_line
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["plot_r_distributions", "plot_r_map", "plot_slices", "plot_subject_r", "plot_timecourses", "plot_volumes_mni", "write_evaluation_report",
           "write_report"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _unmask(mask: np.ndarray, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    vol = np.full(mask.shape, fill, dtype=np.float32)
    vol[mask] = values
    return vol


def plot_slices(mask: np.ndarray, measured: np.ndarray, predicted: np.ndarray, r: np.ndarray, out: Path, title: str = "") -> Path:
    """Axial slices of measured vs predicted BOLD at one time point, and the r map.

    Three slices: at a quarter, half and three quarters of the mask's extent in z, the middle one
    replaced by the slice through the voxel of highest r when it is not among them.

    Parameters
    ----------
    mask : array of bool, shape (X, Y, Z)
    measured, predicted : array, shape (n_voxels,)
        One volume in standardised units.
    r : array, shape (n_voxels,)
        Voxel-wise test r.
    out : Path
        PNG to write.
    """
    plt = _plt()
    zs = np.where(mask.any(axis=(0, 1)))[0]
    picks = zs[(np.linspace(0.25, 0.75, 3) * (len(zs) - 1)).astype(int)] if len(zs) else np.array([mask.shape[2] // 2])
    rr = np.asarray(r, dtype=np.float64)
    if len(zs) and rr.shape == (int(mask.sum()),) and np.isfinite(rr).any():  # the middle slice through the voxel of highest r
        z_peak = int(np.argwhere(mask)[int(np.nanargmax(rr))][2])
        if z_peak not in picks:
            picks = np.sort(np.array([picks[0], z_peak, picks[-1]]))
    rows = [("measured", _unmask(mask, measured), "RdBu_r", 2.5), ("predicted", _unmask(mask, predicted), "RdBu_r", 2.5), ("test r", _unmask(mask, r), "RdBu_r", 0.6)]
    fig, axes = plt.subplots(3, len(picks), figsize=(3 * len(picks), 8.5), squeeze=False)
    for i, (name, vol, cmap, lim) in enumerate(rows):
        for j, z in enumerate(picks):
            ax = axes[i, j]
            im = ax.imshow(np.rot90(vol[:, :, z]), cmap=cmap, vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name)
            if i == 0:
                ax.set_title(f"z={z}")
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.8)
    fig.suptitle(fit_title(fig, title, 12))
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out


def _cut_centre(mask: np.ndarray, affine: np.ndarray, r: np.ndarray | None) -> np.ndarray:
    """World coordinates (4,) of the voxel of highest ``r`` (per masked voxel), or the mask's centroid when ``r`` is
    ``None`` or has no finite value."""
    rr = None if r is None else np.asarray(r, dtype=np.float64)
    if rr is not None and rr.shape == (int(mask.sum()),) and np.isfinite(rr).any():
        return np.asarray(affine) @ np.append(np.argwhere(mask)[int(np.nanargmax(rr))], 1.0)
    return np.asarray(affine) @ np.append(np.argwhere(mask).mean(axis=0), 1.0)


def _in_mni_box(affine: np.ndarray, shape: tuple[int, ...]) -> bool:
    """Whether the grid's centre lies inside the MNI152 brain's bounding box (mm)."""
    centre = affine @ np.array([(s - 1) / 2 for s in shape[:3]] + [1.0])
    return bool(np.all(np.abs(centre[:3] - np.array([0.0, -18.0, 18.0])) < np.array([40.0, 50.0, 40.0])))


_SPACES = ("mni", "native", None)


def fit_title(fig: Any, text: str, fontsize: float = 10.0, share: float = 1.0) -> str:
    """``text`` wrapped to the width of ``fig`` (times ``share`` for one axis of several), line by line, so that no
    title is cut off at the figure's edge (user test 9: clipped titles in hrfs.png, patterns and time courses)."""
    import textwrap

    chars = max(20, int(fig.get_figwidth() * share * 72 / (0.56 * fontsize)))
    return "\n".join(textwrap.fill(line, width=chars) if line else line for line in str(text).split("\n"))


def _with_note(title: str, note: str) -> str:
    """``"title (note)"``, or whichever of the two is not empty."""
    return f"{title} ({note})" if title and note else (title or note)


def draws_mni_template(affine: np.ndarray, shape: tuple[int, ...], space: str | None = None) -> bool:
    """Whether :func:`mni_background` puts the MNI152 template behind this grid (see there)."""
    if space not in _SPACES:
        raise Eeg2fmriInputError(f"expected space 'mni', 'native' or None, got {space!r}.")
    return space == "mni" or (space is None and _in_mni_box(np.asarray(affine), shape))


def mni_background(affine: np.ndarray, shape: tuple[int, ...], space: str | None = None) -> tuple[Any, str]:
    """The MNI152 template where it belongs behind a grid, and what the figure should say about it.

    Parameters
    ----------
    affine : array, shape (4, 4)
    shape : tuple
        The grid's shape (X, Y, Z).
    space : "mni" | "native" | None
        The grid's space as its files say it (``PreparedDataset.space``, :func:`eeg2fmri.io.bold.grid_space`).
        ``"native"`` (scanner or T1w space): never the template (it would place the data wrongly); ``"mni"``: the
        template; ``None`` (not said): the template where the grid's centre lies in the MNI brain's box, with a note
        that this was assumed.

    Returns
    -------
    background : nibabel image | None
    note : str
        ``""`` where the data say MNI and the template is drawn; otherwise a short note for the title.
    """
    if not draws_mni_template(affine, shape, space):
        return None, "native (scanner) space: no MNI template behind it" if space == "native" else ""
    from nilearn.datasets import load_mni152_template

    return load_mni152_template(resolution=2), ("" if space == "mni" else "space not recorded: MNI template assumed from the grid's position")


def plot_r_map(mask: np.ndarray, affine: np.ndarray, r: np.ndarray, out: Path, title: str = "", *, background: Any = "mni",
               vmax: float | None = None, cut: str = "peak", space: str | None = None) -> Path:
    """Voxel-wise test r on orthogonal slices over the MNI152 template.

    The slices go through the voxel of highest r (``cut="peak"``, default: a focal effect is on the
    figure wherever it is) or through the mask's centroid (``cut="centre"``, also when no r is finite).

    Parameters
    ----------
    mask : array of bool, shape (X, Y, Z)
    affine : array, shape (4, 4)
        Voxel-to-world affine of the grid (MNI mm for the overlay to be meaningful).
    r : array, shape (n_voxels,)
        r per masked voxel (NaN allowed, shown as 0).
    out : Path
        PNG to write.
    background : "mni" | nibabel image | None
        ``"mni"``: nilearn's MNI152 template (shipped with nilearn, no
        download) where ``space`` allows it (:func:`mni_background`),
        otherwise no background; an image (e.g. the mean measured volume) is used as is.
    vmax : float | None
        Colour scale limit (default: the 99th percentile of |r|, at least 0.1).
    cut : {"peak", "centre"}
    space : "mni" | "native" | None
        The grid's space as its files say it (``PreparedDataset.space``); the title notes a template left out or assumed.
    """
    import nibabel as nib
    from nilearn import plotting

    plt = _plt()
    vals = np.nan_to_num(np.asarray(r, dtype=np.float32), nan=0.0)
    img = nib.Nifti1Image(_unmask(mask, vals, fill=0.0), np.asarray(affine, dtype=np.float64))
    if vmax is None:
        finite = np.abs(np.asarray(r, dtype=np.float64))
        finite = finite[np.isfinite(finite)]
        vmax = max(0.1, float(np.percentile(finite, 99))) if finite.size else 0.5
    bg, note = None, ""
    if isinstance(background, str) and background == "mni":
        bg, note = mni_background(np.asarray(affine), mask.shape, space)
        title = _with_note(title, note)
    elif background is not None:
        bg = background
    if cut not in ("peak", "centre"):
        raise Eeg2fmriInputError(f"plot_r_map: expected cut 'peak' or 'centre', got {cut!r}.")
    centre = _cut_centre(mask, affine, r if cut == "peak" else None)
    fig = plt.figure(figsize=(9, 3.4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's notes on resampling and colour bars
        disp = plotting.plot_stat_map(img, bg_img=bg, display_mode="ortho", cut_coords=tuple(centre[:3]), cmap="RdBu_r", vmax=vmax,
                                      symmetric_cbar=True, colorbar=True, title=title or None, figure=fig, draw_cross=False, black_bg=False,
                                      annotate=True)
        disp.savefig(str(out), dpi=90)
        disp.close()
    plt.close(fig)
    return out


def timecourse_picks(r: np.ndarray, rank_r: np.ndarray | None = None) -> list[tuple[str, int]]:
    """The best, median and worst voxel (index) by ``rank_r`` (default ``r``), among voxels with a finite value."""
    key = np.asarray(r if rank_r is None else rank_r, dtype=np.float64)
    ok = np.where(np.isfinite(key))[0]
    order = ok[np.argsort(key[ok], kind="stable")] if len(ok) else np.arange(len(key))
    return [("best", int(order[-1])), ("median", int(order[(len(order) - 1) // 2])), ("worst", int(order[0]))]


def plot_timecourses(measured: np.ndarray, predicted: np.ndarray, r: np.ndarray, tr: float, out: Path, title: str = "", *,
                     halfwidth: np.ndarray | None = None, level: float | None = None, rank_r: np.ndarray | None = None) -> Path:
    """Measured vs predicted time courses of the best, median and worst voxels by test r.

    Parameters
    ----------
    measured, predicted : array, shape (n_times, n_voxels)
    r : array, shape (n_voxels,)
    tr : float
        Seconds between time points.
    out : Path
    title : str
    halfwidth : array, shape (n_voxels,) | None
        Half-width of a calibrated prediction interval per voxel (e.g. the
        split-conformal half-width from the validation windows, in target
        units). Given: the prediction is drawn as is with the band
        ``prediction +/- halfwidth``. None: no band, and the prediction is
        rescaled to the measured standard deviation so that its shape can be
        compared (the caption says so).
    level : float | None
        Nominal coverage of the band, for the legend (e.g. 0.8).
    rank_r : array, shape (n_voxels,) | None
        r the voxels are ranked by (e.g. the mean over the test subjects: the best of thousands of one run's r
        over a short span is often a noise voxel); default ``r``. Both are on the axis labels.
    """
    plt = _plt()
    picks = timecourse_picks(r, rank_r)
    t = np.arange(measured.shape[0]) * tr
    fig, axes = plt.subplots(len(picks), 1, figsize=(8, 6.4), sharex=True)
    for ax, (what, v) in zip(axes, picks):
        ax.plot(t, measured[:, v], color="k", lw=1, label="measured")
        if halfwidth is not None and np.isfinite(halfwidth[v]):
            ax.fill_between(t, predicted[:, v] - halfwidth[v], predicted[:, v] + halfwidth[v], color="C3", alpha=0.2, lw=0,
                            label=f"{level:.0%} interval" if level is not None else "interval")
            ax.plot(t, predicted[:, v], color="C3", lw=1, label="predicted")
        else:
            ax.plot(t, predicted[:, v] / max(predicted[:, v].std(), 1e-6) * measured[:, v].std(), color="C3", lw=1, label="predicted (rescaled)")
        label = f"{what}: r={r[v]:.2f}" if np.isfinite(r[v]) else what
        if rank_r is not None and np.isfinite(rank_r[v]):
            label += f"\n(ranked: {rank_r[v]:.2f})"
        ax.set_ylabel(label)
    axes[0].legend(loc="upper right", fontsize=8, ncol=3)
    axes[-1].set_xlabel("time in test span (s)")
    fig.suptitle(fit_title(fig, title + ("" if halfwidth is not None else " (no calibrated intervals: prediction rescaled, no band)"), 12))
    fig.tight_layout()
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_volumes_mni(mask: np.ndarray, affine: np.ndarray, measured: np.ndarray, predicted: np.ndarray, out: Path, title: str = "", *,
                     r: np.ndarray | None = None, space: str | None = None) -> Path:
    """One measured and one synthesised volume over the MNI152 template (where the grid is in MNI space), world coordinates,
    on one colour scale -- or each on its own where the synthesised one's fluctuations are under a quarter of the measured
    one's (its panel title gives the ratio).

    The slices go through the voxel of highest test ``r`` when it is given (where the model
    follows the measurement: a focal effect is on the figure), otherwise through the mask's centroid.

    Parameters
    ----------
    mask : array of bool, shape (X, Y, Z)
    affine : array, shape (4, 4)
        Voxel-to-world affine of the grid; the template is drawn only where
        ``space`` allows it (:func:`mni_background`).
    measured, predicted : array, shape (n_voxels,)
        One volume each, in the same (standardised) units.
    out : Path
        PNG to write.
    r : array, shape (n_voxels,) | None
        Voxel-wise test r (chooses the slices).
    space : "mni" | "native" | None
        The grid's space as its files say it (``PreparedDataset.space``); the title notes a template left out or assumed.
    """
    import nibabel as nib
    from nilearn import plotting

    plt = _plt()
    lim_m = float(np.nanpercentile(np.abs(np.asarray(measured, dtype=np.float64)), 99)) or 1.0
    lim_p = float(np.nanpercentile(np.abs(np.asarray(predicted, dtype=np.float64)), 99)) or 1.0
    lim = max(lim_m, lim_p)
    # a prediction whose fluctuations are far smaller than the measurement's (shrunk where the model predicts little)
    # would be blank on the shared scale (user test 9): then each panel gets its own scale, and the panel says so
    own = lim_p < 0.25 * lim_m
    bg, note = mni_background(np.asarray(affine), mask.shape, space)
    centre = _cut_centre(mask, affine, r)
    fig, axes = plt.subplots(2, 1, figsize=(9, 6.6))
    panels = (("measured (z)", measured, lim_m if own else lim),
              (f"synthesised (z; own colour scale: its 99th percentile |value| is {lim_p / lim_m:.2g}x the measured one's)" if own
               else "synthesised (z)", predicted, lim_p if own else lim))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nilearn's notes on resampling and colour bars
        for ax, (name, vals, vmax) in zip(axes, panels):
            img = nib.Nifti1Image(_unmask(mask, np.nan_to_num(np.asarray(vals, dtype=np.float32)), fill=0.0), np.asarray(affine, dtype=np.float64))
            disp = plotting.plot_stat_map(img, bg_img=bg, display_mode="ortho", cut_coords=tuple(centre[:3]), cmap="RdBu_r", vmax=vmax,
                                          symmetric_cbar=True, colorbar=True, title=name, axes=ax, draw_cross=False, black_bg=False, annotate=True)
            del disp
    fig.suptitle(fit_title(fig, _with_note(title, note), 12))
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def plot_r_distributions(rs: dict[str, np.ndarray], out: Path, title: str = "") -> Path:
    """Histograms of voxel-wise r (one line per predictor).

    Parameters
    ----------
    rs : dict
        Label -> voxel r (NaN ignored), e.g. the model, ``ridge_hrf`` and their shifted nulls.
    out : Path
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    bins = np.linspace(-1, 1, 81)
    for k, (label, r) in enumerate(rs.items()):
        v = np.asarray(r, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        style = "--" if "null" in label else "-"
        ax.hist(v, bins=bins, histtype="step", lw=1.5, ls=style, color=f"C{k}", density=True, label=f"{label} (pooled median {np.median(v):.3f})")
    ax.axvline(0, color="0.5", lw=0.8)
    ax.set_xlabel("voxel-wise test r")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    ax.set_title(fit_title(fig, title, 12))
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_subject_r(per_subject: dict[str, dict], names: list[str], out: Path, title: str = "") -> Path:
    """Per-subject median r with bootstrap CIs for several predictors.

    Parameters
    ----------
    per_subject : dict
        ``results["per_subject"]`` of an evaluation.
    names : list of str
        Predictors to show (those with an r).
    out : Path
    """
    plt = _plt()
    subs = sorted(per_subject)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(subs) + 2.5), 3.4))
    width = 0.8 / max(1, len(names))
    x = np.arange(len(subs))
    for k, nm in enumerate(names):
        med = np.array([per_subject[s]["models"][nm].get("median_r", np.nan) for s in subs], dtype=float)
        ci = np.array([per_subject[s]["models"][nm].get("median_r_ci", [np.nan, np.nan]) for s in subs], dtype=float).reshape(-1, 2)
        err = np.vstack([med - ci[:, 0], ci[:, 1] - med])
        err = np.where(np.isfinite(err), np.maximum(err, 0), 0)
        ax.errorbar(x + (k - (len(names) - 1) / 2) * width, med, yerr=err, fmt="o", capsize=3, label=nm, color=f"C{k}")
    ceil = [per_subject[s].get("ceilings", {}).get("noise_median_r") for s in subs]
    if all(c is not None for c in ceil) and subs:
        ax.scatter(x, ceil, marker="_", s=200, color="0.3", label="noise ceiling")
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(subs, rotation=45 if len(subs) > 8 else 0)
    ax.set_ylabel("median voxel r (95% CI)")
    ax.legend(fontsize=7)
    ax.set_title(fit_title(fig, title, 12))
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


# --------------------------------------------------------------------------- reports


def _relative(figure: Path | str, folder: Path | str) -> str:
    """Link of a figure in ``folder``'s report: its path below the folder (e.g. ``insight/hrfs.png``), else its name."""
    try:
        return Path(figure).resolve().relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return Path(figure).name


def write_report(out_dir: Path, table: str, figures: list[Path], metrics: dict[str, Any], title: str = "eeg2fmri report") -> Path:
    """Write ``report.md`` with the summary table and figures (quickstart)."""
    lines = [f"# {title}", "", "All numbers are measured on held-out test data (see the protocol below).", "", "```", table, "```", ""]
    for f in figures:
        lines += [f"![{Path(f).stem}]({_relative(f, out_dir)})", ""]
    lines += ["## Protocol", "", f"- protocol: {metrics.get('protocol')}", f"- split: {metrics.get('split')}", ""]
    p = Path(out_dir) / "report.md"
    p.write_text("\n".join(lines), encoding="utf-8")
    return p


def _f(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ci(v: Any) -> str:
    if not v or any(x is None or not math.isfinite(x) for x in v):
        return "—"
    return f"[{v[0]:.3f}, {v[1]:.3f}]"


def _p(v: Any) -> str:
    if v is None or not math.isfinite(v):
        return "—"
    return f"{v:.3f}" if v >= 0.001 else "<0.001"


def _reference_line(results: dict[str, Any]) -> str:
    ref = results.get("reference", {}) or {}
    if not ref.get("available", True):
        return "not available: " + str(ref.get("reason"))
    return ref.get("note") or "fitted on the same training windows, scored on the same test windows"


def _block_lens(results: dict[str, Any]) -> str:
    lens = sorted({ps["bootstrap"]["block_len"] for ps in results["per_subject"].values() if "bootstrap" in ps})
    bl = results["settings"]["block_len"]
    how = "given" if isinstance(bl, int) else "max(ceil(16 s / TR), round(n ** (1/3)))"
    return (", ".join(map(str, lens)) + f" volumes ({how})") if lens else "none (no bootstrap)"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


#: Marks an ROI r that does not exceed its time-shifted null (``roi_rows``); :data:`ROI_NULL_NOTE` explains it.
ROI_NULL_MARK = "°"
ROI_NULL_NOTE = (f"{ROI_NULL_MARK} not above the level of a 5 % test against every circular shift of the ROI's prediction within "
                 "each test run (over several test subjects: of their mean r, against the mean of one shift drawn per subject): chance level for series this slow and test spans this short -- a "
                 "span shorter than a few task cycles cannot pass it (longer test spans: a larger test share of each run, or "
                 "whole held-out subjects)")
#: :data:`ROI_NULL_NOTE` where the test spans already are whole held-out subjects (LOSO, k-fold, subject splits).
ROI_NULL_NOTE_SUBJECTS = (f"{ROI_NULL_MARK} not above the level of a 5 % test against every circular shift of the ROI's prediction "
                          "within each test run (over several test subjects: of their mean r, against the mean of one shift drawn per "
                          "subject): the test spans are whole held-out subjects, so a region marked so is not predicted from this "
                          "EEG by this model (or its effect is too weak for these recordings)")


def roi_null_note(results: dict[str, Any]) -> str:
    """The sentence explaining :data:`ROI_NULL_MARK`, with advice that fits the protocol (user test 48: "whole held-out
    subjects" was advised under a LOSO benchmark)."""
    split = results.get("split") if isinstance(results.get("split"), dict) else {}
    protocol = results.get("protocol") or split.get("protocol")
    # (user test 54: a cross-dataset benchmark records "cross-dataset" and got the short-test-span advice)
    return ROI_NULL_NOTE_SUBJECTS if protocol in ("loso", "kfold", "subjects", "cross", "cross-dataset") else ROI_NULL_NOTE


def _floats(v: list) -> np.ndarray:
    """(metrics.json read back holds None for NaN.)"""
    return np.array([np.nan if x is None else float(x) for x in v], dtype=float)


def roi_at_chance(results: dict[str, Any], name: str) -> dict[str, bool]:
    """Per ROI key of ``name``'s ROI r: whether it is at chance level (the mark :data:`ROI_NULL_MARK`); ROIs without a
    null (test spans too short) are left out.

    Over several test subjects: the ROI's mean r over the subjects with a null must exceed the group's level
    (``group.models[name].roi_null_p95``: a 5 % test of that mean against the mean of one circular shift drawn per
    subject, :func:`eeg2fmri.evaluation.protocol.group_roi_null_levels`). One subject, or results written before that
    level existed: the mean r against the mean of the subjects' own levels, over the same subjects."""
    g = (results.get("group") or {}).get("models", {}).get(name) or {}
    lev, rw = g.get("roi_null_p95") or {}, g.get("roi_r_subjects_with_null") or {}
    pairs: dict[str, list[tuple[float, float]]] = {}
    for s_ in sorted(results.get("per_subject", {})):
        m = results["per_subject"][s_].get("models", {}).get(name, {})
        nulls = m.get("roi_null_p95") or {}
        for k, v in (m.get("roi_r") or {}).items():
            if k in nulls:
                a, b = _floats([v, nulls[k]])
                if np.isfinite(a) and np.isfinite(b):
                    pairs.setdefault(k, []).append((float(a), float(b)))
    out: dict[str, bool] = {}
    for k in set(pairs) | set(lev):
        gl, gr = _floats([lev.get(k), rw.get(k)])
        if np.isfinite(gl) and np.isfinite(gr):
            out[k] = not gr > gl
        elif pairs.get(k):
            out[k] = not np.mean([a for a, _ in pairs[k]]) > np.mean([b for _, b in pairs[k]])
    return out


def roi_rows(results: dict[str, Any], names: list[str]) -> tuple[list[list[str]], int]:
    """Rows ``[ROI (with its name), voxels, r of each model]`` of the per-ROI r (mean over test subjects) and the number of
    test subjects; no rows without ROI scores. An ROI at chance level (:func:`roi_at_chance`) ends in
    :data:`ROI_NULL_MARK`."""
    subs = sorted(results.get("per_subject", {}))
    per: dict[str, dict[str, list[float]]] = {nm: {} for nm in names}
    for s_ in subs:
        for nm in names:
            m = results["per_subject"][s_].get("models", {}).get(nm, {})
            for k, v in (m.get("roi_r") or {}).items():
                per[nm].setdefault(k, []).append(v)
    chance = {nm: roi_at_chance(results, nm) for nm in names}
    keys = sorted({k for d in per.values() for k in d}, key=lambda k: (len(k), k))
    roi_names = results.get("settings", {}).get("roi_names") or {}
    counts = results.get("settings", {}).get("roi_voxels") or {}

    def cell(nm: str, k: str) -> str:
        vals = _floats(per[nm].get(k) or [])
        if not len(vals) or not np.isfinite(vals).any():
            return "—"
        return _f(float(np.nanmean(vals))) + (ROI_NULL_MARK if chance[nm].get(k, False) else "")

    rows = [[k + (f" {roi_names[k]}" if k in roi_names else ""), str(counts.get(k, "")), *(cell(nm, k) for nm in names)] for k in keys]
    return rows, len(subs)


def roi_null_missing(results: dict[str, Any], names: list[str]) -> list[str]:
    """Models with per-ROI r but no per-ROI shifted null in any test subject (test spans too short for the shifts)."""
    subs = results.get("per_subject", {})
    out = []
    for nm in names:
        ms = [subs[s_].get("models", {}).get(nm, {}) for s_ in subs]
        if any(m.get("roi_r") for m in ms) and not any(m.get("roi_null_p95") for m in ms):
            out.append(nm)
    return out


def roi_null_missing_note(missing: list[str]) -> str:
    """The sentence under a per-ROI table for models without a per-ROI null (user test 17: a control region's r 0.38 on
    short test spans went unmarked)."""
    return (f"No time-shifted null could be formed for {', '.join(missing)} (test spans too short for a 5 % test over circular "
            "shifts: under 20 volumes): these ROI r cannot be told from chance (a user test's region the EEG could not "
            "see reached r 0.38 on such spans); hold out longer test spans")


def roi_table(results: dict[str, Any], names: list[str]) -> list[str]:
    """Per-ROI r of each model (mean over test subjects), with the ROI's name (a TSV beside the atlas) and voxel count."""
    rows, n_subs = roi_rows(results, names)
    if not rows:
        return []
    title = "ROI r per ROI" + (f" (mean over {n_subs} test subjects)" if n_subs > 1 else "")
    note = [f"{roi_null_note(results)}.", ""] if any(c.endswith(ROI_NULL_MARK) for r in rows for c in r[2:]) else []
    missing = roi_null_missing(results, names)
    if missing:
        note += [f"{roi_null_missing_note(missing)}.", ""]
    note += roi_multiplicity_note(results, names, len(rows))
    extra = roi_per_subject_table(results, names) if n_subs > 1 else []
    if all(r[1] == "" for r in rows):  # regions without voxels here (region tables): no voxel column
        return [f"### {title}", ""] + _table(["ROI", *names], [[r[0], *r[2:]] for r in rows]) + [""] + note + extra
    return [f"### {title}", ""] + _table(["ROI", "voxels", *names], rows) + [""] + note + extra


def roi_multiplicity_note(results: dict[str, Any], names: list[str], n_rois: int) -> list[str]:
    """Lines saying that every ROI is its own uncorrected 5 % test (user test 45: an ROI no subject's signal reached was
    marked above chance among 10, and nothing said about 0.5 expected by chance), and naming ROIs whose mean r lies below
    minus their chance level (predicted with the opposite sign: the held-out subjects' own foci at r -0.3 went unsaid)."""
    out: list[str] = []
    if n_rois >= 5:
        out.append(f"Each of the {n_rois} ROIs is tested on its own at 5 % (uncorrected): about {0.05 * n_rois:.1f} of them pass per "
                   "model where the EEG predicts nothing; read a single ROI above chance among many with that in mind.")
        out.append("")
    roi_names = results.get("settings", {}).get("roi_names") or {}
    for nm in names:
        g = (results.get("group") or {}).get("models", {}).get(nm) or {}
        lev, rw = g.get("roi_null_p95") or {}, g.get("roi_r_subjects_with_null") or {}
        below = []
        for k in sorted(set(lev) & set(rw), key=lambda k: (len(k), k)):
            a, b = _floats([rw[k], lev[k]])
            if np.isfinite(a) and np.isfinite(b) and b > 0 and a < -b:
                below.append(f"{k}{(' ' + roi_names[k]) if k in roi_names else ''} ({_f(float(a))})")
        if below:
            out.append(f"{nm}: ROI r below minus its chance level (predicted with the opposite sign, beyond chance): {', '.join(below[:10])}"
                       + (f" and {len(below) - 10} more" if len(below) > 10 else "") + ".")
            out.append("")
    return out


def roi_per_subject_table(results: dict[str, Any], names: list[str]) -> list[str]:
    """Each test subject's best ROI per model, with its r and the subject's own 5 % level for that ROI (user test 45: the
    mean over subjects hid that every subject's own focus, a different ROI each, was predicted at r 0.46-0.86)."""
    subs = sorted(results.get("per_subject", {}))
    roi_names = results.get("settings", {}).get("roi_names") or {}
    rows = []
    for s_ in subs:
        cells = []
        for nm in names:
            m = results["per_subject"][s_].get("models", {}).get(nm, {})
            rr = {k: float(v) for k, v in (m.get("roi_r") or {}).items() if np.isfinite(_floats([v])[0])}
            if not rr:
                cells.append("—")
                continue
            k = max(rr, key=rr.get)
            lev = _floats([(m.get("roi_null_p95") or {}).get(k)])[0]
            cells.append(f"{k}{(' ' + roi_names[k]) if k in roi_names else ''} {_f(rr[k])}"
                         + (f" (chance {_f(float(lev))}{'' if rr[k] > lev else ', ' + ROI_NULL_MARK})" if np.isfinite(lev) else ""))
        rows.append([s_, *cells])
    if not rows:
        return []
    return (["#### Best ROI per test subject", "",
             "Each subject's highest ROI r per model, with that subject's own 5 % chance level for the ROI (regions that differ "
             "between subjects vanish from the mean above; the highest of several ROIs passes its own level by chance more often "
             "than 5 %: a selection).", ""]
            + _table(["subject", *names], rows) + [""])


#: Fewer outputs than this: the median over outputs (and its bootstrap) is said to be unreliable.
FEW_OUTPUTS = 10


def chance_verdict(results: dict[str, Any], model: str) -> str | None:
    """What the time-shifted null says about ``model``'s median r, where it says something a reader must not miss.

    Parameters
    ----------
    results : dict
        An evaluation's results (``metrics.json``).
    model : str
        A model of ``results["group"]["models"]``.

    Returns
    -------
    str or None
        "the model's median r does not exceed that level: ... not distinguishable from chance ..." where the median r is at
        or below the 5 % level over every circular shift; "no null distribution could be formed ..." where the test spans
        are too short for one; ``None`` otherwise (the model exceeds its chance level, or it has no median r).
    """
    m = ((results.get("group") or {}).get("models") or {}).get(model)
    if not isinstance(m, dict):
        return None
    targets = (results.get("settings") or {}).get("targets", "voxels")
    p95, v = m.get("null_p95_median_r"), m.get("median_r")
    if isinstance(m.get("median_r_subjects_with_null"), float):  # the level is over the subjects with a null: compare theirs
        v = m["median_r_subjects_with_null"]
    if not (isinstance(v, float) and np.isfinite(v)):
        return None
    if isinstance(p95, float) and np.isfinite(p95):
        if v > p95:
            return None
        return ("the model's median r does not exceed that level: "
                + ("over the whole mask it is not distinguishable from chance on these data" if targets == "voxels" else
                   "over all the regions' median it is not distinguishable from chance on these data; see each region's r "
                   "against its own level below"))
    # test runs too short for shifts well away from alignment (user test 9)
    shortest = min((int(ps.get("n_test", 0)) for ps in (results.get("per_subject") or {}).values()), default=0)
    return (f"no null distribution could be formed (the shortest test span has {shortest} volumes: too few for a 5 % test "
            "over circular shifts, which needs 20), so these data cannot tell whether the model exceeds chance"
            + (" -- and its median r is within 0.01 of its half-run shift's" if isinstance(m.get("null_median_r"), float)
               and v <= m["null_median_r"] + 0.01 else "")
            + "; hold out longer test spans (split fractions) or more runs")


def evaluation_markdown(results: dict[str, Any], figures: list[Path], *, title: str, model: str | None = None, extra: dict[str, Any] | None = None,
                        folder: str | os.PathLike | None = None) -> str:
    """The Markdown text of an evaluation report (see :func:`write_evaluation_report`)."""
    g = results["group"]
    names = results["models"]
    ref = results["roles"]["reference"]
    base = results["roles"]["baseline"]
    model = model or next((n for n in names if n not in (ref, base)), ref)
    subs = sorted(results["per_subject"])
    gm = g["models"]
    lines = [f"# {title}", ""]
    m = gm.get(model, {})
    targets = results.get("settings", {}).get("targets", "voxels")
    where = "in the brain mask" if targets == "voxels" else f"over the {targets} the data were prepared on"
    sent = (f"On held-out test data ({results['protocol']} protocol, {len(subs)} test subject(s)), **{model}** reaches a median "
            f"{'voxel-wise ' if targets == 'voxels' else ''}r of {_f(m.get('median_r'))} {_ci(m.get('median_r_ci'))} (mean over subjects of the "
            f"per-subject median {where})")
    if ref and ref != model and ref in gm:
        pr = g.get("paired", {}).get(model, {})
        sent += (f"; the reference ridge_hrf reaches {_f(gm[ref].get('median_r'))} {_ci(gm[ref].get('median_r_ci'))}, a difference of "
                 f"{_f(pr.get('diff_median_r'))} {_ci([pr.get('low'), pr.get('high')] if pr else None)} (paired block bootstrap, p = {_p(pr.get('p_value'))})")
        n_out = min((int(ps.get("n_voxels", 0)) for ps in results.get("per_subject", {}).values()), default=0)
        if 0 < n_out < FEW_OUTPUTS:  # (user test 33: +0.109 [-0.246, 0.152], p = 0.985 over 3 ROIs)
            sent += (f" -- over only {n_out} outputs the median jumps from one output's r to another's under resampling, so this interval "
                     "and p are unreliable: compare the outputs' own r below")
    elif not results.get("reference", {}).get("available", True):
        sent += f"; the reference ridge_hrf is not available here: {results['reference'].get('reason')}"
    sent += f". Its time-shifted null reaches {_f(m.get('null_median_r'))}"
    p95 = m.get("null_p95_median_r")
    if isinstance(p95, float) and np.isfinite(p95):
        sent += f" (half a run away; a 5 % test over every circular shift sets the level {_f(p95)})"
    verdict = chance_verdict(results, model)
    if verdict:
        sent += f"; **{verdict}**"
    sent += "."
    if "ceilings" in g:
        sent += (f" On this simulated data the noise ceiling is {_f(g['ceilings']['noise_median_r'])} and the oracle (EEG-visible) ceiling "
                 f"{_f(g['ceilings']['oracle_median_r'])}; the model reaches {_f(m.get('fraction_of_oracle'))} of the oracle ceiling.")
    two_level = "bootstrap" in g  # (user test 21: the sentence said "subjects fixed" where metrics.json resampled them)
    units = (results.get("settings") or {}).get("units") or "BOLD detrended per span and standardised with the training span's scale (z)"
    lines += [sent, "", "Intervals are 95% block-bootstrap intervals over time (per subject; for means over subjects, "
              + ("a two-level bootstrap: subjects resampled, then each drawn subject's block-bootstrap draw" if two_level else
                 "the per-subject draws averaged, subjects fixed") + f"). Units: {units}.", ""]
    lines += ["## Models, reference and baselines (means over test subjects)", ""]
    head = ["", "median r", "95% CI", "shifted-null r", "R²", "RMSE", "MAE", "SSIM (3D, mask)", "PSNR (dB)", "÷ noise ceiling", "÷ oracle"]
    rows = []
    for nm in names:
        mm = gm[nm]
        label = nm + (" (reference)" if nm == ref else " (subject-mean baseline)" if nm == base else "")
        rows.append([label, _f(mm.get("median_r")) if nm != base else "undefined (constant)", _ci(mm.get("median_r_ci")), _f(mm.get("null_median_r")),
                     _f(mm.get("r2")), _f(mm.get("rmse")), _f(mm.get("mae")), _f(mm.get("ssim")), _f(mm.get("psnr"), 1),
                     _f(mm.get("fraction_of_noise")), _f(mm.get("fraction_of_oracle"))])
    if "ceilings" in g:
        rows.append(["noise ceiling (ground truth)", _f(g["ceilings"]["noise_median_r"])] + ["—"] * (len(head) - 2))
        rows.append(["oracle ceiling (EEG-visible part)", _f(g["ceilings"]["oracle_median_r"])] + ["—"] * (len(head) - 2))
    lines += _table(head, rows) + [""]
    if any(gm[nm].get("roi_median_r") is not None for nm in names):
        lines += [f"ROI r (ROI-average series, {results['settings'].get('n_rois')} ROIs): " + ", ".join(
            f"{nm} median {_f(gm[nm].get('roi_median_r'))}" for nm in names if gm[nm].get("roi_median_r") is not None), ""]
        lines += roi_table(results, [nm for nm in names if gm[nm].get("roi_median_r") is not None])
    if g.get("paired"):
        lines += ["## Paired comparison with the reference (same resampled blocks)", ""]
        lines += _table(["model", "Δ median r vs ridge_hrf", "95% CI", "p (two-sided)"],
                        [[nm, _f(pr["diff_median_r"]), _ci([pr["low"], pr["high"]]), _p(pr["p_value"])] for nm, pr in g["paired"].items()]) + [""]
    lines += ["## Per subject", ""]
    head = ["subject", "runs", "test volumes"] + [f"{nm} r [95% CI]" for nm in names if nm != base]
    if ref and model in g.get("paired", {}):
        head += ["Δ vs ridge_hrf [95% CI], p"]
    head += [f"{nm} RMSE" for nm in names] + ["data range (p1-p99)"]
    if "ceilings" in g:
        head += ["noise / oracle ceiling"]
    rows = []
    for s in subs:
        ps = results["per_subject"][s]
        row = [s, str(len(ps["runs"])), str(ps["n_test"])]
        row += [f"{_f(ps['models'][nm].get('median_r'))} {_ci(ps['models'][nm].get('median_r_ci'))}" for nm in names if nm != base]
        if ref and model in g.get("paired", {}):
            pr = ps.get("paired", {}).get(model)
            row.append(f"{_f(pr['diff_median_r'])} {_ci([pr['low'], pr['high']])}, p = {_p(pr['p_value'])}" if pr else "—")
        row += [_f(ps["models"][nm].get("rmse")) for nm in names]
        row.append(f"{ps['data_range']['value']:.3f} ({ps['data_range']['low']:.2f} to {ps['data_range']['high']:.2f})")
        if "ceilings" in g:
            c = ps.get("ceilings", {})
            row.append(f"{_f(c.get('noise_median_r'))} / {_f(c.get('oracle_median_r'))}")
        rows.append(row)
    lines += _table(head, rows) + [""]
    lines += ["## Peers' own metrics (their definitions, for comparison with published numbers only)", "",
              "`calhas_rmse`: RMSE over the whole grid including the background, per volume, averaged; `calhas_ssim`: slice-wise 2D SSIM "
              "with their per-slice data range (Calhas & Henriques, EEG-to-fMRI). Both reward reproducing the mean anatomy and the "
              "empty background; they are computed on unmasked volumes (zero outside the brain mask) and are not our metrics.", ""]
    lines += _table(["", "calhas_rmse", "calhas_ssim"], [[nm, _f(gm[nm].get("calhas_rmse")), _f(gm[nm].get("calhas_ssim"))] for nm in names]) + [""]
    if figures:
        lines += ["## Figures", ""]
        for f in figures:
            lines += [f"![{Path(f).stem}]({_relative(f, folder) if folder is not None else Path(f).name})", ""]
    st = results["settings"]
    sp = results.get("split", {})
    lines += ["## Protocol and settings", "",
              f"- protocol: {results['protocol']}" + (f" ({len(results['folds'])} folds)" if results.get("folds") and len(results["folds"]) > 1 else ""),
              f"- split: window {sp.get('n_frames')} samples of the EEG representation, lag {sp.get('lag')}, gap {sp.get('gap_volumes')} volumes "
              f"between spans; {sp.get('n_train')} training, {sp.get('n_val')} validation, {sp.get('n_test')} test windows"
              + (" (first fold)" if results.get("folds") and len(results["folds"]) > 1 else "")
              + (f"; {volumes_line(sp['volumes'], sp.get('tr'))}" if "volumes" in sp else ""),
              f"- reference ridge_hrf: {_reference_line(results)}",
              f"- bootstrap: {st['n_boot']} circular block resamples per subject, block length {_block_lens(results)}, {st['ci']:.0%} percentile intervals",
              f"- SSIM: 3D, {st['ssim_window']}, averaged over the brain mask and over at most {st['ssim_volumes_max']} evenly spaced test volumes per subject; "
              f"data range of SSIM and PSNR: {st['data_range']} (values in the per-subject table)",
              f"- units: {st['units']}",
              f"- null: {results['roles']['null']}"]
    for k, v in (extra or {}).items():
        lines.append(f"- {k}: {v}")
    return "\n".join(lines) + "\n"


def write_evaluation_report(out_dir: str | os.PathLike, results: dict[str, Any], figures: list[Path], *, title: str = "eeg2fmri evaluation",
                            model: str | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write ``report.md`` (the HTML page is :func:`eeg2fmri.workflows.report.build_report`).

    Parameters
    ----------
    out_dir : path-like
        Folder holding the figures; the report goes next to them.
    results : dict
        From :func:`~eeg2fmri.evaluation.protocol.evaluate_models` (or merged folds).
    figures : list of Path
        PNG files in ``out_dir`` or a folder below it (linked by their path relative to ``out_dir``).
    title : str
    model : str | None
        The model the summary sentence is about (default: the first that is
        neither the reference nor the baseline).
    extra : dict | None
        More "key: value" lines for the settings section.

    Returns
    -------
    report : Path
        ``report.md``.
    """
    out_dir = Path(out_dir)
    text = evaluation_markdown(results, figures, title=title, model=model, extra=extra, folder=out_dir)
    md = out_dir / "report.md"
    md.write_text(text, encoding="utf-8")
    return md
