"""One self-contained HTML page from a run or benchmark folder (``eeg2fmri report``).

What the folder holds decides what the page shows:

* ``metrics.json`` (quickstart / evaluate / benchmark): the summary numbers as
  a table (quickstart's ``summary``, or one row per model of an evaluation's
  ``group``), the timings and the printed summary table;
* ``leaderboard.json`` (benchmark): the leaderboard rows (name, role, median r,
  its 95% CI, ...) and a forest plot of median r with its CI per model;
* every ``*.png`` in the folder and its subfolders, captioned with its path;
* ``model/MODEL_CARD.md`` or ``MODEL_CARD.md`` as preformatted text;
* an r-map NIfTI (``evaluation/r_map_*.nii.gz`` or ``r_map*.nii.gz``) drawn
  over the MNI152 template where its header says MNI (or says nothing and the grid lies where the MNI brain is).

The last section, "Not shown", lists what the folder did not have.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.plotting.html import Image, Preformatted, is_our_page, write_html
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["build_report", "find_coverages", "plot_calibration", "plot_forest"]

#: Leaderboard columns shown, in this order (those present in at least one row).
_LEADER_COLS = ("name", "role", "median_r", "median_r_ci", "null_median_r", "r2", "rmse", "fraction_of_oracle", "fraction_of_noise",
                "diff_vs_reference", "diff_ci", "p_value", "coverage_80", "nll_laplace", "fit_seconds", "n_params", "error")


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _ci(v: Any) -> tuple[float, float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2 and all(_is_num(x) for x in v):
        return float(v[0]), float(v[1])
    return None


def plot_forest(rows: list[dict[str, Any]], title: str = "") -> bytes | None:
    """A forest plot of median r with its 95% CI, one line per leaderboard row.

    Parameters
    ----------
    rows : list of dict
        Leaderboard rows with ``name``, ``median_r`` and (optionally)
        ``median_r_ci`` = ``[low, high]``.
    title : str

    Returns
    -------
    png : bytes | None
        The figure as PNG bytes; None when no row has a finite median r.
    """
    pts = [(str(r.get("name", "?")), float(r["median_r"]), _ci(r.get("median_r_ci"))) for r in rows if _is_num(r.get("median_r"))]
    if not pts:
        return None
    with _png_figure((7.0, 0.45 * len(pts) + 1.4)) as (ax, png):
        ys = np.arange(len(pts))[::-1]
        for y, (_, r, ci) in zip(ys, pts):
            if ci is not None:
                ax.plot(ci, [y, y], color="tab:blue", lw=2)
            ax.plot([r], [y], "o", color="tab:blue" if ci is not None else "tab:gray")
        ax.axvline(0.0, color="k", lw=0.8, ls="--")
        ax.set_yticks(ys)
        ax.set_yticklabels([n for n, _, _ in pts])
        ax.set_xlabel("median test r (line: 95% CI)")
        if title:
            ax.set_title(title)
    return png[0]


@contextlib.contextmanager
def _png_figure(figsize: tuple[float, float]) -> Iterator[tuple[Any, list[bytes]]]:
    """One matplotlib (Agg) axes to draw on; on leaving, the figure as PNG bytes in the yielded list, and closed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    png: list[bytes] = []
    try:
        yield ax, png
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=90)
        png.append(buf.getvalue())
    finally:
        plt.close(fig)


def find_coverages(obj: Any, label: str = "") -> list[tuple[str, list[float], list[float]]]:
    """Every measured interval coverage in a metrics document.

    Looks for mappings with ``levels`` and ``coverage`` of equal length (what
    :func:`eeg2fmri.evaluation.uncertainty.conformal_coverage` returns) at any depth.

    Returns
    -------
    list of (label, levels, coverage)
        ``label`` is the key path to the mapping (e.g. ``"conformal"``).
    """
    found: list[tuple[str, list[float], list[float]]] = []
    if isinstance(obj, dict):
        lv, cv = obj.get("levels"), obj.get("coverage")
        if isinstance(lv, list) and isinstance(cv, list) and len(lv) == len(cv) > 0 and all(_is_num(v) for v in lv + cv):
            found.append((label or "intervals", [float(v) for v in lv], [float(v) for v in cv]))
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                found += find_coverages(v, f"{label}.{k}" if label else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            if isinstance(v, (dict, list)):
                found += find_coverages(v, f"{label}[{i}]")
    return found


#: Numbers shown next to each coverage curve when its mapping holds them (see evaluation.uncertainty).
_CALIBRATION_EXTRAS = ("temperature", "nll_laplace", "nll_laplace_uncalibrated", "nll_laplace_shared_scale", "nll_gaussian", "scale_error_spearman")


def _calibration_extras(doc: Any, label: str) -> dict[str, float]:
    """NLL, temperature and scale-error correlation of the coverage mapping at key path ``label`` (if any)."""
    node = doc
    for key in label.split("."):
        if not isinstance(node, dict) or key not in node:
            return {}
        node = node[key]
    if not isinstance(node, dict):
        return {}
    return {k: round(float(node[k]), 3) for k in _CALIBRATION_EXTRAS if _is_num(node.get(k))}


def plot_calibration(curves: list[tuple[str, list[float], list[float]]]) -> bytes:
    """Calibration curve(s): nominal vs measured coverage of the prediction intervals (diagonal = calibrated).

    Parameters
    ----------
    curves : list of (label, levels, coverage)
        As :func:`find_coverages` returns; levels and coverage in [0, 1].

    Returns
    -------
    png : bytes
    """
    with _png_figure((4.2, 4.0)) as (ax, png):
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--", label="calibrated")
        for label, lv, cv in curves:
            ax.plot(lv, cv, "o-", label=label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("nominal coverage")
        ax.set_ylabel("measured coverage (test windows)")
        ax.legend(fontsize=8, loc="upper left")
    return png[0]


#: Column names of the Summary tables as a reader says them (user test 9: raw JSON keys such as null_median_r).
_LABELS = {"median_r": "median r", "median_r_ci": "median r 95% CI", "null_median_r": "shifted-null median r",
           "null_p95_median_r": "null 5 % level", "null_shifts": "null shifts", "r2": "R²", "rmse": "RMSE", "mae": "MAE",
           "ssim": "SSIM (3D, mask)", "psnr": "PSNR (dB)", "calhas_rmse": "RMSE (Calhas et al.'s definition)",
           "calhas_ssim": "SSIM (Calhas et al.'s definition)", "fraction_of_oracle": "÷ oracle ceiling", "fraction_of_noise": "÷ noise ceiling",
           "roi_median_r": "ROI median r", "median_r_in_groundtruth_mask": "median r in the driven voxels"}


def _label(key: str) -> str:
    """A Summary column or metric name: the reader's name of a metric (``model_r2`` -> ``model R²``), else the key spaced."""
    for prefix in ("", "model_", "mean_", "ridge_hrf_"):
        if key.startswith(prefix) and key[len(prefix):] in _LABELS:
            return (prefix.replace("_", " ") + _LABELS[key[len(prefix):]]).strip()
    return key.replace("_", " ")


def _summary_blocks(metrics: dict[str, Any]) -> list[Any]:
    blocks: list[Any] = []
    head = {k: metrics[k] for k in ("model", "protocol") if isinstance(metrics.get(k), str)}
    if head:
        blocks.append(", ".join(f"{k}: {v}" for k, v in head.items()))
    summary = metrics.get("summary")
    if isinstance(summary, dict) and summary:
        blocks.append([{"metric": _label(k), "value": v} for k, v in summary.items() if _is_num(v) or v is None])
    group = metrics.get("group")
    if isinstance(group, dict) and isinstance(group.get("models"), dict):
        rows = []
        for nm, m in group["models"].items():
            if isinstance(m, dict):
                row: dict[str, Any] = {"model": nm}
                row.update({_label(k): v for k, v in m.items() if _is_num(v) or _ci(v) is not None})
                rows.append(row)
        if rows:
            blocks.append(rows)
        from eeg2fmri.plotting.report import chance_verdict

        for nm in group["models"]:  # (user test 33: report.md said "not distinguishable from chance", the HTML only gave numbers)
            verdict = chance_verdict(metrics, nm)
            if verdict:
                m = group["models"][nm]
                level = m.get("null_p95_median_r")
                blocks.append(f"{nm}: median r {m['median_r']:.3f}" + (f", the 5 % level over every circular shift {level:.3f}"
                                                                        if _is_num(level) else "") + f": {verdict}.")
        if isinstance(metrics.get("per_subject"), dict):  # an atlas evaluation: r per ROI (user test 15: only report.md had it)
            from eeg2fmri.plotting.report import (
                ROI_NULL_MARK,
                roi_null_missing,
                roi_null_missing_note,
                roi_null_note,
                roi_rows,
            )

            names = [nm for nm in group["models"] if isinstance(group["models"][nm], dict)]
            roi, n_subs = roi_rows(metrics, names)
            shown = [j for j, _ in enumerate(names) if any(r[2 + j] != "—" for r in roi)]  # (not the baseline's empty column)
            if roi and shown:
                blocks.append("r per ROI" + (f" (mean over {n_subs} test subjects)" if n_subs > 1 else "") + ":")
                counted = any(r[1] for r in roi)  # (region tables: no voxel column)
                blocks.append([{"ROI": r[0], **({"voxels": r[1]} if counted else {}), **{names[j]: r[2 + j] for j in shown}} for r in roi])
                if any(r[2 + j].endswith(ROI_NULL_MARK) for r in roi for j in shown):
                    blocks.append(roi_null_note(metrics) + ".")
                missing = roi_null_missing(metrics, [names[j] for j in shown])
                if missing:
                    blocks.append(roi_null_missing_note(missing) + ".")
    if isinstance(metrics.get("table"), str) and metrics["table"].strip():
        blocks.append(Preformatted(metrics["table"]))
    # a training run's metrics.json (eeg2fmri train): validation and test numbers, the training summary
    spans = [(k, metrics[k]) for k in ("validation", "test") if isinstance(metrics.get(k), dict)]
    if spans:
        blocks.append([{"windows": k, **{m: v.get(m) for m in ("n", "median_r", "mean_r", "mse") if _is_num(v.get(m))}} for k, v in spans])
    training = metrics.get("training")
    if isinstance(training, dict):
        keep = ("n_train", "n_val", "epochs", "best_epoch", "stopped_early", "output_gain", "ridge_weight", "output_rank")
        rows = [{"training": k, "value": training[k]} for k in keep if k in training and (_is_num(training[k]) or isinstance(training[k], bool))]
        if rows:
            blocks.append(rows)
        if training.get("ridge_weight") == 1.0:  # (user test 9: only clipped figure titles said so)
            blocks.append("The blend gave the linear path all the weight (ridge_weight 1): the predictions are the linear path's, and the "
                          "network's figures (HRFs, spatial patterns, attributions) describe a part that does not shape them.")
    timings = metrics.get("timings_s")
    if isinstance(timings, dict) and timings:
        blocks.append("Timings (seconds):")
        blocks.append([{"step": k, "seconds": v} for k, v in timings.items() if _is_num(v)])
    groups = metrics.get("groups")
    if isinstance(groups, dict):  # benchmark --models all: one evaluation per input group (user test 21: "has none of ...")
        for label, res in groups.items():
            if isinstance(res, dict):
                blocks.append(f"group {label}:")
                blocks += _summary_blocks(res)
    if not blocks:
        blocks.append(f"metrics.json has none of summary, group or table (keys: {', '.join(sorted(metrics)) or 'none'}).")
    return blocks


def _short_number(text: str | None) -> str | None:
    """A TSV cell with a non-integer number rounded to 3 decimals (as the terminal table prints it); other cells as they are."""
    if text is None or "." not in text:
        return text
    try:
        return f"{float(text):.3f}"
    except ValueError:
        return text


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise Eeg2fmriInputError(f"{path}: expected a JSON document, got an unreadable file ({err}); re-run the command that wrote it.") from err
    if not isinstance(doc, dict):
        raise Eeg2fmriInputError(f"{path}: expected a JSON object, got {type(doc).__name__}; re-run the command that wrote it.")
    return doc


def _r_map_png(path: Path) -> tuple[bytes, str] | None:
    """The r map drawn (over the MNI152 template where its header says MNI, or says nothing and lies there) and its caption."""
    import nibabel as nib

    from eeg2fmri.io.bold import bids_space_entity, grid_space, xform_code
    from eeg2fmri.plotting.report import draws_mni_template, plot_r_map

    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        return None
    mask = np.isfinite(data) & (data != 0)
    if not mask.any():
        return None
    space = grid_space(xform_code(img), bids_space_entity(path))
    drawn = draws_mni_template(img.affine, mask.shape, space)
    with tempfile.TemporaryDirectory() as td:
        out = Path(td) / "r_map.png"
        plot_r_map(mask, img.affine, data[mask], out, title=path.name, space=space)
        return out.read_bytes(), "over the MNI152 template" if drawn else "without a template (not in MNI space)"


def build_report(folder: str | os.PathLike, out: str | os.PathLike | None = None, *, title: str | None = None,
                 overwrite: bool = False) -> Path:
    """Write a self-contained ``report.html`` for a quickstart, evaluate or benchmark folder.

    Parameters
    ----------
    folder : path-like
        A folder with ``metrics.json`` and/or ``leaderboard.json``.
    out : path-like | None
        The HTML file (default: ``folder/report.html``).
    title : str | None
        Page title (default: "eeg2fmri report: <folder name>").
    overwrite : bool
        Replace an existing output file.

    Returns
    -------
    path : Path
        The HTML file written.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise Eeg2fmriInputError(f"{folder}: expected an eeg2fmri run or benchmark folder, found no such folder; check the path.")
    out_path = Path(out) if out is not None else folder / "report.html"
    from eeg2fmri.utils.atomic import check_writable

    check_writable(out_path)  # before any work (user test 29)
    metrics_p, board_p = folder / "metrics.json", folder / "leaderboard.json"
    train_p = None
    if (folder / "evaluation" / "metrics.json").is_file():  # a training run that eeg2fmri evaluate scored: its evaluation leads
        train_p, metrics_p = (metrics_p if metrics_p.is_file() else None), folder / "evaluation" / "metrics.json"
    if not metrics_p.is_file() and not board_p.is_file():
        raise Eeg2fmriInputError(
            f"{folder}: expected an eeg2fmri run or benchmark folder (metrics.json or leaderboard.json), found neither; "
            "run eeg2fmri quickstart/evaluate/benchmark first."
        )
    if not out_path.is_dir() and out_path.suffix.lower() not in (".html", ".htm"):  # (user test 9: HTML written into report.txt)
        raise Eeg2fmriInputError(f"{out_path}: expected an HTML file name (.html), got {out_path.suffix or 'no extension'!r}; pass e.g. "
                                 f"--out {out_path.with_suffix('.html')}.")
    if out_path.is_dir():  # checked before --overwrite: a folder is never replaced by the page
        raise Eeg2fmriInputError(f"{out_path}: expected an HTML file path, found a directory; pass --out {out_path / 'report.html'}.")
    if out_path.exists() and not overwrite:
        raise Eeg2fmriInputError(f"{out_path}: report already exists; pass overwrite=True (--overwrite) or choose another --out.")
    if out_path.is_file() and not is_our_page(out_path):  # --overwrite replaces a report, never a file of the user's
        raise Eeg2fmriInputError(f"{out_path}: expected an eeg2fmri report to replace (--overwrite), found another file; it is left "
                                 "as it is. Choose another --out, or move the file away first.")

    sections: list[tuple[str, list[Any]]] = []
    missing: list[dict[str, str]] = []

    if metrics_p.is_file():
        metrics_doc = _read_json(metrics_p)
        sections.append(("Summary", _summary_blocks(metrics_doc)))
        curves = find_coverages(metrics_doc)
        if curves:
            rows = [{"intervals": lab, **{f"{lv:.0%} nominal": round(cv, 3) for lv, cv in zip(lvs, cvs)}, **_calibration_extras(metrics_doc, lab)}
                    for lab, lvs, cvs in curves]
            sections.append(("Calibration", [rows, Image(plot_calibration(curves), caption="measured vs nominal coverage of the prediction intervals")]))
        else:
            missing.append({"item": "calibration curve", "meaning": "metrics.json holds no interval coverage (eeg2fmri evaluate measures it)"
                            + ("; the leaderboard's 80% cover and NLL columns give each model's coverage over the folds" if board_p.is_file() else "")})
    else:
        missing.append({"item": "metrics.json", "meaning": "no summary numbers (not a quickstart/evaluate folder)"})
    if train_p is not None:
        sections.append(("Training", [f"from {train_p.relative_to(folder)} (the summary above: {metrics_p.relative_to(folder)})",
                                      *_summary_blocks(_read_json(train_p))]))

    if board_p.is_file():
        board = _read_json(board_p)
        rows = [r for r in board.get("leaderboard", []) if isinstance(r, dict)]
        cols = [c for c in _LEADER_COLS if any(c in r for r in rows)]
        blocks: list[Any] = []
        if board.get("protocol"):
            blocks.append(f"protocol: {board['protocol']}; folds: {board.get('n_folds', '—')}; dataset: {board.get('dataset', '—')}")
        for g in board.get("groups") or []:  # how each input group's LOSO folds validated, and what was refitted (user test 10)
            if isinstance(g, dict) and g.get("loso_validation"):
                blocks.append(f"validation ({g.get('representation', '—')} group): {g['loso_validation']}")
        if rows:
            blocks.append([{c: r.get(c) for c in cols} for r in rows])
            from eeg2fmri.workflows.benchmark import leaderboard_notes

            blocks += leaderboard_notes(rows)  # (user test 21: the page showed none of the leaderboard's caveats)
            png = plot_forest(rows, title="median test r per model")
            if png is not None:
                blocks.append(Image(png, caption="forest plot: median r and 95% CI per model"))
            else:
                missing.append({"item": "forest plot", "meaning": "no leaderboard row has a finite median_r"})
        else:
            blocks.append("leaderboard.json has no leaderboard rows.")
        sections.append(("Leaderboard", blocks))
    else:
        missing.append({"item": "leaderboard.json", "meaning": "no leaderboard / forest plot (not a benchmark folder)"})

    r_maps = sorted((folder / "evaluation").glob("r_map_*.nii.gz")) + sorted(folder.glob("r_map*.nii.gz"))
    r_blocks: list[Any] = []
    for p in r_maps:
        drawn = _r_map_png(p)
        if drawn is None:
            missing.append({"item": str(p.relative_to(folder)), "meaning": "r-map NIfTI with no non-zero 3D values; not drawn"})
        else:
            r_blocks.append(Image(drawn[0], caption=f"{p.relative_to(folder)} {drawn[1]}"))
    if r_blocks:
        sections.append(("Voxel-wise r maps", r_blocks))
    elif not r_maps:
        missing.append({"item": "r-map NIfTI", "meaning": "no evaluation/r_map_*.nii.gz or r_map*.nii.gz (written by eeg2fmri evaluate)"})

    cls_blocks: list[Any] = []
    for cj in sorted(folder.rglob("classify.json")):  # (user test 20: classify's results were neither shown nor listed as missing)
        doc = _read_json(cj)
        tsv = cj.with_name("classify.tsv")
        cls_blocks.append(f"{cj.relative_to(folder)}: labels {doc.get('labels', '—')}, BOLD read {doc.get('delay_s', '—')} s after them; "
                          "subject-wise cross-validation, permutation null, subject-bootstrap CI")
        if tsv.is_file():
            import csv

            with open(tsv, newline="", encoding="utf-8-sig") as fh:  # numbers to 3 decimals (user test 33: 0.6333333333333333)
                cls_blocks.append([{k: _short_number(v) for k, v in row.items()} for row in csv.DictReader(fh, delimiter="\t")])
        notes = doc.get("notes") or {}  # source -> note (user test 33: the loop over the dict printed its keys, "synth", only)
        for src, note in (notes.items() if isinstance(notes, dict) else ((None, n) for n in notes)):
            cls_blocks.append(f"note ({src}): {note}" if src else str(note))
    if cls_blocks:
        sections.append(("Classification", cls_blocks))
    else:
        missing.append({"item": "classify.json", "meaning": "no classification results (eeg2fmri classify RUN_DIR writes them into RUN_DIR/classify)"})

    targets = {}  # an explanation's figures are captioned with its target (user test 20: only their paths said which)
    for ex in folder.rglob("explain.json"):
        d = _read_json(ex)
        if d.get("target"):
            targets[ex.parent] = f"explain target: {d['target']}" + ("; no evidence that the model predicts it" if d.get("target_note") else "")
    pngs = sorted(p for p in folder.rglob("*.png") if not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if pngs:
        sections.append(("Figures", [Image(p, caption=str(p.relative_to(folder)) + (f" ({targets[p.parent]})" if p.parent in targets else ""))
                                     for p in pngs]))
    else:
        missing.append({"item": "figures (*.png)", "meaning": "no PNG figure in the folder or its subfolders"})

    for ex in sorted(folder.rglob("explain.json")):  # figures an explanation (or evaluate's insight/) could not draw, with the reason
        skipped = _read_json(ex).get("figures_skipped") or {}
        for name, why in (skipped.items() if isinstance(skipped, dict) else ()):
            missing.append({"item": str((ex.parent / name).relative_to(folder)), "meaning": f"not drawn: {why}"})

    cards = [folder / "model" / "MODEL_CARD.md", folder / "MODEL_CARD.md"]
    if metrics_p.is_file() and isinstance(_read_json(metrics_p).get("model_dir"), str):  # an evaluate folder: the model it scored
        cards.append(Path(_read_json(metrics_p)["model_dir"]) / "MODEL_CARD.md")
    card = next((p for p in cards if p.is_file()), None)
    if card is not None:
        shown = card.relative_to(folder) if card.is_relative_to(folder) else card
        sections.append(("Model card", [f"{shown}:", Preformatted(card.read_text(encoding="utf-8", errors="replace"))]))
    else:
        missing.append({"item": "model card", "meaning": "no model/MODEL_CARD.md or MODEL_CARD.md (nor in the model folder an evaluation names)"})

    sections.append(("Not shown", [missing] if missing else ["Nothing: every kind of content the report knows was found."]))
    path = write_html(out_path, title or f"eeg2fmri report: {folder.resolve().name}", sections, overwrite=overwrite)
    logger.info("wrote %s (%d sections)", path, len(sections))
    return path
