"""Evaluation protocol: metric wiring (hand-computed and against evaluation.metrics), bootstrap and paired
comparison, ceilings, ROI r, subject aggregation, fold merging, cross-dataset mapping, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eeg2fmri.evaluation import metrics as M
from eeg2fmri.evaluation.protocol import (
    GROUP_SEED,
    _circular_shift_r,
    _null_level,
    _shift_null_distribution,
    default_block_len,
    evaluate_models,
    evaluate_split,
    hierarchical_draws,
    load_labels,
    measured_block_len,
    merge_results,
    predict_windows,
    results_to_json,
    score_runs,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError

GRID = (13, 12, 4)  # calhas_ssim needs >= 11 x 11 slices and >= 3 slices


def _mask() -> np.ndarray:
    m = np.zeros(GRID, bool)
    m[2:11, 3:10, 1:4] = True
    return m


def _unmasked(mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
    vol = np.zeros(mask.shape + (len(rows),), np.float32)
    vol[mask] = rows.T
    return vol


def _runs(seed: int = 0, n: int = 30, subjects=("01",)):
    rng = np.random.default_rng(seed)
    mask = _mask()
    v = int(mask.sum())
    runs = []
    for s in subjects:
        sig = rng.standard_normal((n, v)).astype(np.float32)
        y = (sig + rng.standard_normal((n, v))).astype(np.float32)
        runs.append({"key": f"sub-{s}_run-1", "subject": s, "y": y,
                     "preds": {"model": (0.6 * sig + 0.5 * rng.standard_normal((n, v))).astype(np.float32),
                               "ridge_hrf": (0.3 * sig + rng.standard_normal((n, v))).astype(np.float32),
                               "mean": np.full((n, v), 0.1, np.float32)}})
    return mask, runs


def test_two_runs_of_a_subject_resampled_within_each_run():
    """A subject with two test runs: the bootstrap draws blocks within each run (metrics.block_bootstrap_indices with
    segments=the runs' lengths), the same draws as done by hand; the method says so."""
    mask, (r1,) = _runs(seed=1, n=30)
    _, (r2,) = _runs(seed=2, n=17)
    r2 = {**r2, "key": "sub-01_run-2"}
    core = score_runs([r1, r2], ["model", "ridge_hrf", "mean"], mask, 2.0, n_boot=120, block_len=4, random_state=5, ssim_volumes=10)
    res = core["per_subject"]["01"]
    assert res["bootstrap"]["method"].endswith("within each of the 2 runs") and res["n_test"] == 47
    y = np.concatenate([r1["y"], r2["y"]])
    pm = np.concatenate([r1["preds"]["model"], r2["preds"]["model"]])
    rng = np.random.default_rng(5)
    idx = M.block_bootstrap_indices(47, 120, 4, "circular", rng, segments=[30, 17])
    draws = np.array([np.median(M.voxelwise_r(y[i], pm[i])) for i in idx])
    lo, hi = M.centred_interval(draws, res["models"]["model"]["median_r"], 0.95)
    assert res["models"]["model"]["median_r_ci"] == pytest.approx([lo, hi], abs=2e-5)


def test_hand_computed_errors():
    """Two voxels, four volumes: every error metric by hand."""
    mask = np.zeros((3, 2, 2), bool)
    mask[0, 0, 0] = mask[2, 1, 1] = True
    y = np.array([[0.0, 1.0], [2.0, 0.0], [0.0, 3.0], [2.0, 0.0]], np.float32)
    p = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]], np.float32)
    core = score_runs([{"key": "k", "subject": "s", "y": y, "preds": {"model": p, "mean": p}}], ["model", "mean"], mask, 2.0,
                      reference=None, n_boot=0)
    m = core["per_subject"]["s"]["models"]["model"]
    # squared errors 1,0 / 1,1 / 1,4 / 1,1 -> SSE 10 over 8 values; absolute errors sum 1+0+1+1+1+2+1+1 = 8
    assert m["rmse"] == pytest.approx(np.sqrt(10 / 8))
    assert m["mae"] == pytest.approx(1.0)
    # SS_tot: voxel 0 mean 1 -> 4; voxel 1 mean 1 -> 0 + 1 + 4 + 1 = 6; R² = 1 - 10/10 = 0
    assert m["r2"] == pytest.approx(0.0, abs=1e-12)
    # data range: 1st-99th percentile of y (sorted 0 0 0 0 1 2 2 3): 0 and 2 + 0.93 (position 0.99 * 7 = 6.93)
    dr = core["per_subject"]["s"]["data_range"]
    assert dr["low"] == pytest.approx(0.0) and dr["high"] == pytest.approx(2.93) and dr["value"] == pytest.approx(2.93)
    assert m["psnr"] == pytest.approx(10 * np.log10(2.93**2 / (10 / 8)))
    # the peers' RMSE: per volume over all 12 grid voxels, then the mean over volumes
    assert m["calhas_rmse"] == pytest.approx(np.mean(np.sqrt(np.array([1, 2, 5, 2]) / 12)))
    # a constant prediction has no r; a 3x2x2 grid is too small for the peers' slice SSIM
    assert np.isnan(m["median_r"]) and np.isnan(m["calhas_ssim"])


def test_metrics_wiring_matches_metrics_module():
    mask, runs = _runs()
    y, pm, pr = runs[0]["y"], runs[0]["preds"]["model"], runs[0]["preds"]["ridge_hrf"]
    core = score_runs(runs, ["model", "ridge_hrf", "mean"], mask, 2.0, n_boot=150, block_len=4, random_state=3, ssim_volumes=100)
    res = core["per_subject"]["01"]
    m = res["models"]["model"]
    dr = float(np.diff(np.percentile(y, [1, 99]))[0])
    assert res["data_range"]["value"] == pytest.approx(dr)
    vy, vp = _unmasked(mask, y), _unmasked(mask, pm)
    assert m["rmse"] == pytest.approx(M.rmse(y, pm))
    assert m["mae"] == pytest.approx(M.mae(y, pm))
    assert m["psnr"] == pytest.approx(M.psnr(y, pm, dr))
    assert m["r2"] == pytest.approx(1 - ((y - pm.astype(np.float64)) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
    assert m["ssim"] == pytest.approx(M.ssim3d_series(vy, vp, dr, mask))  # on the cropped volumes: the same number
    assert m["calhas_rmse"] == pytest.approx(M.calhas_rmse(vy, vp))
    assert m["calhas_ssim"] == pytest.approx(M.calhas_ssim(vy, vp))
    r = M.voxelwise_r(y, pm)
    assert m["r"] == M.summarize_r(r) and m["median_r"] == pytest.approx(np.median(r))
    assert m["null_median_r"] == pytest.approx(np.median(M.voxelwise_r(y, np.roll(pm, 15, axis=0))))
    # the bootstrap: the same resamples as metrics.bootstrap_median_r / paired_bootstrap with the same seed
    ci = M.bootstrap_median_r(y, pm, n_boot=150, block_len=4, random_state=3)
    assert m["median_r_ci"] == pytest.approx([ci["low"], ci["high"]])
    pb = M.paired_bootstrap(y, pm, pr, M.median_r, n_boot=150, block_len=4, random_state=3)
    paired = res["paired"]["model"]
    assert paired["vs"] == "ridge_hrf" and paired["diff_median_r"] == pytest.approx(pb["estimate"])
    assert [paired["low"], paired["high"]] == pytest.approx([pb["low"], pb["high"]]) and paired["p_value"] == pytest.approx(pb["p_value"])
    assert res["bootstrap"]["block_len"] == 4 and res["ssim_volumes"] == 30
    # the constant baseline: no r, errors as usual
    b = res["models"]["mean"]
    assert np.isnan(b["median_r"]) and b["r"] is None and b["rmse"] == pytest.approx(M.rmse(y, runs[0]["preds"]["mean"]))


def test_ceiling_fractions_and_roi():
    mask, runs = _runs(seed=1)
    v = int(mask.sum())
    noise = np.linspace(0.2, 0.8, v)
    oracle = noise / 2
    oracle[:5] = np.nan  # voxels outside the simulated brain
    runs[0]["ceilings"] = {"noise": noise, "oracle": oracle}
    labels = np.repeat(np.arange(1, 8), int(np.ceil(v / 7)))[:v]
    core = score_runs(runs, ["model", "ridge_hrf", "mean"], mask, 2.0, labels=labels, n_boot=0)
    res = core["per_subject"]["01"]
    r = M.voxelwise_r(runs[0]["y"], runs[0]["preds"]["model"])
    ok = np.isfinite(oracle)
    m = res["models"]["model"]
    assert m["fraction_of_oracle"] == pytest.approx(np.median(r[ok]) / np.median(oracle[ok]))
    assert m["fraction_of_noise"] == pytest.approx(np.median(r[ok]) / np.median(noise[ok]))
    assert res["ceilings"]["oracle_median_r"] == pytest.approx(np.median(oracle[ok])) and res["ceilings"]["n_voxels"] == ok.sum()
    roi = M.roi_r(runs[0]["y"], runs[0]["preds"]["model"], labels)
    assert m["roi_r"] == {str(k): pytest.approx(val) for k, val in roi.items()}
    assert m["roi_median_r"] == pytest.approx(np.median(list(roi.values())))
    assert "roi_r" not in res["models"]["mean"]
    # labels from a volume on the grid, and their errors
    vol = np.zeros(mask.shape, int)
    vol[mask] = labels
    np.testing.assert_array_equal(load_labels(vol, mask), labels)
    with pytest.raises(Eeg2fmriInputError, match=r"expected labels of shape \(13, 12, 4\) \(the data grid\) or \(189,\)"):
        load_labels(np.ones((3, 3)), mask)
    with pytest.raises(Eeg2fmriInputError, match="expected whole-number labels >= 0"):
        load_labels(vol + 0.5, mask)
    with pytest.raises(Eeg2fmriInputError, match="no ROI label inside the brain mask"):
        load_labels(np.zeros(mask.shape), mask)


def test_group_means_and_draws():
    mask, runs = _runs(seed=2, subjects=("01", "02", "03"))
    core = score_runs(runs, ["model", "ridge_hrf", "mean"], mask, 2.0, n_boot=100, random_state=0)
    g = core["group"]
    subs = core["per_subject"]
    for key in ("median_r", "rmse", "ssim", "calhas_rmse"):
        assert g["models"]["model"][key] == pytest.approx(np.mean([subs[s]["models"]["model"][key] for s in subs]))
    assert g["paired"]["model"]["low"] > 0 and g["paired"]["model"]["p_value"] < 0.05  # 0.6 vs 0.3 signal: clearly better
    assert "median_r_ci" not in g["models"]["mean"] and "ceilings" not in g and "two-level" in g["bootstrap"]["subjects"]
    # one evaluation merged as a one-fold benchmark: the same group CI (user test 21: evaluate and benchmark gave
    # [-0.0018, 0.0265] and [0.0011, 0.0279] for the same predictions; the group draws took what the subject draws left)
    one = dict(core, models=["model", "ridge_hrf", "mean"], roles={"reference": "ridge_hrf", "baseline": "mean", "null": ""}, reference={},
               split={"protocol": "within"}, _ci=0.95, settings={"seed": 0})
    assert merge_results([one])["group"]["models"]["model"]["median_r_ci"] == pytest.approx(g["models"]["model"]["median_r_ci"])
    assert merge_results([one])["group"]["paired"]["model"]["low"] == pytest.approx(g["paired"]["model"]["low"])
    # two folds with disjoint test subjects merge into the same group summary
    parts = []
    for s in ("01", "02", "03"):
        one = [r for r in runs if r["subject"] == s]
        c = score_runs(one, ["model", "ridge_hrf", "mean"], mask, 2.0, n_boot=100, random_state=0)
        c.update(models=["model", "ridge_hrf", "mean"], roles={"reference": "ridge_hrf", "baseline": "mean", "null": ""}, reference={},
                 split={"protocol": "loso"}, _ci=0.95)
        parts.append(c)
    merged = merge_results(parts)
    assert sorted(merged["per_subject"]) == ["01", "02", "03"] and len(merged["folds"]) == 3
    assert merged["split"] == {"protocol": "loso", "note": "the first of 3 folds; folds lists each fold's split"}
    mg = merged["group"]
    assert mg["models"]["model"]["median_r"] == pytest.approx(g["models"]["model"]["median_r"])
    # the group draws resample subjects, then time (hierarchical_draws, subject picks from GROUP_SEED); the median-r
    # interval is their percentile interval moved so that their median sits on the mean median r (centred_interval)
    g_rng = np.random.default_rng(GROUP_SEED)
    pick, which = g_rng.integers(0, 3, size=(100, 3)), g_rng.integers(0, 100, size=(100, 3))
    per = [merged["_draws"][s] for s in ("01", "02", "03")]
    h = np.array([[np.mean([per[k][j, w] for k, w in zip(pick[b], which[b])]) for b in range(100)] for j in range(2)])
    lo, mid, hi = np.quantile(h[0], [0.025, 0.5, 0.975])
    est = mg["models"]["model"]["median_r"]
    assert mg["models"]["model"]["median_r_ci"] == pytest.approx([est - (mid - lo), est + (hi - mid)])
    d = h[0] - h[1]  # the paired difference: the same subjects for both models in every draw, percentile interval
    assert [mg["paired"]["model"]["low"], mg["paired"]["model"]["high"]] == pytest.approx(list(np.quantile(d, [0.025, 0.975])))
    parts[1]["models"] = ["model"]
    with pytest.raises(Eeg2fmriInputError, match="folds scored different models"):
        merge_results(parts)
    with pytest.raises(Eeg2fmriInputError, match="expected at least one fold's results"):
        merge_results([])


def test_hierarchical_draws_carry_the_spread_between_subjects():
    """Subjects fixed, the mean of the per-subject draws only knows each subject's own sampling noise; resampling subjects
    first adds their spread: two subjects at r 0.1 and 0.5 give a group interval about as wide as that spread."""
    rng = np.random.default_rng(5)
    per = [rng.normal(m, 0.01, (1, 2000)) for m in (0.1, 0.5)]
    fixed = np.mean(per, axis=0)[0]
    both = hierarchical_draws(per, 3)[0]
    assert np.ptp(np.quantile(fixed, [0.025, 0.975])) < 0.03 and np.ptp(np.quantile(both, [0.025, 0.975])) > 0.35
    assert set(np.round(both, 1)) == {0.1, 0.3, 0.5}  # each draw: both subjects once, or one of them twice
    # a subject drawn twice brings two independent time resamples (the same one twice would count its own sampling
    # variance twice): one subject's draws, resampled as two, spread as the mean of two independent draws
    one = [rng.normal(0.0, 1.0, (1, 4000))]
    two = hierarchical_draws(one * 2, 4)[0]
    assert 0.65 < two.std() < 0.78  # 1/sqrt(2) = 0.71 for independent copies; the same resample for both (the old code): 1.0
    np.testing.assert_array_equal(hierarchical_draws(per[:1], 3), per[0])  # one subject: its own draws
    np.testing.assert_array_equal(hierarchical_draws(per, 3)[0], both)  # seeded


def test_default_block_len():
    assert default_block_len(600, 2.16) == 8  # ceil(16 / 2.16) = 8 >= round(600 ** (1/3)) = 8
    assert default_block_len(600, 0.5) == 32
    assert default_block_len(10, 2.0) == 5  # capped at half the series


def test_evaluate_split_on_tiny_dataset(tiny_prepared):
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    lags = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "lags"}, targets=tg).model
    res = evaluate_split(tiny_prepared, sp, tg, lags, model_name="ridge_lags", n_boot=50)
    # the reference and the baseline were fitted on the same training windows and scored on the same test windows
    assert res["models"] == ["ridge_lags", "ridge_hrf", "mean"] and res["reference"]["fitted_here"]
    s = res["summary"]
    for key in ("model_median_r", "model_r2", "model_rmse", "model_ssim", "model_psnr", "mean_r2", "mean_rmse", "ridge_hrf_median_r",
                "null_shifted_median_r", "diff_vs_ridge_hrf", "p_vs_ridge_hrf", "noise_ceiling_median_r", "oracle_ceiling_median_r",
                "fraction_of_oracle"):
        assert key in s and isinstance(s[key], float), key
    assert s["noise_ceiling_median_r"] > s["oracle_ceiling_median_r"] > 0
    assert sorted(res["subjects"]) == ["01", "02"] and all("_r" in run for subj in res["subjects"].values() for run in subj.values())
    ps = res["per_subject"]["01"]
    assert ps["n_test"] == sp.n_samples("test") // 2 and ps["data_range"]["percentiles"] == [1.0, 99.0]
    doc = results_to_json(res)
    json.dumps(doc, allow_nan=False)  # strict JSON: NaN -> null, arrays dropped
    assert doc["group"]["models"]["mean"]["median_r"] is None and '"_r"' not in json.dumps(doc)
    # a ridge_hrf model is its own reference
    same = evaluate_split(tiny_prepared, sp, tg, lags, model_name="ridge_hrf", n_boot=0)
    assert same["models"] == ["ridge_hrf", "mean"] and "diff_vs_ridge_hrf" not in same["summary"]
    with pytest.raises(Eeg2fmriInputError, match="the subject-mean baseline is always shown"):
        evaluate_split(tiny_prepared, sp, tg, lags, model_name="mean")
    with pytest.raises(Eeg2fmriInputError, match=r"expected n_boot >= 0, got -1"):
        evaluate_models(tiny_prepared, sp, tg, {"x": lags}, n_boot=-1)
    with pytest.raises(Eeg2fmriInputError, match="expected at least one model to score"):
        evaluate_models(tiny_prepared, sp, tg, {})
    with pytest.raises(Eeg2fmriInputError, match=r"expected 0 < ci < 1, got 1\.5"):
        evaluate_models(tiny_prepared, sp, tg, {"x": lags}, ci=1.5)


def test_predict_windows_torch_and_volumes():
    import torch

    mask = np.zeros((3, 4, 5), bool)
    mask[1, 1:3, 2:5] = True

    class Vol(torch.nn.Module):
        def forward(self, x, subject=None):
            return x.sum(dim=(1, 2))[:, None, None, None] * torch.ones((len(x), 3, 4, 5))

    x = np.ones((7, 2, 6), np.float32)
    out = predict_windows(Vol(), x, n_outputs=int(mask.sum()), mask=mask, batch_size=3)
    assert out.shape == (7, 6) and np.allclose(out, 12.0)
    with pytest.raises(Eeg2fmriInputError, match="expected 5 outputs per window"):
        predict_windows(Vol(), x, n_outputs=5, mask=mask)
    with pytest.raises(Eeg2fmriInputError, match="expected a fitted model with predict"):
        predict_windows(object(), x)


def test_cross_dataset_mapping(tiny_prepared):
    from eeg2fmri.evaluation.crossdata import (
        check_same_space,
        common_channels,
        cross_dataset_split,
        restrict_dataset,
    )

    names = tiny_prepared.ch_names
    tr, te, rep = common_channels(names, [c.upper() for c in names[::-1][:12]] + ["EXTRA"])
    assert len(tr) == 12 and te == [c.upper() for c in tr] and rep["only_test"] == ["EXTRA"] and rep["min_required"] == 8
    assert tr == [c for c in names if c in tr]  # training order
    with pytest.raises(Eeg2fmriInputError, match=r"expected at least 8 EEG channels in common .* found 3 of 16 \(training\) and 3 \(test\).*"
                       r"prepare option channels: \[names\]"):
        common_channels(names, names[:3])
    # EDF-style decorations as prepare and synthesize match them (user test 54: "EEG FP1-REF" is "Fp1")
    edf = [f"EEG {c.upper()}-REF" for c in names[:10]] + ["ECG"]
    tr, te, rep = common_channels(names, edf)
    assert tr == names[:10] and te == edf[:10] and rep["only_test"] == ["ECG"] and rep["only_train"] == names[10:]
    assert common_channels(names, names[:3], min_channels=3, min_fraction=0.0)[0] == names[:3]
    # another "dataset": 12 of the channels, renamed, in another order
    other = restrict_dataset(tiny_prepared, names[::-1][:12], names=[c.upper() for c in names[::-1][:12]])
    with pytest.raises(Eeg2fmriInputError, match=r"the test dataset holds recordings of the training dataset \(\['sub-01_task-rest_run-1'"):
        cross_dataset_split(tiny_prepared, other)  # same recordings (provenance checksums)
    other.provenance = {}
    a, split_a, b, split_b, info = cross_dataset_split(tiny_prepared, other)
    assert a.ch_names == b.ch_names == [c for c in names if c in names[::-1][:12]]
    assert info["channels"]["n_common"] == 12 and not split_a.selections["test"] and not split_b.selections["train"]
    assert b.subjects == ["test-01", "test-02"]
    np.testing.assert_array_equal(b.runs[0].features, other.runs[0].features[:, [other.ch_names.index(c.upper()) for c in b.ch_names]])
    shifted = restrict_dataset(tiny_prepared, names)
    shifted.affine = shifted.affine.copy()
    shifted.affine[0, 3] += 5
    with pytest.raises(Eeg2fmriInputError, match=r"found differences: affine \(voxel-to-world\); for the grid, put the BOLD of both on one grid: prepare the test dataset onto the training dataset.s grid with the prepare option grid set to its mask.*; otherwise prepare both with the same options"):
        check_same_space(tiny_prepared, shifted)
    # bands "auto" adapted to another rate (user test 54): the fix names the bands to give both, not "the same options"
    import dataclasses
    import re

    capped = restrict_dataset(tiny_prepared, names)
    bands = dict(tiny_prepared.config.bands)
    top = list(bands)[-1]
    capped.config = dataclasses.replace(tiny_prepared.config, bands={**bands, top: (bands[top][0], bands[top][1] - 5.0)})
    want = re.escape(f'"{top}": [{float(bands[top][0])}, {float(bands[top][1])}]')
    with pytest.raises(Eeg2fmriInputError, match=r"for the bands, give both datasets the same bands explicitly \(bands 'auto'.*prepare option bands: \{.*" + want):
        check_same_space(tiny_prepared, capped)


def test_reference_on_raw_windows(tiny_bids):
    """ridge_hrf is shown for a raw-EEG dataset too, on band-power windows derived from the same data and volumes."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.reference import bandpower_view
    from eeg2fmri.training import fit_model

    ds = prepare_dataset(tiny_bids, {"representation": "raw", "raw_sfreq": 50.0}, progress_bar=False)
    sp = make_split(ds, "loso", test_subjects=["01"])
    tg = split_targets(ds, sp)
    mean = fit_model(ds, sp, "mean", targets=tg).model
    res = evaluate_models(ds, sp, tg, {"mean": mean}, n_boot=0)
    assert res["reference"]["available"] and "band-power windows derived from the raw data" in res["reference"]["note"]
    assert res["models"] == ["ridge_hrf", "mean"] and np.isfinite(res["group"]["models"]["ridge_hrf"]["median_r"])
    view, vsp = bandpower_view(ds, sp)
    assert view.runs[0].features.shape[1:] == (16, 3) and vsp.n_frames == 9  # delta, theta, alpha lie below 25 Hz
    np.testing.assert_array_equal(vsp.selections["test"][0], sp.selections["test"][0])  # the same test volumes
    # no band below the raw data's Nyquist frequency: the reason is recorded, the rest is scored
    ds.config = ds.config.__class__(**{**ds.config.to_dict(), "bands": {"gamma": (30.0, 45.0)}})
    res = evaluate_models(ds, sp, tg, {"mean": mean}, n_boot=0)
    assert not res["reference"]["available"] and "lies below the raw data's Nyquist frequency (25 Hz)" in res["reference"]["reason"]


def test_circular_shift_null_distribution():
    """The null of the median r over circular shifts: near 0 for unrelated alignment, far below a real prediction."""
    from eeg2fmri.evaluation.metrics import pearson_r
    from eeg2fmri.evaluation.protocol import _null_level, _shift_null_distribution

    rng = np.random.default_rng(0)
    runs = []
    for n in (130, 97):  # two runs of different lengths: each is shifted within itself
        y = rng.standard_normal((n, 23)).astype(np.float32)
        runs.append({"y": y, "preds": {"m": y + rng.standard_normal((n, 23)).astype(np.float32)}})
    y = np.concatenate([r["y"] for r in runs])
    p = np.concatenate([r["preds"]["m"] for r in runs])
    dist = _shift_null_distribution(y, runs, "m")
    assert dist is not None and len(dist) == 96  # every shift: fractions i / 97 of each run, i = 1 .. 96
    assert abs(float(np.median(dist))) < 0.05 and _null_level(dist) < 0.12
    # _null_level: the floor(0.05 * 97) = 4th largest, so that exceeding it is p <= 0.05
    assert _null_level(dist) == np.sort(dist)[-4]
    assert np.median(pearson_r(y, p)) > 0.6
    # too short for a 5 % test (19 volumes): no distribution
    short = [{"y": y[:19], "preds": {"m": p[:19]}}]
    assert _shift_null_distribution(y[:19], short, "m") is None
    assert _shift_null_distribution(y[:20], [{"y": y[:20], "preds": {"m": p[:20]}}], "m") is not None


def test_shift_null_in_passes_of_bounded_memory_is_the_same(monkeypatch):
    """The whole-mask null holds NULL_MEMORY bytes of shifted r at once; in many small passes it is the same."""
    rng = np.random.default_rng(4)
    runs = [{"y": rng.standard_normal((n, 11)), "preds": {"m": rng.standard_normal((n, 11))}} for n in (43, 38)]
    y = np.concatenate([r["y"] for r in runs])
    whole = _shift_null_distribution(y, runs, "m")
    monkeypatch.setattr("eeg2fmri.evaluation.protocol.NULL_MEMORY", 8 * 11 * 3)  # three shifts per pass
    np.testing.assert_array_equal(_shift_null_distribution(y, runs, "m"), whole)


def test_median_r_null_passes_five_percent_of_unrelated_slow_data():
    """User test 19: with the shifts kept 10 % of a run and 16 s from alignment, unrelated AR(0.9) targets and predictions
    (a shared slow signal in each, as brains have) passed the median-r null 10-12 % of the time; every shift: ~5 %."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(2)

    def ar(shape):
        return lfilter([1.0], [1.0, -0.9], rng.standard_normal((shape[0] + 100, *shape[1:])), axis=0)[100:]

    n, v, reps, passed = 120, 60, 300, 0
    for _ in range(reps):
        y = 0.5 * ar((n, 1)) * rng.uniform(0.5, 1.5, v) + ar((n, v))
        p = 0.5 * ar((n, 1)) * rng.uniform(0.5, 1.5, v) + ar((n, v))
        runs = [{"y": y, "preds": {"m": p}}]
        passed += np.median(_circular_shift_r(y, [p], [(0,)])[0]) > _null_level(_shift_null_distribution(y, runs, "m"))
    assert 0.02 < passed / reps < 0.085


@pytest.mark.parametrize("chunk", [None, 300])
def test_circular_shift_r_equals_pearson_of_rolled_predictions(chunk, monkeypatch):
    """The FFT computation of every shift's voxel r equals np.roll + pearson_r: runs of different lengths, a voxel
    constant in the targets, one constant in the predictions, one constant within a run only, voxel chunks."""
    from eeg2fmri.evaluation.metrics import pearson_r
    from eeg2fmri.evaluation.protocol import _circular_shift_r, _shift_null_distribution

    if chunk is not None:
        monkeypatch.setattr("eeg2fmri.utils.stats.CHUNK_ELEMS", chunk)  # a few voxels per chunk
    rng = np.random.default_rng(1)
    lens, v = (41, 29, 53), 17
    ys = [rng.standard_normal((n, v)).astype(np.float32) for n in lens]
    ps = [(0.5 * y + rng.standard_normal((n, v))).astype(np.float32) for y, n in zip(ys, lens)]
    for y, p in zip(ys, ps):
        y[:, 3] = 2.0  # constant target voxel
        p[:, 5] = -1.0  # constant prediction voxel
    ps[1][:, 7] = 4.0  # constant within one run only: defined r
    y = np.concatenate(ys)
    shifts = [(0, 0, 0), (5, 3, 11), (40, 1, 52), (17, 28, 26)]
    got = _circular_shift_r(y, ps, shifts)
    for sh, g in zip(shifts, got):
        want = np.asarray(pearson_r(y, np.concatenate([np.roll(p, k, axis=0) for p, k in zip(ps, sh)])), dtype=np.float64)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(want))
        assert np.isnan(g[3]) and np.isnan(g[5]) and np.isfinite(g[7])
        np.testing.assert_allclose(g[np.isfinite(g)], want[np.isfinite(want)], rtol=0, atol=1e-12)
    runs = [{"y": yy, "preds": {"m": pp}} for yy, pp in zip(ys, ps)]
    dist = _shift_null_distribution(y, runs, "m")
    order = [tuple(round(i * n / 29) % n for n in lens) for i in range(1, 29)]  # fractions i / 29 (the shortest run)
    want = [np.nanmedian(pearson_r(y, np.concatenate([np.roll(p, k, axis=0) for p, k in zip(ps, sh)]))) for sh in order]
    np.testing.assert_allclose(dist, want, rtol=0, atol=1e-12)


def test_shift_null_keeps_near_shifts_and_a_real_smooth_signal_still_passes():
    """Every shift is in the null, near-aligned ones included (they make the test exact under no relation; user test
    19), so on a smooth related signal the level is set by near shifts (an audit of session 14 saw 0.15 on 30-volume
    runs and moved the shifts 16 s away, which made the test pass unrelated series 10-12 % of the time). The aligned
    median r is the peak of its neighbourhood, so a real signal on 30-volume runs still passes."""
    from eeg2fmri.evaluation.metrics import pearson_r

    rng = np.random.default_rng(3)
    lens, v = (30, 34), 200
    runs = []
    for n in lens:
        s = np.zeros((n, 1))
        for t in range(1, n):  # AR(0.9): smooth, as BOLD is
            s[t] = 0.9 * s[t - 1] + rng.standard_normal()
        y = s + 0.5 * rng.standard_normal((n, v))
        runs.append({"y": y, "preds": {"m": s + 0.5 * rng.standard_normal((n, v))}})
    y = np.concatenate([r["y"] for r in runs])
    p = np.concatenate([r["preds"]["m"] for r in runs])
    got = _shift_null_distribution(y, runs, "m", tr=2.0)
    assert len(got) == 29 and np.array_equal(got, _shift_null_distribution(y, runs, "m"))  # (targets not detrended: the TR plays no part)
    assert float(np.nanmedian(pearson_r(y, p))) > _null_level(got) > 0.15
def test_measured_block_len_follows_the_autocorrelation():
    rng = np.random.default_rng(0)
    n, v = 400, 30
    white = rng.standard_normal((n, v))
    assert measured_block_len(white, 2.0) == default_block_len(n, 2.0)  # no memory: the HRF-span rule
    ar = np.empty((n, v))
    ar[0] = rng.standard_normal(v)
    for t in range(1, n):
        ar[t] = 0.9 * ar[t - 1] + np.sqrt(1 - 0.81) * rng.standard_normal(v)
    # rho^k < 0.1 from k = 22 on (0.9 ** 22 = 0.098); estimated: within a few lags; blocks twice that
    bl = measured_block_len(ar, 2.0)
    assert 30 <= bl <= 60
    # the FFT autocorrelation equals the direct sum at a lag
    x = ar[:, 0] - ar[:, 0].mean()
    direct = np.dot(x[:-5], x[5:]) / np.dot(x, x)
    f = np.fft.rfft(x, n=2 * n)
    assert np.fft.irfft(np.abs(f) ** 2)[5] / np.dot(x, x) == pytest.approx(direct)
    assert measured_block_len(np.zeros((50, 3)), 2.0) == default_block_len(50, 2.0)
    assert measured_block_len(ar[:20], 2.0) <= 10  # capped at half the series


def test_unseen_subject_targets_use_training_scale(tiny_prepared):
    """A held-out subject's targets are not scaled by its own variance (that would flatter R² and MSE)."""
    import copy

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.preprocessing.bold import detrend

    ds = copy.copy(tiny_prepared)
    ds.runs = [copy.copy(r) for r in tiny_prepared.runs]
    sp = make_split(ds, "loso", test_subjects=[ds.runs[-1].subject])
    (i_test, vols), = sp.selections["test"].items()
    base = split_targets(ds, sp)
    own = split_targets(ds, sp, unseen_scale="own")
    # the held-out run by hand: relative change / the training runs' median relative sd
    rel = []
    for i, v in sp.selections["train"].items():
        raw = np.asarray(ds.runs[i].bold[v], dtype=np.float64)
        rel.append(detrend(raw, ds.tr).std(0) / raw.mean(0))
    raw = np.asarray(ds.runs[i_test].bold[vols], dtype=np.float64)
    expected = detrend(raw, ds.tr) / (np.median(np.stack(rel), 0) * raw.mean(0))
    np.testing.assert_allclose(base["test"][i_test], expected, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(own["test"][i_test].std(0), 1.0, rtol=1e-3)
    for name in ("train", "val"):  # runs with a training span are untouched
        for i in base[name]:
            np.testing.assert_array_equal(base[name][i], own[name][i])
    # triple the held-out subject's fluctuations around its baseline: "own" hides it, "train" shows it
    bold = np.asarray(ds.runs[i_test].bold, dtype=np.float64)
    m = bold[vols].mean(0)  # the span's baseline stays, its fluctuations triple
    run = ds.runs[i_test]
    run.bold = (m + 3.0 * (bold - m)).astype(np.float32)
    louder = split_targets(ds, sp)["test"][i_test]
    np.testing.assert_allclose(louder.std(0), 3.0 * base["test"][i_test].std(0), rtol=1e-3)
    np.testing.assert_allclose(split_targets(ds, sp, unseen_scale="own")["test"][i_test].std(0), 1.0, rtol=1e-3)
    # without a usable baseline (demeaned data) a voxel falls back to its own scale
    for r in ds.runs:
        b = np.asarray(r.bold, dtype=np.float64)
        r.bold = (b - b.mean(0)).astype(np.float32)
    np.testing.assert_allclose(split_targets(ds, sp)["test"][i_test].std(0), 1.0, rtol=1e-3)
    with pytest.raises(Eeg2fmriInputError, match="unseen_scale"):
        split_targets(ds, sp, unseen_scale="test")


def test_temporal_split_refuses_spans_of_one_volume():
    """A within-run span of a single volume cannot be scored (a correlation needs 2): the split says so and how to fix it,
    instead of a later error about array axes; a span given no share (fraction 0) may stay empty."""
    from eeg2fmri.datasets.splits import temporal_split

    ok = temporal_split(40, 3, gap=2)
    assert min(len(v) for v in ok.values()) >= 2
    with pytest.raises(Eeg2fmriInputError, match=r"the val/test span would hold 1/1 volume\(s\), expected at least 2; .* \(protocol loso\)"):
        temporal_split(16, 3, gap=2, fractions=(0.8, 0.1, 0.1))
    legacy = temporal_split(40, 3, gap=2, fractions=(0.8, 0.2, 0.0))
    assert len(legacy["test"]) == 0 and legacy["val"][-1] < 39  # the subject-wise protocols' training runs: the gap stays unused
    empty = temporal_split(40, 3, gap=2, fractions=(0.8, 0.2, 0.0), test_gap=False)
    assert len(empty["test"]) == 0
    # no test span: one gap only, the validation span runs to the last volume (no volume left unused but the gap)
    assert empty["train"][0] == 3 and empty["val"][-1] == 39
    assert empty["val"][0] - empty["train"][-1] - 1 == 2
    assert len(empty["train"]) + len(empty["val"]) == 40 - 3 - 2


def test_extra_metrics_of_ones_own_are_scored_beside_the_built_in_ones(tiny_prepared):
    """evaluate_split(..., extra_metrics={"name": fn}) computes fn(y_true, y_pred) for every model and subject on the same test
    windows (checked against scipy's Spearman on the predictions the results keep) and averages it over subjects."""
    from scipy.stats import spearmanr

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.protocol import evaluate_split
    from eeg2fmri.training import fit_model

    def median_spearman(y, p):  # (undefined for the subject-mean baseline's constant columns)
        rho = [spearmanr(y[:, j], p[:, j])[0] for j in range(y.shape[1]) if np.ptp(p[:, j]) > 0]
        return float(np.median(rho)) if rho else float("nan")

    split = make_split(tiny_prepared, "loso")
    split = split[0] if isinstance(split, list) else split
    targets = split_targets(tiny_prepared, split)
    fitted = fit_model(tiny_prepared, split, "ridge_hrf", targets=targets)
    res = evaluate_split(tiny_prepared, split, targets, fitted.model, n_boot=0, extra_metrics={"median_spearman": median_spearman,
                                                                                               "mean_abs": lambda y, p: np.abs(p).mean()})
    subs = sorted(res["per_subject"])
    for s in subs:
        run = next(r for r in res["runs"].values() if r["subject"] == s)
        got = res["per_subject"][s]["models"]["ridge_hrf"]
        assert got["median_spearman"] == pytest.approx(median_spearman(run["_y"], run["_preds"]["ridge_hrf"]), abs=1e-6)
        assert got["mean_abs"] == pytest.approx(float(np.abs(run["_preds"]["ridge_hrf"]).mean()), rel=1e-5)
    assert res["group"]["models"]["ridge_hrf"]["median_spearman"] == pytest.approx(
        np.mean([res["per_subject"][s]["models"]["ridge_hrf"]["median_spearman"] for s in subs]))
    with pytest.raises(Eeg2fmriInputError, match=r"extra_metrics: expected a new metric name, got 'rmse'"):
        evaluate_split(tiny_prepared, split, targets, fitted.model, n_boot=0, extra_metrics={"rmse": median_spearman})
    with pytest.raises(Eeg2fmriInputError, match=r"extra_metrics\['per_voxel'\]: expected one number per subject .* got ndarray of shape"):
        evaluate_split(tiny_prepared, split, targets, fitted.model, n_boot=0, extra_metrics={"per_voxel": lambda y, p: p.mean(0)})


def test_group_mean_over_subjects_that_have_a_value_is_recorded():
    """A subject without a value (a short test span has no shifted-null distribution) or with NaN: the group mean is over
    the others and says how many (it dropped the key from the group, or nanmeaned in silence)."""
    from eeg2fmri.evaluation.protocol import _group

    per = {"01": {"models": {"m": {"median_r": 0.2, "null_p95_median_r": 0.05, "rmse": 1.0}}},
           "02": {"models": {"m": {"median_r": 0.4, "rmse": float("nan")}}},
           "03": {"models": {"m": {"median_r": 0.3, "null_p95_median_r": 0.07, "rmse": 3.0}}}}
    g = _group(per, {}, ["m"], ["m"], None, 0.95)["models"]["m"]
    assert g["median_r"] == pytest.approx(0.3) and g["null_p95_median_r"] == pytest.approx(0.06) and g["rmse"] == pytest.approx(2.0)
    assert g["n_subjects_with"] == {"null_p95_median_r": 2, "rmse": 2}
    per["02"]["models"]["m"].update(null_p95_median_r=0.09, rmse=2.0)
    assert "n_subjects_with" not in _group(per, {}, ["m"], ["m"], None, 0.95)["models"]["m"]


def test_measured_block_len_from_a_subsample_of_voxels_equals_all_voxels(monkeypatch):
    """More voxels than ACF_VOXELS: the median autocorrelation comes from evenly spaced voxels, the block length of all
    of them to within one lag (the crossing of the threshold moves by sampling error; AR(1) residuals of three
    strengths, 500 of 3,000 voxels; the NODDI-sized evaluation spent 3.4 s of 9 s here)."""
    from scipy.signal import lfilter

    import eeg2fmri.evaluation.protocol as P

    rng = np.random.default_rng(4)
    for a in (0.3, 0.7, 0.9):
        res = lfilter([1.0], [1.0, -a], rng.standard_normal((300, 3000)), axis=0).astype(np.float32)
        monkeypatch.setattr(P, "ACF_VOXELS", 10**9)
        full = P.measured_block_len(res, 1.0)
        monkeypatch.setattr(P, "ACF_VOXELS", 500)
        assert abs(P.measured_block_len(res, 1.0) - full) <= 2
        assert full > P.default_block_len(300, 1.0) or a < 0.9


def test_constant_voxels_get_zero_targets_not_standardised_rounding(tiny_prepared, caplog):
    """A voxel constant over a span (background of a mask reaching beyond the data, e.g. int16 with an intercept: -100)
    was detrended to rounding residue and standardised into unit-variance noise (a user test: test MSE 35.9, median r
    inflated); its targets are now exactly 0 in every split, the other voxels unchanged, and it is warned once per run (not per span or fold)."""
    import copy
    import logging

    from eeg2fmri.datasets import targets as tg
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.metrics import voxelwise_r

    ds = copy.copy(tiny_prepared)
    ds.runs = [copy.copy(r) for r in tiny_prepared.runs]
    sp = make_split(ds, "loso", test_subjects=[ds.runs[-1].subject])
    base = split_targets(ds, sp)
    for r in ds.runs:
        b = np.array(r.bold, dtype=np.float32)
        b[:, 0], b[:, 1], b[:, 2] = -100.0, 1234.5, 0.0  # constant: negative, positive, zero
        r.bold = b
    tg._warned_constant.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        got = split_targets(ds, sp)
        split_targets(ds, sp)  # a second call (another fold) does not repeat the warning
    for name in got:
        for i, y in got[name].items():
            assert np.all(y[:, :3] == 0.0), (name, i)
            np.testing.assert_allclose(y[:, 3:], base[name][i][:, 3:], rtol=1e-5, atol=1e-6)
    n_warn = caplog.text.count("voxels of the mask are constant over the")
    assert n_warn == len(ds.runs) and "3 of" in caplog.text and "mask: data" in caplog.text
    (i_test, _), = sp.selections["test"].items()
    r = voxelwise_r(got["test"][i_test], np.random.default_rng(0).standard_normal(got["test"][i_test].shape))
    assert np.isnan(r[:3]).all() and np.isfinite(r[3:]).all()  # undefined r: left out of the medians
    # a quiet but real voxel is not constant
    y = np.random.default_rng(1).standard_normal((40, 3)) * np.array([1.0, 1e-2, 1e-9])  # relative sd 1e-3, 1e-5, 1e-12
    assert tg._constant_voxels(y, np.array([1000.0, 1000.0, 1000.0])).tolist() == [False, False, True]


def test_roi_shift_null_is_the_5_percent_level_over_every_rolled_roi_mean():
    """Per ROI: the floor(0.05 N)-th largest, over every circular shift (the same fraction i / N of each run, N the
    shortest run), of r(ROI-mean target, ROI-mean prediction rolled within each run), recomputed here with np.roll and
    np.corrcoef; score_runs records it per model (user test 15: a control region's LOSO r of 0.24 was at chance level
    for its slow series, and nothing said so; user test 19: the far shifts alone passed 8-13 % of unrelated series)."""
    from eeg2fmri.evaluation.protocol import _roi_shift_null_p95

    rng = np.random.default_rng(7)
    lens, v = (61, 47), 19
    labels = np.array([1] * 6 + [2] * 5 + [0] * 3 + [5] * 5)
    runs = []
    for n in lens:
        s = np.cumsum(rng.standard_normal((n, 1)), 0) * 0.3  # slow: a random walk
        y = s + rng.standard_normal((n, v))
        runs.append({"y": y.astype(np.float32), "preds": {"m": (s + rng.standard_normal((n, v))).astype(np.float32)}})
    y = np.concatenate([r["y"] for r in runs])
    got = _roi_shift_null_p95(y, runs, "m", labels, [1, 2, 5], tr=2.0)
    order = [(round(i * 61 / 47) % 61, i) for i in range(1, 47)]  # runs of 61 and 47 volumes: fractions i / 47
    for k in (1, 2, 5):
        cols = labels == k
        ym = y[:, cols].astype(np.float64).mean(1)
        rs = [np.corrcoef(ym, np.concatenate([np.roll(r["preds"]["m"][:, cols].astype(np.float64).mean(1), sh_j) for r, sh_j in zip(runs, sh)]))[0, 1]
              for sh in order]
        assert got[k] == pytest.approx(sorted(rs, reverse=True)[1], abs=1e-9)  # floor(0.05 * 47) = 2nd largest
    mask = np.ones((v, 1, 1), bool)
    core = score_runs([{"subject": "01", "key": f"sub-01_run-{i}", **r} for i, r in enumerate(runs)], ["m"], mask, 2.0, labels=labels, n_boot=0)
    m = core["per_subject"]["01"]["models"]["m"]
    assert set(m["roi_null_p95"]) == set(m["roi_r"]) == {"1", "2", "5"}
    assert m["roi_null_p95"]["2"] == pytest.approx(got[2], abs=1e-9)
    # too short for the shifts: no null
    short = [{"y": r["y"][:8], "preds": {"m": r["preds"]["m"][:8]}} for r in runs]
    assert _roi_shift_null_p95(np.concatenate([r["y"] for r in short]), short, "m", labels, [1], tr=2.0) is None


def test_roi_shift_null_passes_five_percent_of_unrelated_slow_series():
    """User test 19: the null over far shifts only let 8-13 % of unrelated AR(0.9) series pass; every shift: ~5 %."""
    from scipy.signal import lfilter

    from eeg2fmri.evaluation.protocol import _roi_shift_null_p95

    rng = np.random.default_rng(5)
    n_roi, lens = 1500, (70, 55)
    runs = []
    for n in lens:
        ar = [lfilter([1.0], [1.0, -0.9], rng.standard_normal((n + 100, n_roi)), axis=0)[100:] for _ in range(2)]
        runs.append({"y": ar[0], "preds": {"m": ar[1]}})
    y = np.concatenate([r["y"] for r in runs])
    p = np.concatenate([r["preds"]["m"] for r in runs])
    null = _roi_shift_null_p95(y, runs, "m", np.arange(1, n_roi + 1), list(range(1, n_roi + 1)))
    r = np.array([np.corrcoef(y[:, j], p[:, j])[0, 1] for j in range(n_roi)])
    assert 0.025 < np.mean(r > np.array([null[k] for k in range(1, n_roi + 1)])) < 0.075


def test_per_roi_table_marks_r_at_chance_level():
    """roi_rows: an ROI's mean r not above the mean over subjects of its shifted null's 95th percentile ends in the mark,
    and the table says what the mark means."""
    from eeg2fmri.plotting.report import (
        ROI_NULL_MARK,
        ROI_NULL_NOTE,
        ROI_NULL_NOTE_SUBJECTS,
        roi_at_chance,
        roi_rows,
        roi_table,
    )

    ps = {s: {"models": {"a": {"roi_r": {"1": r1, "2": 0.8}, "roi_null_p95": {"1": 0.2, "2": 0.2}}, "b": {"roi_r": {"1": 0.5, "2": 0.1}}}}
          for s, r1 in (("01", 0.1), ("02", 0.25))}
    res = {"per_subject": ps, "settings": {"roi_names": {"1": "ctrl"}, "roi_voxels": {"1": 9, "2": 4}}}
    rows, n = roi_rows(res, ["a", "b"])
    assert n == 2 and rows == [["1 ctrl", "9", "0.175" + ROI_NULL_MARK, "0.500"], ["2", "4", "0.800", "0.100"]]  # b: no null recorded
    table = roi_table(res, ["a", "b"])
    assert f"{ROI_NULL_NOTE}." in table
    loso = roi_table({**res, "protocol": "loso"}, ["a", "b"])  # whole held-out subjects: no advice to hold them out (user test 48)
    assert f"{ROI_NULL_NOTE_SUBJECTS}." in loso and f"{ROI_NULL_NOTE}." not in loso and "or whole held-out subjects" not in " ".join(loso)
    cross = roi_table({**res, "protocol": "cross-dataset"}, ["a", "b"])  # whole recordings of another dataset (user test 54)
    assert f"{ROI_NULL_NOTE_SUBJECTS}." in cross and f"{ROI_NULL_NOTE}." not in cross
    ps["02"]["models"]["a"]["roi_r"]["1"] = 0.35  # mean 0.225 > 0.2: no mark, no note
    assert ROI_NULL_NOTE + "." not in roi_table(res, ["a", "b"]) and roi_rows(res, ["a"])[0][0][2] == "0.225"
    # b has ROI r but no null in any subject (short test spans): said under the table (user test 17: r 0.38 unmarked)
    assert any(line.startswith("No time-shifted null could be formed for b (test spans too short") for line in roi_table(res, ["a", "b"]))
    assert not any(line.startswith("No time-shifted null") for line in roi_table(res, ["a"]))
    # the mark compares r and null over the same subjects; metrics.json read back holds None for NaN (review)
    ps["01"]["models"]["a"]["roi_r"]["1"] = 0.10
    ps["02"]["models"]["a"]["roi_r"]["1"] = 0.90
    del ps["02"]["models"]["a"]["roi_null_p95"]["1"]  # only subject 01 has a null for ROI 1: 0.10 vs 0.2, at chance
    assert roi_rows(res, ["a"])[0][0][2] == "0.500" + ROI_NULL_MARK
    ps["02"]["models"]["b"]["roi_r"]["2"] = None
    assert roi_rows(res, ["b"])[0][1][2] == "0.100"
    # several subjects: the group's level of the mean decides (session 32), not the mean of the subjects' levels
    res["group"] = {"models": {"a": {"roi_null_p95": {"1": 0.45, "2": 0.9}, "roi_r_subjects_with_null": {"1": 0.5, "2": 0.8}}}}
    assert [r[2] for r in roi_rows(res, ["a"])[0]] == ["0.500", "0.800" + ROI_NULL_MARK]
    assert roi_at_chance(res, "a") == {"1": False, "2": True}
    res["group"]["models"]["a"]["roi_null_p95"]["1"] = None  # (NaN read back from metrics.json): the subjects' levels decide
    assert roi_rows(res, ["a"])[0][0][2] == "0.500" + ROI_NULL_MARK


def test_per_roi_table_says_multiplicity_opposite_signs_and_each_subjects_best_roi():
    """User test 45: a different focus per subject vanished in the mean over subjects (a best-ROI table per subject now),
    one ROI of ten passing went without the note that ~0.5 pass by chance, and ROIs predicted with the opposite sign beyond
    chance went unsaid."""
    from eeg2fmri.plotting.report import ROI_NULL_MARK, roi_table

    keys = [str(k) for k in range(1, 7)]
    ps = {}
    for i, s_ in enumerate(("01", "02", "03")):
        r = {k: 0.02 for k in keys}
        r[keys[i]] = 0.7  # each subject's own focus
        r["6"] = -0.5
        ps[s_] = {"models": {"m": {"roi_r": r, "roi_null_p95": {k: 0.3 for k in keys}}}}
    ps["03"]["models"]["m"]["roi_r"]["3"] = 0.2  # subject 03's best ROI is below its level
    res = {"per_subject": ps, "settings": {"roi_names": {"6": "dmn"}, "roi_voxels": {k: 5 for k in keys}},
           "group": {"models": {"m": {"roi_null_p95": {k: 0.25 for k in keys}, "roi_r_subjects_with_null": {"6": -0.5, "1": 0.25}}}}}
    lines = roi_table(res, ["m"])
    text = "\n".join(lines)
    assert "Each of the 6 ROIs is tested on its own at 5 % (uncorrected): about 0.3 of them pass per model" in text
    assert "m: ROI r below minus its chance level (predicted with the opposite sign, beyond chance): 6 dmn (-0.500)." in text
    i = lines.index("#### Best ROI per test subject")
    rows = [ln for ln in lines[i:] if ln.startswith("| 0")]
    assert rows == ["| 01 | 1 0.700 (chance 0.300) |", "| 02 | 2 0.700 (chance 0.300) |",
                    f"| 03 | 3 0.200 (chance 0.300, {ROI_NULL_MARK}) |"]
    # one test subject: no per-subject table; fewer than 5 ROIs: no multiplicity note
    one = {"per_subject": {"01": ps["01"]}, "settings": res["settings"]}
    assert "#### Best ROI per test subject" not in roi_table(one, ["m"])
    few = {"per_subject": {s_: {"models": {"m": {"roi_r": {k: v for k, v in p["models"]["m"]["roi_r"].items() if k in ("1", "2")},
                                                 "roi_null_p95": {"1": 0.3, "2": 0.3}}}} for s_, p in ps.items()}, "settings": res["settings"]}
    assert not any(ln.startswith("Each of the") for ln in roi_table(few, ["m"]))


def test_group_roi_levels_equal_group_null_level_and_hold_five_percent():
    """group_roi_null_levels: per ROI the level of the mean over subjects of one shift drawn per subject -- equal to
    group_null_level for an ROI every subject holds, and passed by ~5 % of unrelated slow ROIs over three subjects through
    score_runs (before session 32 the per-ROI mark used the mean of the subjects' levels: stricter than 5 %)."""
    from scipy.signal import lfilter
    from scipy.stats import norm

    from eeg2fmri.evaluation.protocol import group_null_level, group_roi_null_levels

    rng = np.random.default_rng(3)
    pools = [{"1": rng.normal(0, 0.2, 401), "2": rng.normal(0.1, 0.1, 401)}, {"1": rng.normal(0, 0.3, 577), "2": rng.normal(0, 0.1, 577)}]
    got = group_roi_null_levels(pools, random_state=5, n_draws=20_000)
    for k in ("1", "2"):
        assert got[k] == pytest.approx(group_null_level([p[k] for p in pools], random_state=5, n_draws=20_000), abs=1e-12)
    # an ROI one subject lacks (or holds a NaN for) is the level over the others; a single subject: its own level
    pools[1]["3"] = rng.permutation(0.2 * norm.ppf((np.arange(577) + 0.5) / 577))  # (no gaps between order statistics)
    pools[0]["3"] = np.full(401, np.nan)
    one = group_roi_null_levels([pools[1]], n_draws=20_000)
    assert group_roi_null_levels(pools, n_draws=20_000)["3"] == one["3"]  # (one subject holds it: its own level, exactly)
    # one subject: its own level over its shifts -- the pool's last value is the aligned r, no shift (a review: with it, an
    # aligned r above every shift of a short span was its own level and could never pass)
    from eeg2fmri.evaluation.protocol import _null_level

    assert one["3"] == pytest.approx(group_null_level([pools[1]["3"]]), abs=1e-12) == _null_level(pools[1]["3"][:-1])
    short = np.append(np.linspace(-0.2, 0.2, 24), 0.35)  # 24 shifts, an aligned r above them all (p = 1/25 = 0.04)
    assert group_roi_null_levels([{"1": short}])["1"] < 0.35 and group_null_level([short]) < 0.35
    # false positives through score_runs: 3 subjects x 2 runs of unrelated AR(0.9) series, 300 ROIs of one voxel each
    n_roi = 300
    runs = []
    for s in ("01", "02", "03"):
        for i, n in enumerate((48, 37)):
            ar = [lfilter([1.0], [1.0, -0.9], rng.standard_normal((n + 100, n_roi)), axis=0)[100:].astype(np.float32) for _ in range(2)]
            runs.append({"subject": s, "key": f"sub-{s}_run-{i}", "y": ar[0], "preds": {"m": ar[1]}})
    core = score_runs(runs, ["m"], None, 2.0, labels=np.arange(1, n_roi + 1), n_boot=0, reference=None, baseline=None)
    g = core["group"]["models"]["m"]
    passed = np.mean([g["roi_r_subjects_with_null"][k] > g["roi_null_p95"][k] for k in g["roi_null_p95"]])
    old = np.mean([np.mean([core["per_subject"][s]["models"]["m"]["roi_r"][k] for s in ("01", "02", "03")])
                   > np.mean([core["per_subject"][s]["models"]["m"]["roi_null_p95"][k] for s in ("01", "02", "03")]) for k in g["roi_null_p95"]])
    assert 0.02 < passed < 0.09 and old < passed


def test_circular_shift_level_is_the_five_percent_test_over_the_shifts():
    """utils.stats.circular_shift_level (the level of every time-shifted null): an aligned score exceeds it exactly when
    its p-value over the circular shifts, (1 + #{shifted >= aligned}) / N, is at most 0.05; columns are separate tests."""
    from eeg2fmri.utils.stats import circular_shift_level

    rng = np.random.default_rng(11)
    n = 47
    y = np.convolve(rng.standard_normal(n + 6), np.ones(7) / 7, mode="valid")
    cols = []
    for strength in (0.0, 0.3, 1.0, 3.0):
        p_ = strength * y + np.convolve(rng.standard_normal(n + 6), np.ones(7) / 7, mode="valid")
        shifted = np.array([np.corrcoef(y, np.roll(p_, s))[0, 1] for s in range(1, n)])
        r0 = np.corrcoef(y, p_)[0, 1]
        assert (r0 > circular_shift_level(shifted)) == ((1 + np.sum(shifted >= r0)) / n <= 0.05)
        cols.append(shifted)
    both = circular_shift_level(np.stack(cols, 1))
    np.testing.assert_array_equal(both, [circular_shift_level(c) for c in cols])
    assert np.isnan(circular_shift_level(np.zeros(18)))  # 19 values: no 5 % test


def test_group_null_level_is_the_level_of_the_mean_over_subjects():
    """User test 34: the group's 5 % level was the mean of the subjects' levels, stricter than a 5 % test of the mean
    (0.145 against 0.092 over four subjects: a model with r 0.108 was called chance). The level of the mean of one shift
    drawn per subject: against the exact distribution of that mean (every combination of two subjects' shifts), below the
    mean of the levels, one subject its own level; _group uses it where every subject has a null, the mean of the levels
    elsewhere (as before)."""
    from eeg2fmri.evaluation.protocol import _group, _null_level, group_null_level

    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 0.05, 199), rng.normal(0.01, 0.08, 149)
    exact = _null_level((a[:, None] + b[None, :]).ravel() / 2)
    level = group_null_level([a, b])
    assert level == pytest.approx(exact, abs=0.002)
    assert level < (_null_level(a) + _null_level(b)) / 2 - 0.01
    assert group_null_level([a]) == _null_level(a[:-1]) and group_null_level([a, b], random_state=0) == level  # (one: over its shifts)
    assert np.isnan(group_null_level([a, np.array([np.nan])]))
    per = {"01": {"models": {"m": {"median_r": 0.2, "null_p95_median_r": _null_level(a), "null_median_r_shifts": list(a)}}},
           "02": {"models": {"m": {"median_r": 0.1, "null_p95_median_r": _null_level(b), "null_median_r_shifts": list(b)}}}}
    g = _group(per, {}, ["m"], ["m"], None, 0.95)["models"]["m"]
    # each subject's pool holds its shifts and its aligned median r (as the one-subject level counts it among N)
    assert g["null_p95_median_r"] == pytest.approx(group_null_level([np.append(a, 0.2), np.append(b, 0.1)]))
    assert "one circular shift drawn per subject" in g["null_level_over_subjects"] and "median_r_subjects_with_null" not in g
    # a subject without a null (a short test span): the level is over the others, and so is the median r it is compared with
    per["03"] = {"models": {"m": {"median_r": 0.9}}}
    g = _group(per, {}, ["m"], ["m"], None, 0.95)["models"]["m"]
    assert g["null_p95_median_r"] == pytest.approx(group_null_level([np.append(a, 0.2), np.append(b, 0.1)]))
    assert g["median_r_subjects_with_null"] == pytest.approx(0.15) and g["median_r"] == pytest.approx(0.4)
    assert "(the 2 of 3 subjects with a null)" in g["null_level_over_subjects"]
    from eeg2fmri.plotting.report import chance_verdict

    res = {"group": {"models": {"m": {**g, "null_p95_median_r": 0.2}}}, "settings": {"targets": "voxels"}}
    assert chance_verdict(res, "m") is not None  # 0.15 over the subjects with a null, not the 0.4 of all three
    del per["03"]
    del per["02"]["models"]["m"]["null_median_r_shifts"]  # (results written before session 31): the level of subject 01 alone
    g = _group(per, {}, ["m"], ["m"], None, 0.95)["models"]["m"]
    assert g["null_p95_median_r"] == pytest.approx(_null_level(a)) and g["median_r_subjects_with_null"] == pytest.approx(0.2)


def test_group_chance_level_holds_about_five_percent():
    """Under no relation (independent AR(0.9) series), the mean over 3 subjects of the median r exceeds the group level in
    about 5 % of repetitions (a review of session 31 measured 5.0-6.2 %; the mean of the subjects' levels, used before,
    0.0-0.2 %), through score_runs as evaluate uses it."""
    from scipy.signal import lfilter

    from eeg2fmri.evaluation.protocol import score_runs

    rng = np.random.default_rng(11)

    def ar(n, v):
        return lfilter([1.0], [1.0, -0.9], rng.standard_normal((n, v)), axis=0).astype(np.float32)

    hits, reps = 0, 300
    for _ in range(reps):
        runs = [{"key": f"r{s}", "subject": f"0{s}", "y": ar(100, 12), "preds": {"m": ar(100, 12)}} for s in range(3)]
        g = score_runs(runs, ["m"], None, 2.0, reference=None, baseline=None, n_boot=0)["group"]["models"]["m"]
        hits += g["median_r"] > g["null_p95_median_r"]
    assert 0.02 <= hits / reps <= 0.09, hits / reps


def test_too_few_bootstrap_blocks_are_said(caplog):
    """User test 34: 22 test volumes in blocks of 8 gave per-subject intervals that excluded a true r of 0 in 12-17 % of
    subject pairs; under 5 blocks the result says so (and the log), at 5 blocks or more it says nothing."""
    import logging

    rng = np.random.default_rng(0)
    mask = np.ones((3, 2, 2), bool)

    def run(n):
        return {"key": "k", "subject": "07", "y": rng.standard_normal((n, 12)).astype(np.float32),
                "preds": {"model": rng.standard_normal((n, 12)).astype(np.float32)}}

    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        core = score_runs([run(22)], ["model"], mask, 2.0, reference=None, baseline=None, n_boot=50, block_len=8)
    note = core["per_subject"]["07"]["bootstrap"]["note"]
    assert note.startswith("22 test volumes hold 2.8 blocks of 8: with fewer than 5 blocks a block bootstrap's intervals are too narrow")
    assert f"subject 07: {note}" in caplog.text
    core = score_runs([run(40)], ["model"], mask, 2.0, reference=None, baseline=None, n_boot=50, block_len=8)
    assert "note" not in core["per_subject"]["07"]["bootstrap"]
