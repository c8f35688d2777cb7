"""``eeg2fmri quickstart``: the whole job on simulated data, in minutes.

simulate -> prepare (the model's preferred input: tangent windows for the flagship,
band power for ``ridge_hrf``) -> split (later span of each subject held out, with a gap)
-> fit the model (default: the flagship ``eeg2fmri_net``, early stopping on
the validation span, next to the ``ridge_hrf`` reference; ``model="ridge_hrf"``
fits only the linear reference, penalty chosen on the validation span) and the
subject-mean baseline -> evaluate on the test span
against the time-shifted null and the ground-truth noise/oracle ceilings ->
save the model -> synthesise a 4D NIfTI from an EEG-only recording -> metrics
JSON, report and figures.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import numpy as np

from eeg2fmri.datasets import prepare_dataset
from eeg2fmri.datasets.prepared import PrepareConfig
from eeg2fmri.datasets.targets import make_split, split_targets
from eeg2fmri.evaluation import evaluate_split, reference_model
from eeg2fmri.plotting import plot_slices, plot_timecourses, plot_volumes_mni, write_report
from eeg2fmri.simulate import SimulationConfig, simulate_dataset
from eeg2fmri.synthesis import synthesize
from eeg2fmri.training import fit_model, save_fit
from eeg2fmri.training.fit import split_summary
from eeg2fmri.utils.atomic import atomic_dir, final_path, final_paths
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.provenance import software
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["run_quickstart", "format_table"]

DEFAULT_MODEL = "eeg2fmri_net"


def format_table(summary: dict[str, float], model: str) -> str:
    """Plain-text summary table: model vs baselines vs ceilings (test span)."""
    def f(key, ci=None):
        v = summary.get(key)
        return "   n/a" if v is None else f"{v:6.3f}"

    rows = [
        ("", "median r", "R^2", "RMSE(z)"),
        (model, f("model_median_r"), f("model_r2"), f("model_rmse")),
    ]
    if model != "ridge_hrf" and "ridge_hrf_median_r" in summary:
        rows.append(("ridge_hrf (reference)", f("ridge_hrf_median_r"), f("ridge_hrf_r2"), f("ridge_hrf_rmse")))
    rows += [
        ("subject-mean baseline", "  const", f("mean_r2"), f("mean_rmse")),
        ("time-shifted null", f("null_shifted_median_r"), "", ""),
    ]
    p95 = summary.get("null_p95_median_r")
    finite_p95 = isinstance(p95, (int, float)) and np.isfinite(p95)
    if finite_p95:
        rows.append(("time-shifted null, 5 % level", f("null_p95_median_r"), "", ""))
    if "oracle_ceiling_median_r" in summary:
        rows += [("oracle ceiling (EEG-visible)", f("oracle_ceiling_median_r"), "", ""), ("noise ceiling", f("noise_ceiling_median_r"), "", ""),
                 (f"{model} / oracle (same voxels)", f("fraction_of_oracle"), "", "")]
    w = max(len(r[0]) for r in rows) + 2
    text = "\n".join(f"{r[0]:<{w}}{r[1]:>10}{r[2]:>9}{r[3]:>9}" for r in rows)
    if not finite_p95:  # (user test 11: said by evaluate and benchmark, not here)
        text += ("\n(no null distribution: the test spans are too short (under 20 volumes) for a 5 % test over circular shifts, so these "
                 "data cannot tell whether the model exceeds chance; simulate longer recordings with --minutes)")
    return text


def run_quickstart(
    out: str | os.PathLike = "eeg2fmri_quickstart",
    *,
    subjects: int = 4,
    minutes: float = 8.0,
    seed: int = 0,
    model: str = DEFAULT_MODEL,
    overwrite: bool = False,
    progress_bar: bool = True,
    sim_overrides: dict[str, Any] | None = None,
    html_report: bool = True,
) -> dict[str, Any]:
    """Run the whole job on a freshly simulated dataset.

    Parameters
    ----------
    out : path-like
        Output folder (must not exist unless ``overwrite``; written atomically).
    subjects, minutes, seed : int, float, int
        Size and seed of the simulated dataset.
    model : str
        A registered model (default: the flagship ``eeg2fmri_net``, about
        15 s of training on a 2-core CPU for the default size; torch models
        train with their ``recommended_train_config`` when they have one, on
        the CPU or a GPU; ``"ridge_hrf"`` takes seconds).
    overwrite : bool
        Replace ``out``.
    progress_bar : bool
        Progress bars on the long steps.
    sim_overrides : dict | None
        Extra :class:`SimulationConfig` fields.
    html_report : bool
        Also write ``report.html`` (:func:`eeg2fmri.workflows.report.build_report`).

    Returns
    -------
    metrics : dict
        What ``metrics.json`` holds (summary, per subject, timings, table).
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    cfg = SimulationConfig(n_subjects=subjects, minutes=minutes, seed=seed, **(sim_overrides or {})).validate()
    with atomic_dir(out, overwrite=overwrite, marker="metrics.json") as tmp:
        bids = simulate_dataset(tmp / "bids", cfg, progress_bar=progress_bar)
        timings["simulate"] = time.perf_counter() - t0
        from eeg2fmri.models import get_model_class

        cls = get_model_class(model)
        # the model's preferred input (the flagship: tangent windows, whose band-power block is also the reference's input)
        representation = (getattr(cls, "input_kinds", None) or ("bandpower",))[0]
        ds = prepare_dataset(bids, PrepareConfig(representation=representation), progress_bar=progress_bar)
        ds.save(tmp / "prepared")
        timings["prepare"] = time.perf_counter() - t0 - sum(timings.values())
        split = make_split(ds, "within")
        targets = split_targets(ds, split)
        if getattr(cls, "kind", "torch") == "sklearn":
            fitted = fit_model(ds, split, model, targets=targets)
        else:
            tcfg = {**getattr(cls, "recommended_train_config", {}), "seed": seed, "trainer": {"progress_bar": progress_bar}}
            fitted = fit_model(ds, split, model, {"seed": seed}, targets=targets, train_config=tcfg, out_dir=tmp / "training")
        if model == "ridge_hrf":
            reference = fitted.model
        else:  # ridge_hrf on the band-power windows of the same volumes (the band-power block of tangent windows)
            reference, reason = reference_model(ds, split, targets)
            if reference is None:
                raise Eeg2fmriInputError(f"quickstart: the reference ridge_hrf could not be fitted on {representation} data: {reason}")
        baseline = fit_model(ds, split, "mean", targets=targets)
        timings["fit"] = time.perf_counter() - t0 - sum(timings.values())
        results = evaluate_split(ds, split, targets, fitted.model, baseline=baseline.model, reference=reference)
        timings["evaluate"] = time.perf_counter() - t0 - sum(timings.values())
        split_info = split_summary(split, ds)
        table = format_table(results["summary"], model)
        card = {"training data": {"dataset": "eeg2fmri simulator", "subjects": ds.subjects, "seed": seed},
                "test metrics (within-subject, later span)": results["summary"]}
        save_fit(fitted, ds, split, tmp / "model", card=card)
        from eeg2fmri.evaluation.uncertainty import calibrate_uncertainty, save_calibration

        save_calibration(tmp / "model", calibrate_uncertainty(fitted.model, ds, split, targets))  # for synthesize --uncertainty
        # EEG-only recording -> 4D NIfTI (the EEG file alone; its BOLD is not used)
        eeg_only = sorted((tmp / "bids").glob("sub-*/eeg/*_eeg.vhdr"))[0]
        # timed by its scanner markers, so output volume k is the scan's volume k (without, synthesize warns that it is not)
        synth = synthesize(eeg_only, tmp / "model", tmp / "synthesized" / f"{eeg_only.name.replace('_eeg.vhdr', '')}_desc-synth_bold.nii.gz",
                           progress_bar=progress_bar, first_onset="markers")
        timings["synthesize"] = time.perf_counter() - t0 - sum(timings.values())
        # figures on the first test run
        i0 = next(iter(split.selections["test"]))
        run = ds.runs[i0]
        from eeg2fmri.datasets.windows import run_windows

        x = run_windows(run, split.selections["test"][i0], split.n_frames, split.lag)
        y = targets["test"][i0]
        p = np.asarray(fitted.model.predict(np.asarray(x))).reshape(len(y), -1)
        r = results["subjects"][run.subject][run.key]["_r"]
        tmid = len(y) // 2
        # per-voxel 80% conformal intervals (validation windows) for the time-course bands; coverage measured on test
        from eeg2fmri.evaluation.uncertainty import conformal_coverage

        conf = conformal_coverage(fitted.model, ds, split, targets)
        band = conf.pop("halfwidths")[conf["levels"].index(0.8)]
        vol = int(split.selections["test"][i0][tmid])
        figs = [plot_slices(ds.mask, y[tmid], p[tmid], r, tmp / "slices.png", f"{run.key}: test volume {vol}"),
                plot_volumes_mni(ds.mask, ds.affine, y[tmid], p[tmid], tmp / "volumes_mni.png", f"{run.key}: test volume {vol}, measured vs synthesised", r=r,
                                 space=ds.space),
                plot_timecourses(y, p, r, ds.tr, tmp / "timecourses.png", f"{run.key}: test span", halfwidth=band, level=0.8)]
        from eeg2fmri.workflows.insight import write_insight

        figs += write_insight(fitted.model, ds, split, tmp / "insight")  # flagship: spatial patterns + learned HRFs
        for subj in results["subjects"].values():
            for res in subj.values():
                res.pop("_r", None)
        metrics = {"model": model, "protocol": "within", "split": split_info, "summary": results["summary"], "subjects": results["subjects"],
                   "timings_s": timings, "table": table, "synthesized": str(final_path(synth)), "conformal": conf,
                   "software": software()}
        (tmp / "metrics.json").write_text(json.dumps(to_jsonable(final_paths(metrics), finite=True), indent=1, default=float), encoding="utf-8")  # strict JSON: NaN -> null
        write_report(tmp, table, figs, metrics, title="eeg2fmri quickstart report")
        if html_report:
            from eeg2fmri.workflows.report import build_report

            build_report(tmp, title="eeg2fmri quickstart report")
    timings["total"] = time.perf_counter() - t0
    logger.info("quickstart finished in %.1f s", timings["total"])
    return metrics
