"""Tests of eeg2fmri.evaluation.metrics: hand-computed values, independent
re-implementations, bootstrap coverage, and every input error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from eeg2fmri.evaluation import metrics as M
from eeg2fmri.utils.validation import Eeg2fmriInputError

# --------------------------------------------------------------------------- helpers


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], phi: float, burn: int = 100) -> np.ndarray:
    """Unit-variance stationary AR(1) series along axis 0."""
    e = rng.standard_normal((shape[0] + burn, *shape[1:])) * np.sqrt(1 - phi**2)
    return lfilter([1.0], [1.0, -phi], e, axis=0)[burn:]


def _naive_calhas_ssim(t: np.ndarray, p: np.ndarray, data_range="peer") -> float:
    """Straightforward loop version of the EEG-to-fMRI slice SSIM (tf.image.ssim, VALID)."""
    if t.ndim == 3:
        t, p = t[..., None], p[..., None]
    c = np.arange(11) - 5.0
    w = np.exp(-(c[:, None] ** 2 + c[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    X, Y, Z, T = t.shape
    vols = []
    for v in range(T):
        vals = []
        for k in range(Z // 3):
            a = t[:, :, 3 * k, v] + 1e-9
            b = p[:, :, 3 * k, v] + 1e-9
            if data_range == "peer":
                L = max(a.max(), b.max())
            elif data_range == "true_range":
                L = t[..., v].max() - t[..., v].min()
            else:
                L = data_range
            c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
            m = []
            for i in range(X - 10):
                for j in range(Y - 10):
                    pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
                    ma, mb = (w * pa).sum(), (w * pb).sum()
                    va = (w * (pa - ma) ** 2).sum()
                    vb = (w * (pb - mb) ** 2).sum()
                    cov = (w * (pa - ma) * (pb - mb)).sum()
                    m.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
            vals.append(np.mean(m))
        vols.append(np.mean(vals))
    return float(np.mean(vols))


# --------------------------------------------------------------------------- correlation


def test_pearson_r_matches_corrcoef_both_axes():
    rng = _rng(1)
    a = rng.standard_normal((7, 5))
    b = a * 0.5 + rng.standard_normal((7, 5))
    r = M.pearson_r(a, b)
    assert r.shape == (5,)
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(5)]
    np.testing.assert_allclose(r, expected, rtol=0, atol=1e-12)
    r1 = M.pearson_r(a.T, b.T, axis=1)
    np.testing.assert_allclose(r1, expected, atol=1e-12)
    r_neg = M.pearson_r(a.T, b.T, axis=-1)
    np.testing.assert_allclose(r_neg, expected, atol=1e-12)
    r32 = M.pearson_r(a.astype(np.float32), b.astype(np.float32))
    assert r32.dtype == np.float64
    np.testing.assert_allclose(r32, expected, atol=1e-6)
    # 3D: time on axis 2, result keeps the other axes
    c = rng.standard_normal((3, 4, 9))
    d = rng.standard_normal((3, 4, 9))
    r3 = M.pearson_r(c, d, axis=2)
    assert r3.shape == (3, 4)
    assert r3[2, 1] == pytest.approx(np.corrcoef(c[2, 1], d[2, 1])[0, 1], abs=1e-12)


def test_pearson_r_hand_value_and_1d_float():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([1.0, 3.0, 2.0, 5.0])
    # centred: x=(-1.5,-.5,.5,1.5) y=(-1.75,.25,-.75,2.25): sxy=5.5, sxx=5, syy=8.75
    r = M.pearson_r(x, y)
    assert isinstance(r, float)
    assert r == pytest.approx(5.5 / np.sqrt(5 * 8.75), abs=1e-14)
    assert M.pearson_r(x, -2 * x + 3) == pytest.approx(-1.0, abs=1e-15)


def test_pearson_r_constant_series_is_nan_without_warning():
    rng = _rng(2)
    a = rng.standard_normal((10, 3))
    b = rng.standard_normal((10, 3))
    a[:, 1] = 0.1  # not exactly representable: the mean differs from 0.1 by rounding
    b[:, 2] = 7.0
    r = M.pearson_r(a, b)  # warnings are errors in this repo's pytest config
    assert np.isfinite(r[0])
    assert np.isnan(r[1]) and np.isnan(r[2])


def test_r_of_shifted_sinusoid_is_cos_phase():
    t = np.arange(240)
    w = 2 * np.pi * 6 / 240  # whole number of periods
    phases = np.array([0.0, 0.3, np.pi / 2, 2.0, np.pi])
    y_true = np.repeat(np.sin(w * t)[:, None], phases.size, axis=1)
    y_pred = np.sin(w * t[:, None] + phases[None, :])
    np.testing.assert_allclose(M.pearson_r(y_true, y_pred), np.cos(phases), atol=1e-12)


def test_voxelwise_r_and_r_map_4d_with_mask():
    rng = _rng(3)
    X, Y, Z, T = 3, 4, 2, 11
    yt = rng.standard_normal((X, Y, Z, T))
    yp = 0.4 * yt + rng.standard_normal((X, Y, Z, T))
    mask = rng.random((X, Y, Z)) > 0.4
    mask[0, 0, 0] = True
    r = M.voxelwise_r(yt, yp, mask)
    expected = M.pearson_r(yt[mask].T, yp[mask].T)
    assert r.shape == (int(mask.sum()),)
    np.testing.assert_allclose(r, expected, atol=1e-14)
    # no mask: every voxel, C order
    r_all = M.voxelwise_r(yt, yp)
    np.testing.assert_allclose(r_all, M.pearson_r(yt.reshape(-1, T).T, yp.reshape(-1, T).T), atol=1e-14)
    # 2D with a voxel mask, 0/1 integer mask accepted
    flat_t, flat_p = yt.reshape(-1, T).T, yp.reshape(-1, T).T
    m1 = mask.ravel().astype(np.uint8)
    np.testing.assert_allclose(M.voxelwise_r(flat_t, flat_p, m1), expected, atol=1e-14)
    rm = M.r_map(yt, yp, mask)
    assert rm.shape == (X, Y, Z)
    assert np.isnan(rm[~mask]).all()
    np.testing.assert_allclose(rm[mask], expected, atol=1e-14)
    assert np.isfinite(M.r_map(yt, yp)).all()


def test_voxelwise_r_ignores_nonfinite_outside_mask():
    rng = _rng(4)
    yt = rng.standard_normal((2, 2, 2, 6))
    yp = rng.standard_normal((2, 2, 2, 6))
    mask = np.zeros((2, 2, 2), bool)
    mask[0, 0, 0] = mask[1, 1, 1] = True
    yt[0, 1, 0, 2] = np.nan  # outside the mask
    assert M.voxelwise_r(yt, yp, mask).shape == (2,)
    with pytest.raises(Eeg2fmriInputError, match="expected finite values in y_true"):
        M.voxelwise_r(yt, yp)


def test_summarize_r_hand_values():
    s = M.summarize_r([0.1, -0.2, 0.3, np.nan, 0.5])
    # sorted finite: -0.2, 0.1, 0.3, 0.5 ; linear-interpolated quartiles
    assert s["median"] == pytest.approx(0.2)
    assert s["mean"] == pytest.approx(0.175)
    assert s["q25"] == pytest.approx(-0.2 + 0.75 * 0.3)
    assert s["q75"] == pytest.approx(0.3 + 0.25 * 0.2)
    assert s["frac_positive"] == pytest.approx(0.75)
    assert s["n"] == 4 and s["n_nan"] == 1
    empty = M.summarize_r(np.full(3, np.nan))
    assert empty["n"] == 0 and np.isnan(empty["median"]) and np.isnan(empty["frac_positive"])


def test_roi_r_averages_voxels_first():
    rng = _rng(5)
    T, V = 13, 7
    yt = rng.standard_normal((T, V))
    yp = rng.standard_normal((T, V))
    labels = np.array([0, 2, 2, 5, 5, 5, 0])
    out = M.roi_r(yt, yp, labels)
    assert list(out) == [2, 5]
    exp2 = np.corrcoef(yt[:, [1, 2]].mean(1), yp[:, [1, 2]].mean(1))[0, 1]
    exp5 = np.corrcoef(yt[:, 3:6].mean(1), yp[:, 3:6].mean(1))[0, 1]
    assert out[2] == pytest.approx(exp2, abs=1e-12)
    assert out[5] == pytest.approx(exp5, abs=1e-12)
    # 4D volumes with a float-typed 3D atlas give the same numbers
    vt = yt.T.reshape(1, 7, 1, T)
    vp = yp.T.reshape(1, 7, 1, T)
    out4 = M.roi_r(vt, vp, labels.reshape(1, 7, 1).astype(float))
    assert out4 == pytest.approx(out)


# --------------------------------------------------------------------------- intensity errors


def test_rmse_mae_hand_values_and_masks():
    yt = np.zeros((2, 3))
    yp = np.array([[1.0, -1.0, 2.0], [0.0, 0.0, -2.0]])
    assert M.rmse(yt, yp) == pytest.approx(np.sqrt(10 / 6))
    assert M.mae(yt, yp) == pytest.approx(1.0)
    vox = np.array([True, False, True])  # (n_voxels,) mask on (n_times, n_voxels)
    assert M.rmse(yt, yp, vox) == pytest.approx(np.sqrt((1 + 4 + 0 + 4) / 4))
    assert M.mae(yt, yp, vox) == pytest.approx((1 + 2 + 0 + 2) / 4)
    full = np.array([[True, True, False], [False, False, True]])
    assert M.rmse(yt, yp, full) == pytest.approx(np.sqrt((1 + 1 + 4) / 3))
    # 4D with a 3D mask
    vt = np.zeros((2, 1, 1, 3))
    vp = np.zeros((2, 1, 1, 3))
    vp[0] = 3.0
    vp[1] = 100.0
    m3 = np.array([True, False]).reshape(2, 1, 1)
    assert M.rmse(vt, vp, m3) == pytest.approx(3.0)
    assert M.mae(vt, vp, m3) == pytest.approx(3.0)


def test_psnr_known_value():
    yt = np.zeros((4, 5, 6))
    yp = np.full((4, 5, 6), 0.1)
    assert M.psnr(yt, yp, data_range=1.0) == pytest.approx(20.0)
    assert M.psnr(yt, yp, data_range=10.0) == pytest.approx(40.0)
    assert M.psnr(yt, yt, data_range=1.0) == np.inf
    mask = np.zeros((4, 5, 6), bool)
    mask[0, 0, 0] = True
    yp2 = yp.copy()
    yp2[0, 0, 0] = 1.0
    assert M.psnr(yt, yp2, data_range=2.0, mask=mask) == pytest.approx(10 * np.log10(4.0))


# --------------------------------------------------------------------------- SSIM


def test_ssim3d_identical_is_exactly_one_and_decreases_with_noise():
    rng = _rng(6)
    vol = rng.standard_normal((9, 10, 11)).cumsum(axis=0)
    dr = float(vol.max() - vol.min())
    mask = np.zeros(vol.shape, bool)
    mask[2:7, 2:8, 3:9] = True
    assert M.ssim3d(vol, vol.copy(), data_range=dr) == 1.0
    assert M.ssim3d(vol, vol.copy(), data_range=dr, mask=mask) == 1.0
    vals = [M.ssim3d(vol, vol + s * rng.standard_normal(vol.shape), dr, mask) for s in (0.1, 0.5, 2.0)]
    assert 1.0 > vals[0] > vals[1] > vals[2] > -1.0
    noisy = vol + rng.standard_normal(vol.shape)
    assert M.ssim3d(vol, noisy, dr) == pytest.approx(M.ssim3d(noisy, vol, dr), abs=1e-14)


def test_ssim3d_constant_volumes_hand_formula():
    a = np.full((5, 6, 7), 2.0)
    b = np.full((5, 6, 7), 3.0)
    dr = 4.0
    c1 = (0.01 * dr) ** 2
    # zero local variance: the contrast-structure term is C2 / C2 = 1
    expected = (2 * 2.0 * 3.0 + c1) / (2.0**2 + 3.0**2 + c1)
    assert M.ssim3d(a, b, dr) == pytest.approx(expected, rel=1e-12)


def test_ssim3d_series_is_mean_of_volumes():
    rng = _rng(7)
    a = rng.standard_normal((6, 7, 8, 4))
    b = a + 0.5 * rng.standard_normal(a.shape)
    mask = np.ones((6, 7, 8), bool)
    mask[0] = False
    per = M.ssim3d_series(a, b, 5.0, mask=mask, per_volume=True)
    assert per.shape == (4,)
    expected = [M.ssim3d(a[..., i], b[..., i], 5.0, mask=mask) for i in range(4)]
    np.testing.assert_allclose(per, expected, atol=1e-14)
    assert M.ssim3d_series(a, b, 5.0, mask=mask) == pytest.approx(np.mean(expected), abs=1e-14)
    assert M.ssim3d_series(a, a, 5.0) == 1.0


# --------------------------------------------------------------------------- peer parity


def test_calhas_ssim_matches_naive_loop():
    rng = _rng(8)
    t = rng.standard_normal((13, 14, 7, 2)) + 1.0
    p = t + 0.7 * rng.standard_normal(t.shape)
    for dr in ("peer", "true_range", 2.5):
        assert M.calhas_ssim(t, p, data_range=dr) == pytest.approx(_naive_calhas_ssim(t, p, dr), abs=1e-12)
    # single volume
    assert M.calhas_ssim(t[..., 0], p[..., 0]) == pytest.approx(_naive_calhas_ssim(t[..., 0], p[..., 0]), abs=1e-12)
    assert M.calhas_ssim(t, t) == pytest.approx(1.0, abs=1e-15)


def test_calhas_ssim_uses_slices_3k_for_k_below_z_over_3():
    rng = _rng(9)
    t = rng.standard_normal((11, 12, 7))
    p = t + 0.3 * rng.standard_normal(t.shape)
    base = M.calhas_ssim(t, p)
    p2 = p.copy()
    p2[:, :, [1, 2, 4, 5, 6]] = 50.0  # slice 6 is not used when Z = 7 (their range(Z // 3))
    assert M.calhas_ssim(t, p2) == base
    p3 = p.copy()
    p3[:, :, 3] += 5.0
    assert M.calhas_ssim(t, p3) < base


def test_calhas_rmse_includes_background_and_averages_volumes():
    t = np.zeros((2, 2, 2, 2))
    p = np.zeros((2, 2, 2, 2))
    p[..., 0] = 1.0
    p[..., 1] = 3.0
    assert M.calhas_rmse(t, p) == pytest.approx(2.0)  # mean of per-volume RMSEs 1 and 3
    v = np.zeros((2, 3, 4))
    w = np.zeros((2, 3, 4))
    w[0, 0, 0] = 4.0  # one voxel wrong out of 24, background included in the mean
    assert M.calhas_rmse(v, w) == pytest.approx(np.sqrt(16 / 24))


# --------------------------------------------------------------------------- bootstrap


def test_block_bootstrap_indices_are_contiguous_blocks():
    idx = M.block_bootstrap_indices(23, 40, 4, "circular", random_state=0)
    assert idx.shape == (40, 23)
    assert idx.min() >= 0 and idx.max() < 23
    steps = (np.diff(idx, axis=1) % 23)[:, [0, 1, 2, 4, 5, 6]]  # within blocks 0 and 1
    assert (steps == 1).all()
    mov = M.block_bootstrap_indices(23, 40, 4, "moving", random_state=0)
    assert mov.max() < 23
    assert (np.diff(mov, axis=1)[:, [0, 1, 2]] == 1).all()
    again = M.block_bootstrap_indices(23, 40, 4, "circular", random_state=0)
    np.testing.assert_array_equal(idx, again)


def test_block_bootstrap_indices_segments_never_join_runs():
    """segments=: each run resampled on its own -- the points of resample positions [start, start + len) come from
    that run only, blocks wrap within it, and one segment (or None) gives the same draws as before."""
    lens = [11, 4, 8]
    idx = M.block_bootstrap_indices(23, 60, 5, "circular", random_state=0, segments=lens)
    assert idx.shape == (60, 23)
    start = 0
    for ln in lens:
        part = idx[:, start : start + ln] - start
        assert part.min() >= 0 and part.max() < ln
        bl = min(5, max(1, ln // 2))
        steps = np.diff(part, axis=1) % ln
        within = [j for j in range(ln - 1) if (j + 1) % bl]  # positions inside a block
        assert (steps[:, within] == 1).all()
        start += ln
    np.testing.assert_array_equal(M.block_bootstrap_indices(23, 60, 5, random_state=0, segments=[23]),
                                  M.block_bootstrap_indices(23, 60, 5, random_state=0))
    # a run no longer than the block: blocks of half the run, so the draws vary (a whole-run block only rotated it and
    # every draw was the estimate: a zero-width interval; review)
    rng = _rng(13)
    yt = rng.standard_normal((40, 6))
    yp = 0.5 * yt + rng.standard_normal((40, 6))
    from eeg2fmri.evaluation.metrics.bootstrap import _boot_median_r, _weights

    short = M.block_bootstrap_indices(40, 100, 20, random_state=2, segments=[20, 20])
    draws = _boot_median_r(yt, [yp], _weights(short, 40))[0]
    assert np.ptp(draws) > 0.05 and not (_weights(short, 40) == 1).all(axis=1).all()
    with pytest.raises(Eeg2fmriInputError, match=r"segments of positive lengths summing to n_times=23, got \[10, 4\]"):
        M.block_bootstrap_indices(23, 60, 5, random_state=0, segments=[10, 4])
    with pytest.raises(Eeg2fmriInputError, match="pass the number of time points of each run"):
        M.block_bootstrap_indices(23, 60, 5, random_state=0, segments=[23, 0])


def test_block_bootstrap_default_block_len_and_generic_metric():
    rng = _rng(10)
    yt = rng.standard_normal((125, 3))
    yp = yt + rng.standard_normal((125, 3))
    res = M.block_bootstrap_ci(yt, yp, M.rmse, n_boot=50, random_state=1)
    assert res["block_len"] == 5 and res["n_boot"] == 50 and res["n_valid"] == 50
    assert res["estimate"] == pytest.approx(M.rmse(yt, yp))
    assert res["low"] <= res["estimate"] <= res["high"]
    one = M.block_bootstrap_ci(yt[:, 0], yp[:, 0], M.median_r, n_boot=20, block_len=1, random_state=2)
    assert one["block_len"] == 1
    assert one["estimate"] == pytest.approx(np.corrcoef(yt[:, 0], yp[:, 0])[0, 1])
    assert M.block_bootstrap_ci(np.arange(8.0), np.arange(8.0) ** 2, M.median_r, n_boot=5, random_state=0)["block_len"] == 2


def test_fast_median_r_path_equals_generic_loop():
    rng = _rng(11)
    shared = _ar1(rng, (150, 1), 0.6)
    yt = shared + _ar1(rng, (150, 40), 0.5)
    yp = 0.5 * yt + _ar1(rng, (150, 40), 0.5)
    yt[:, 3] = 2.0  # a constant voxel: NaN r, ignored by the median in both paths

    def generic(a, b):
        return M.median_r(a, b)

    for method, interval in (("circular", "centred"), ("moving", "centred"), ("circular", "percentile")):
        fast = M.bootstrap_median_r(yt, yp, n_boot=60, ci=0.9, random_state=3, method=method, interval=interval)
        slow = M.block_bootstrap_ci(yt, yp, generic, n_boot=60, ci=0.9, random_state=3, method=method, interval=interval)
        assert fast["estimate"] == slow["estimate"] and fast["interval"] == slow["interval"] == interval
        for key in ("low", "high", "std"):
            assert fast[key] == pytest.approx(slow[key], abs=2e-5)
    yb = 0.2 * yt + _ar1(rng, (150, 40), 0.5)
    pf = M.paired_bootstrap(yt, yp, yb, M.median_r, n_boot=60, random_state=4)
    ps = M.paired_bootstrap(yt, yp, yb, generic, n_boot=60, random_state=4)
    for key in ("estimate", "estimate_a", "estimate_b"):
        assert pf[key] == ps[key]
    for key in ("low", "high"):
        assert pf[key] == pytest.approx(ps[key], abs=2e-5)
    assert pf["p_value"] == ps["p_value"]


def test_fast_median_r_path_spike_and_resampled_constant_equal_generic_loop():
    """A resample that leaves out a spike (1e2-1e5 SD) keeps most of its variance only in float64: the fast path's
    draws equal pearson_r on the resampled copies (they were NaN at 1e4 SD, off by 6e-4 below); a resample that draws
    only the flat part of a series is NaN in both."""
    from eeg2fmri.evaluation.metrics.bootstrap import _boot_median_r, _weights

    rng = _rng(12)
    n = 120
    yt = rng.standard_normal((n, 4))
    yp = 0.5 * yt + rng.standard_normal((n, 4))
    for col, amp in enumerate((1e2, 1e3, 1e4, 1e5)):
        yt[60 + col, col] = amp
    yp[:, 2] = 0.0
    yp[-3:, 2] = (1.0, 2.0, 3.0)  # constant except at the end: resamples without the last 3 points are constant
    idx = M.block_bootstrap_indices(n, 200, 5, random_state=1)
    fast = np.stack([_boot_median_r(yt[:, [c]], [yp[:, [c]]], _weights(idx, n))[0] for c in range(4)], axis=1)
    slow = np.array([[M.pearson_r(yt[i, c], yp[i, c]) for c in range(4)] for i in idx])
    assert np.array_equal(np.isnan(fast), np.isnan(slow)) and np.isnan(slow[:, 2]).any() and not np.isnan(slow[:, [0, 1, 3]]).any()
    np.testing.assert_allclose(fast, slow, atol=2e-6, equal_nan=True)
    from scipy.stats import pearsonr

    # the library on the same resampled copies (those columns are never constant)
    lib = np.array([[pearsonr(yt[i, c], yp[i, c])[0] for c in (0, 1, 3)] for i in idx[:50]])
    np.testing.assert_allclose(fast[:50, [0, 1, 3]], lib, atol=2e-6)


def test_centred_interval_definition_and_choice():
    """centred_interval: the percentile interval moved so that the draws' median sits on the estimate (NaN draws left
    out); equal to the percentile interval when the draws' median is the estimate; interval= is checked by name."""
    rng = _rng(21)
    draws = rng.gamma(2.0, 1.0, 999)
    lo, mid, hi = np.quantile(draws, [0.05, 0.5, 0.95])
    assert M.centred_interval(draws, 0.3, ci=0.9) == pytest.approx((0.3 - (mid - lo), 0.3 + (hi - mid)))
    assert M.centred_interval(draws, mid, ci=0.9) == pytest.approx((lo, hi))
    assert M.centred_interval(np.r_[draws, np.nan, np.inf], 0.3, ci=0.9) == M.centred_interval(draws, 0.3, ci=0.9)
    assert np.isnan(M.centred_interval(np.full(4, np.nan), 0.3)).all()
    yt = _ar1(rng, (40, 6), 0.3)
    with pytest.raises(Eeg2fmriInputError, match=r"block_bootstrap_ci: .*interval.*'basic'.*centred"):
        M.block_bootstrap_ci(yt, yt, M.median_r, interval="basic")


def test_median_r_interval_contains_its_estimate_when_most_voxels_are_noise():
    """A weak signal in 8 % of the voxels: resampling widens every noise voxel's r and the median over them moves up, so
    the percentile interval of the median r sits above the estimate (across 4 subjects' means wholly above it in about a
    quarter of the cases, benchmarks/bench_ci_coverage.py); the centred interval (the default) is not shifted."""
    for seed in (22, 23, 25, 26):
        rng = _rng(seed)
        n, v = 240, 1500
        s = _ar1(rng, (n, 1), 0.8)
        y = _ar1(rng, (n, v), 0.6)
        y[:, :120] += 0.6 * s
        p = s + _ar1(rng, (n, v), 0.6)
        pct = M.bootstrap_median_r(y, p, n_boot=300, block_len=8, random_state=0, interval="percentile")
        cen = M.bootstrap_median_r(y, p, n_boot=300, block_len=8, random_state=0)
        width = pct["high"] - pct["low"]
        assert (pct["low"] + pct["high"]) / 2 - pct["estimate"] > 0.15 * width  # the flaw: the interval sits high, every time
        assert cen["interval"] == "centred" and cen["low"] < cen["estimate"] < cen["high"]
        assert cen["high"] - cen["low"] == pytest.approx(width)
        assert abs((cen["low"] + cen["high"]) / 2 - cen["estimate"]) < 0.1 * width


def test_bootstrap_ci_coverage_on_autocorrelated_data():
    rho, phi, n, reps = 0.5, 0.5, 150, 100
    rng = _rng(12)
    x = _ar1(rng, (n, reps), phi)
    e = _ar1(rng, (n, reps), phi)
    y = rho * x + np.sqrt(1 - rho**2) * e  # corr(x_t, y_t) = rho exactly
    covered = 0
    for i in range(reps):
        res = M.bootstrap_median_r(x[:, i : i + 1], y[:, i : i + 1], n_boot=200, ci=0.9, random_state=i)
        covered += res["low"] <= rho <= res["high"]
    assert 0.75 <= covered / reps <= 0.98


def test_paired_bootstrap_detects_better_model_and_not_identical_ones():
    rng = _rng(13)
    n, v = 200, 30
    yt = _ar1(rng, (n, v), 0.5)
    good = yt + 0.5 * _ar1(rng, (n, v), 0.5)
    bad = yt + 2.0 * _ar1(rng, (n, v), 0.5)
    res = M.paired_bootstrap(yt, good, bad, M.median_r, n_boot=200, random_state=0)
    assert res["estimate"] > 0.3 and res["low"] > 0
    assert res["p_value"] < 0.05
    same = M.paired_bootstrap(yt, good, good.copy(), M.median_r, n_boot=200, random_state=0)
    assert same["estimate"] == 0.0 and same["low"] == 0.0 and same["high"] == 0.0
    assert same["p_value"] == 1.0
    twin = yt + 0.5 * _ar1(rng, (n, v), 0.5)  # equally good, different noise
    tie = M.paired_bootstrap(yt, good, twin, M.median_r, n_boot=200, random_state=0)
    assert tie["p_value"] > 0.05
    # an error metric through the generic path: lower is better, so A - B < 0
    err = M.paired_bootstrap(yt, good, bad, M.rmse, n_boot=100, random_state=0)
    assert err["high"] < 0 and err["p_value"] < 0.05


def test_ceiling_fraction():
    model = np.array([0.1, 0.2, np.nan, 0.3])
    ceiling = np.array([0.4, 0.5, 0.6, 0.3])
    # both medians over the voxels where both are finite (the docstring's contract; the ceiling's median
    # once included the voxel the model's r lacks: 0.2 / 0.45)
    assert M.ceiling_fraction(model, ceiling) == pytest.approx(0.2 / 0.4)
    assert M.ceiling_fraction([np.nan, 0.1, 0.2, 0.3], [0.9, 0.4, 0.5, 0.6]) == pytest.approx(0.2 / 0.5)


# --------------------------------------------------------------------------- errors


def test_shape_mismatch_messages():
    a = np.zeros((600, 1234))
    b = np.zeros((600, 1233))
    msg = r"expected y_pred with the shape of y_true \(600, 1234\), got \(600, 1233\); pass predictions"
    for fn in (M.pearson_r, M.voxelwise_r, M.rmse, M.mae):
        with pytest.raises(Eeg2fmriInputError, match=msg):
            fn(a, b)
    with pytest.raises(Eeg2fmriInputError, match=msg):
        M.psnr(a, b, data_range=1.0)
    with pytest.raises(Eeg2fmriInputError, match=msg):
        M.block_bootstrap_ci(a, b, M.median_r)
    with pytest.raises(Eeg2fmriInputError, match=r"expected pred_b with the shape of y_true \(600, 1234\)"):
        M.paired_bootstrap(a, a, b, M.median_r)
    with pytest.raises(Eeg2fmriInputError, match=r"expected vol_b with the shape of vol_a \(3, 3, 3\)"):
        M.ssim3d(np.zeros((3, 3, 3)), np.zeros((3, 3, 2)), 1.0)
    with pytest.raises(Eeg2fmriInputError, match=r"calhas_ssim: expected y_pred with the shape"):
        M.calhas_ssim(np.zeros((11, 11, 3)), np.zeros((11, 11, 4)))
    with pytest.raises(Eeg2fmriInputError, match=r"ceiling_fraction: expected ceiling_r with the shape of model_r \(3,\)"):
        M.ceiling_fraction(np.zeros(3), np.zeros(4))


def test_mask_errors():
    yt = np.zeros((4, 5, 6, 7))
    with pytest.raises(Eeg2fmriInputError, match=r"voxelwise_r: expected mask with shape \(4, 5, 6\).*got \(4, 5\)"):
        M.voxelwise_r(yt, yt, np.ones((4, 5), bool))
    with pytest.raises(Eeg2fmriInputError, match=r"r_map: expected mask with shape \(4, 5, 6\)"):
        M.r_map(yt, yt, np.ones((4, 5, 7), bool))
    with pytest.raises(Eeg2fmriInputError, match=r"voxelwise_r: expected mask with shape \(3,\)"):
        M.voxelwise_r(np.zeros((5, 3)), np.zeros((5, 3)), np.ones(4, bool))
    with pytest.raises(Eeg2fmriInputError, match=r"rmse: expected mask with shape \(4, 5, 6, 7\) or \(4, 5, 6\)"):
        M.rmse(yt, yt, np.ones((4, 5), bool))
    with pytest.raises(Eeg2fmriInputError, match=r"ssim3d: expected mask with shape \(4, 5, 6\)"):
        M.ssim3d(yt[..., 0], yt[..., 0], 1.0, mask=np.ones((4, 5, 5), bool))
    with pytest.raises(Eeg2fmriInputError, match="expected a boolean mask"):
        M.mae(yt, yt, np.full((4, 5, 6), 0.5))
    with pytest.raises(Eeg2fmriInputError, match="the mask selects no voxels"):
        M.rmse(yt, yt, np.zeros((4, 5, 6), bool))


def test_data_range_errors():
    v = np.zeros((11, 11, 3))
    for bad in (0, -1.0, np.nan, "x"):
        with pytest.raises(Eeg2fmriInputError, match=r"psnr: expected data_range > 0"):
            M.psnr(v, v, data_range=bad)
    with pytest.raises(Eeg2fmriInputError, match=r"ssim3d: expected data_range > 0, got 0"):
        M.ssim3d(v, v, 0)
    with pytest.raises(Eeg2fmriInputError, match=r"ssim3d_series: expected data_range > 0"):
        M.ssim3d_series(v[..., None], v[..., None], -2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"calhas_ssim: expected data_range > 0"):
        M.calhas_ssim(v, v, data_range=0.0)
    with pytest.raises(Eeg2fmriInputError, match=r"calhas_ssim: unknown data_range 'max'"):
        M.calhas_ssim(v, v, data_range="max")
    with pytest.raises(Eeg2fmriInputError, match=r"ssim3d: expected sigma > 0"):
        M.ssim3d(v, v, 1.0, sigma=0)
    with pytest.raises(Eeg2fmriInputError, match=r"ssim3d: expected truncate > 0"):
        M.ssim3d(v, v, 1.0, truncate=-1)


def test_dimension_and_value_errors():
    with pytest.raises(Eeg2fmriInputError, match=r"pearson_r: expected axis to be an integer in \[-2, 1\]"):
        M.pearson_r(np.zeros((3, 4)), np.zeros((3, 4)), axis=2)
    with pytest.raises(Eeg2fmriInputError, match="pearson_r: expected at least 2 samples along axis 0"):
        M.pearson_r(np.zeros((1, 4)), np.zeros((1, 4)))
    with pytest.raises(Eeg2fmriInputError, match="voxelwise_r: expected at least 2 time points"):
        M.voxelwise_r(np.zeros((1, 4)), np.zeros((1, 4)))
    bad = np.zeros((3, 4))
    bad[1, 2] = np.inf
    with pytest.raises(Eeg2fmriInputError, match=r"pearson_r: expected finite values in y_pred, found 1 NaN/Inf of 12"):
        M.pearson_r(np.zeros((3, 4)), bad)
    with pytest.raises(Eeg2fmriInputError, match="expected y_true to be a real numeric array, got dtype"):
        M.rmse(np.array(["a", "b"]), np.array(["a", "b"]))
    with pytest.raises(Eeg2fmriInputError, match=r"voxelwise_r: expected y_true to be 2D or 4D, got 3D"):
        M.voxelwise_r(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)))
    with pytest.raises(Eeg2fmriInputError, match=r"r_map: expected y_true of shape \(X, Y, Z, n_times\), got 2D"):
        M.r_map(np.zeros((5, 3)), np.zeros((5, 3)))
    with pytest.raises(Eeg2fmriInputError, match=r"ssim3d: expected vol_a of shape \(X, Y, Z\), got 4D"):
        M.ssim3d(np.zeros((3, 3, 3, 2)), np.zeros((3, 3, 3, 2)), 1.0)
    with pytest.raises(Eeg2fmriInputError, match=r"ssim3d_series: expected vol_a of shape \(X, Y, Z, n_times\), got 3D"):
        M.ssim3d_series(np.zeros((3, 3, 3)), np.zeros((3, 3, 3)), 1.0)
    with pytest.raises(Eeg2fmriInputError, match="summarize_r: expected correlations in"):
        M.summarize_r([0.1, np.inf])
    with pytest.raises(Eeg2fmriInputError, match="calhas_rmse: expected y_true to be 3D or 4D, got 2D"):
        M.calhas_rmse(np.zeros((3, 3)), np.zeros((3, 3)))


def test_roi_label_errors():
    yt = np.zeros((5, 4))
    with pytest.raises(Eeg2fmriInputError, match=r"roi_r: expected labels with shape \(4,\).*got \(3,\)"):
        M.roi_r(yt, yt, np.array([1, 1, 2]))
    with pytest.raises(Eeg2fmriInputError, match="roi_r: expected whole-number labels >= 0"):
        M.roi_r(yt, yt, np.array([1, -1, 2, 0]))
    with pytest.raises(Eeg2fmriInputError, match="roi_r: expected whole-number labels >= 0"):
        M.roi_r(yt, yt, np.array([1.5, 1, 2, 0]))
    with pytest.raises(Eeg2fmriInputError, match="roi_r: labels hold no ROI"):
        M.roi_r(yt, yt, np.zeros(4))


def test_calhas_ssim_geometry_errors():
    with pytest.raises(Eeg2fmriInputError, match=r"calhas_ssim: expected axial slices of at least 11x11 voxels.*got 10x12"):
        M.calhas_ssim(np.zeros((10, 12, 6)), np.zeros((10, 12, 6)))
    with pytest.raises(Eeg2fmriInputError, match="calhas_ssim: expected at least 3 slices.*got Z = 2"):
        M.calhas_ssim(np.zeros((11, 12, 2)), np.zeros((11, 12, 2)))


def test_bootstrap_argument_errors():
    yt = np.zeros((20, 3))
    yt[:, 0] = np.arange(20)
    with pytest.raises(Eeg2fmriInputError, match=r"block_bootstrap_ci: expected n_boot to be an integer >= 1, got 0"):
        M.block_bootstrap_ci(yt, yt, M.median_r, n_boot=0)
    with pytest.raises(Eeg2fmriInputError, match=r"block_bootstrap_ci: expected block_len <= n_times \(20\), got 21"):
        M.block_bootstrap_ci(yt, yt, M.median_r, block_len=21)
    with pytest.raises(Eeg2fmriInputError, match="expected block_len to be an integer >= 1, got 2.5"):
        M.bootstrap_median_r(yt, yt, block_len=2.5)
    for ci in (0.0, 1.0, 1.5, "high"):
        with pytest.raises(Eeg2fmriInputError, match="expected ci strictly between 0 and 1"):
            M.paired_bootstrap(yt, yt, yt, M.median_r, ci=ci)
    with pytest.raises(Eeg2fmriInputError, match="unknown method 'stationary'"):
        M.block_bootstrap_ci(yt, yt, M.median_r, method="stationary")
    with pytest.raises(Eeg2fmriInputError, match="expected metric to be a callable"):
        M.block_bootstrap_ci(yt, yt, "median_r")
    with pytest.raises(Eeg2fmriInputError, match="paired_bootstrap: expected metric to be a callable"):
        M.paired_bootstrap(yt, yt, yt, None)
    with pytest.raises(Eeg2fmriInputError, match="expected metric to return one number, got ndarray with shape"):
        M.block_bootstrap_ci(yt, yt, lambda a, b: M.voxelwise_r(a, b), n_boot=3)
    with pytest.raises(Eeg2fmriInputError, match="expected seed to be a non-negative int"):
        M.block_bootstrap_ci(yt, yt, M.median_r, random_state=-1)
    with pytest.raises(Eeg2fmriInputError, match=r"block_bootstrap_ci: expected y_true of shape \(n_times, n_voxels\), got 3D"):
        M.block_bootstrap_ci(np.zeros((4, 3, 2)), np.zeros((4, 3, 2)), M.median_r)
    with pytest.raises(Eeg2fmriInputError, match="block_bootstrap_ci: expected at least 2 time points"):
        M.block_bootstrap_ci(np.zeros((1, 3)), np.zeros((1, 3)), M.median_r)


def test_ceiling_fraction_errors():
    with pytest.raises(Eeg2fmriInputError, match="ceiling_fraction: expected a positive median ceiling r, got -0.1"):
        M.ceiling_fraction(np.array([0.1, 0.2]), np.array([-0.1, -0.1]))
    with pytest.raises(Eeg2fmriInputError, match="ceiling_fraction: expected finite correlations"):
        M.ceiling_fraction(np.array([np.nan, np.nan]), np.array([0.3, 0.2]))


def test_bootstrap_median_r_same_draws_in_any_chunking(monkeypatch):
    """The resampled median r is computed in chunks of resamples and voxels (buffers reused since session 30): several
    chunks with a partial last one, a constant column and a spike give the draws of one chunk."""
    import eeg2fmri.evaluation.metrics.bootstrap as B

    rng = np.random.default_rng(4)
    n, v = 90, 37
    y = rng.standard_normal((n, v))
    y[:, 5] = 2.0
    preds = [0.4 * y + rng.standard_normal((n, v)) for _ in range(2)]
    preds[1][40, 7] = 1e4
    w = B._weights(B.block_bootstrap_indices(n, 23, 6, random_state=1), n)
    one = B._boot_median_r(y, preds, w)
    monkeypatch.setattr(B, "_BOOT_ELEMS", v * 2 * 5)  # 5 resamples per chunk: 23 = 4 x 5 + 3
    monkeypatch.setattr(B, "_STATS_ELEMS", n * 8 * 10)  # 10 voxels per chunk: 37 = 3 x 10 + 7
    many = B._boot_median_r(y, preds, w)
    assert one.shape == (2, 23) and np.isfinite(one).all()
    np.testing.assert_allclose(many, one, atol=1e-6)
