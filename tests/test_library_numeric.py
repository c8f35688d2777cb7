"""Library cross-checks for small eeg2fmri numerical helpers that had no library comparison.

Every input is small, seeded, with a different size on every axis. Each test also checks that a
deliberate perturbation breaks the agreement (so the tolerance cannot hide an error).
"""

from __future__ import annotations

import numpy as np
import pytest


def _spd(rng, lead, n):
    a = rng.standard_normal(lead + (n, 2 * n + 1))
    return a @ np.swapaxes(a, -1, -2) / (2 * n + 1)

# ----------------------------------------------------------------------------- covariance shrinkage / tangent space

@pytest.mark.parametrize("n_ch", [3, 6])
def test_shrunk_equals_sklearn_shrunk_covariance(n_ch):
    """tangent._shrunk == sklearn.covariance.shrunk_covariance(cov, TANGENT_SHRINK) for every (frame, band)."""
    from sklearn.covariance import shrunk_covariance

    from eeg2fmri.preprocessing.representations import tangent as tg

    cov = _spd(np.random.default_rng(n_ch), (5, 2), n_ch) * np.array([1.0, 1e-10])[None, :, None, None]  # EEG-sized band too
    got = tg._shrunk(cov)
    ref = np.stack([np.stack([shrunk_covariance(cov[t, b], shrinkage=tg.TANGENT_SHRINK) for b in range(2)]) for t in range(5)])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    wrong = np.stack([np.stack([shrunk_covariance(cov[t, b], shrinkage=10 * tg.TANGENT_SHRINK) for b in range(2)]) for t in range(5)])
    assert not np.allclose(got, wrong, rtol=1e-6, atol=0)

def test_tangent_space_equals_pyriemann_style_reference_non_square_sizes():
    """tangent_space == logm(M^-1/2 C M^-1/2) with scipy.linalg (sqrtm/inv/logm) and sklearn shrinkage,
    M = arithmetic mean of the shrunk covariances (the package's documented reference, not the Riemannian mean)."""
    from scipy import linalg
    from sklearn.covariance import shrunk_covariance

    from eeg2fmri.preprocessing.representations.tangent import TANGENT_SHRINK, tangent_space

    rng = np.random.default_rng(7)
    n_fr, n_b, n_ch = 9, 3, 4
    cov = _spd(rng, (n_fr, n_b), n_ch)
    got = tangent_space(cov)
    for b in range(n_b):
        c = np.stack([shrunk_covariance(cov[t, b], shrinkage=TANGENT_SHRINK) for t in range(n_fr)])
        isq = linalg.inv(linalg.sqrtm(c.mean(0)).real)
        for t in range(n_fr):
            np.testing.assert_allclose(got[t, b], linalg.logm(isq @ c[t] @ isq).real, atol=1e-9)
    # the geometric (log-Euclidean) mean as reference gives other features: the test can fail
    le = linalg.expm(np.mean([linalg.logm(cov[t, 0]).real for t in range(n_fr)], axis=0))
    assert np.abs(tangent_space(cov[:, :1], le[None])[:, 0] - got[:, 0]).max() > 1e-3

# ----------------------------------------------------------------------------- Haufe patterns

def test_haufe_patterns_equal_numpy_cov_formula():
    """haufe_patterns(W, X) == np.cov(X) W^T pinv(np.cov(W X)) (Haufe et al. 2014, eq. 6), rows = sources."""
    from eeg2fmri.evaluation.explain import haufe_patterns

    rng = np.random.default_rng(3)
    x = rng.standard_normal((37, 6)) @ rng.standard_normal((6, 6)) + 2.0
    w = rng.standard_normal((4, 6))
    s = x @ w.T
    cx = np.cov(x, rowvar=False)
    cs = np.atleast_2d(np.cov(s, rowvar=False))
    ref = (cx @ w.T @ np.linalg.pinv(cs)).T
    got = haufe_patterns(w, x)
    assert got.shape == (4, 6)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    assert np.abs(got - w).max() > 0.1  # patterns are not the filters

# ----------------------------------------------------------------------------- R², per-volume errors

def test_protocol_errors_and_ss_total_equal_sklearn():
    """_errors_per_volume / _ss_total / _r2 == sklearn mean_squared_error / mean_absolute_error / r2_score."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    from eeg2fmri.evaluation import protocol as pr

    rng = np.random.default_rng(11)
    y = rng.standard_normal((29, 13)).astype(np.float32) * 3 + 1
    p = (0.6 * y + rng.standard_normal((29, 13))).astype(np.float32)
    sq, ab = pr._errors_per_volume(y, p, block=4)
    y64, p64 = y.astype(np.float64), p.astype(np.float64)
    np.testing.assert_allclose(sq / 13, [mean_squared_error(y64[i], p64[i]) for i in range(29)], rtol=1e-12)
    np.testing.assert_allclose(ab / 13, [mean_absolute_error(y64[i], p64[i]) for i in range(29)], rtol=1e-12)
    ss = pr._ss_total(y, block=5)
    np.testing.assert_allclose(ss, ((y64 - y64.mean(0)) ** 2).sum(), rtol=1e-12)
    np.testing.assert_allclose(1 - sq.sum() / ss, r2_score(y64, p64, multioutput="variance_weighted"), rtol=1e-12)
    np.testing.assert_allclose(pr._r2(y, p), r2_score(y64, p64, multioutput="variance_weighted"), rtol=1e-12)
    assert abs(pr._r2(y, p) - r2_score(y64, p64, multioutput="uniform_average")) > 1e-6  # weighting matters

# ----------------------------------------------------------------------------- Gaussian window of the peers' SSIM

@pytest.mark.parametrize("size,sigma", [(11, 1.5), (7, 1.0), (8, 2.5)])
def test_calhas_gauss_equals_scipy_gaussian_window(size, sigma):
    """peers._gauss_1d == scipy.signal.windows.gaussian(size, sigma) normalised to sum 1 (the SSIM window)."""
    from scipy.signal.windows import gaussian

    from eeg2fmri.evaluation.metrics.peers import _gauss_1d

    ref = gaussian(size, sigma, sym=True)
    np.testing.assert_allclose(_gauss_1d(size, sigma), ref / ref.sum(), rtol=1e-13)

# ----------------------------------------------------------------------------- conformal quantile, Spearman

@pytest.mark.parametrize("n", [7, 19, 40])
def test_conformal_halfwidths_equal_numpy_inverted_cdf_quantile(n):
    """conformal_halfwidths == np.quantile(|r|, ceil((n + 1) a) / n, method='inverted_cdf') (split-conformal rank)."""
    from eeg2fmri.evaluation.uncertainty import conformal_halfwidths

    rng = np.random.default_rng(n)
    r = rng.standard_normal((n, 5)) * np.arange(1, 6)
    levels = (0.5, 0.8, 0.9)
    got = conformal_halfwidths(r, levels)
    for j, a in enumerate(levels):
        k = int(np.ceil((n + 1) * a - 1e-9))
        want = np.full(5, np.inf) if k > n else np.quantile(np.abs(r), k / n, axis=0, method="inverted_cdf")
        np.testing.assert_array_equal(got[j], want)
    # the neighbouring order statistic (an off-by-one rank) differs everywhere: the test can fail
    srt = np.sort(np.abs(r), axis=0)
    for j, a in enumerate(levels):
        k = int(np.ceil((n + 1) * a - 1e-9))
        if 2 <= k <= n:
            assert (got[j] != srt[k - 2]).all()

def test_spearman_equals_scipy_with_ties_and_nans():
    """uncertainty.spearman == scipy.stats.spearmanr(nan_policy='omit') with ties and NaN pairs dropped."""
    from scipy.stats import spearmanr

    from eeg2fmri.evaluation.uncertainty import spearman

    rng = np.random.default_rng(5)
    a = np.round(rng.standard_normal((6, 7)), 1)  # ties
    b = a + rng.standard_normal((6, 7))
    a[1, 2] = np.nan
    b[4, 0] = np.inf
    ok = np.isfinite(a.ravel()) & np.isfinite(b.ravel())
    ref = spearmanr(a.ravel()[ok], b.ravel()[ok]).statistic
    assert spearman(a, b) == pytest.approx(ref, rel=1e-12)
    assert abs(spearman(a, b) - np.corrcoef(a.ravel()[ok], b.ravel()[ok])[0, 1]) > 1e-4

# ----------------------------------------------------------------------------- leading singular vectors

@pytest.mark.parametrize("shape", [(7, 23), (31, 5)])
def test_leading_right_vectors_equal_numpy_svd(shape):
    """flagship.leading_right_vectors == the first k rows of np.linalg.svd(a).Vh (up to sign), both Gram sides."""
    from eeg2fmri.models.flagship import leading_right_vectors

    rng = np.random.default_rng(shape[0])
    a = rng.standard_normal(shape) * np.linspace(3.0, 0.5, shape[1])[None, :]
    k = 3
    got = leading_right_vectors(a.astype(np.float32), k, block=4)
    _, s, vt = np.linalg.svd(a, full_matrices=False)
    assert got.shape == (k, shape[1])
    sign = np.sign(np.sum(got * vt[:k], axis=1))
    np.testing.assert_allclose(got * sign[:, None], vt[:k], atol=2e-5)
    # rank-deficient input drops the null directions
    low = rng.standard_normal((shape[0], 2)) @ rng.standard_normal((2, shape[1]))
    assert leading_right_vectors(low, 4).shape[0] == 2

# ----------------------------------------------------------------------------- grid helpers vs nibabel

def _oblique_affine(rng):
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    aff = np.eye(4)
    aff[:3, :3] = q @ np.diag([2.0, 3.0, 3.5])
    aff[:3, 3] = [-40.0, 12.0, 7.5]
    return aff

def test_world_box_equals_nibabel_apply_affine_of_corners():
    """volumes.world_box == min/max of nibabel.affines.apply_affine over the 8 outer voxel corners (+-0.5 voxel)."""
    import itertools

    from nibabel.affines import apply_affine

    from eeg2fmri.preprocessing.volumes import world_box

    aff = _oblique_affine(np.random.default_rng(1))
    shape = (7, 5, 4)
    corners = np.array(list(itertools.product(*[(-0.5, s - 0.5) for s in shape])))
    w = apply_affine(aff, corners)
    lo, hi = world_box(aff, shape)
    np.testing.assert_allclose(lo, w.min(0), atol=1e-12)
    np.testing.assert_allclose(hi, w.max(0), atol=1e-12)
    centres = apply_affine(aff, np.array(list(itertools.product(*[(0, s - 1) for s in shape]))))
    assert np.abs(centres.min(0) - lo).min() > 0.1  # voxel edges, not voxel centres

@pytest.mark.parametrize("shape,new_shape,vox", [((9, 7, 5), (5, 11, 3), (4.0, 2.5, 6.0)), ((8, 6, 4), (5, 7, 3), (3.0, 3.0, 3.0))])
def test_box_affine_equals_nibabel_rescale_affine(shape, new_shape, vox):
    """volumes._box_affine == nibabel.affines.rescale_affine: same directions, new voxel sizes, same centre.

    nibabel centres on voxel ``(shape - 1) // 2`` (integer division); the package on the geometric centre
    ``(shape - 1) / 2``. They coincide for odd sizes (first case); for even sizes (second case) the
    package's grid keeps the exact world centre of the field of view, which nibabel's does not.
    """
    from nibabel.affines import apply_affine, rescale_affine, voxel_sizes

    from eeg2fmri.preprocessing.volumes import _box_affine

    aff = _oblique_affine(np.random.default_rng(2))
    s, ns, v = np.array(shape), np.array(new_shape), np.array(vox)
    got = _box_affine(aff, s, ns, v)
    np.testing.assert_allclose(voxel_sizes(got), v, rtol=1e-12)
    np.testing.assert_allclose(apply_affine(got, (ns - 1) / 2), apply_affine(aff, (s - 1) / 2), atol=1e-9)
    if (s % 2).all() and (ns % 2).all():
        np.testing.assert_allclose(got, rescale_affine(aff, s, v, ns), atol=1e-9)

# ----------------------------------------------------------------------------- frame means, amplitude outliers

def test_bin_frames_equal_numpy_slice_means():
    """eeg.bin_frames == np.mean(x[..., round(s sf):round((s + L) sf)]) per frame (float32 output)."""
    from eeg2fmri.preprocessing.eeg import bin_frames

    rng = np.random.default_rng(4)
    sf = 37.0
    x = rng.standard_normal((3, 2, 401)) + 5.0
    starts = np.array([0.0, 0.31, 1.27, 4.9, 9.2])
    length = 0.73
    got = bin_frames(x, sf, starts, length)
    a = np.round(starts * sf).astype(int)
    b = np.round((starts + length) * sf).astype(int)
    ref = np.stack([x[..., i:j].mean(-1) for i, j in zip(a, b)])
    assert got.shape == (5, 3, 2) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    shifted = np.stack([x[..., i + 1 : j + 1].mean(-1) for i, j in zip(a, b)])
    assert np.abs(got - shifted).max() > 1e-3

def test_amplitude_outliers_equal_scipy_median_abs_deviation():
    """eeg.amplitude_outliers: channel scale / median channel scale, scale = scipy.stats.median_abs_deviation."""
    import mne
    from scipy.stats import median_abs_deviation

    from eeg2fmri.preprocessing.eeg import amplitude_outliers

    rng = np.random.default_rng(8)
    sf, n = 50.0, 5003
    gains = np.array([1.0, 1.3, 0.8, 30.0, 1.1, 0.02, 0.9])
    x = rng.standard_normal((7, n)) * gains[:, None] * 1e-5
    raw = mne.io.RawArray(x, mne.create_info([f"C{i}" for i in range(7)], sf, "eeg"), verbose=False)
    got = amplitude_outliers(raw, max_seconds=60.0)
    length = int(round(60 * sf))
    start = (n - length) // 2
    mad = median_abs_deviation(x[:, start : start + length], axis=1)
    rel = mad / np.median(mad)
    want = {f"C{i}": float(r) for i, r in enumerate(rel) if r > 20 or r < 1 / 20}
    assert set(got) == set(want) == {"C3", "C5"}
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9)


# ----------------------------------------------------------------------------- block jackknife of the mean voxel r

def test_jackknife_mean_r_equals_scipy_pearsonr_on_the_rows_left():
    """jackknife_mean_r: full and leave-one-block-out mean r == scipy.stats.pearsonr on those rows (constant column: r = 0)."""
    from scipy import stats

    from eeg2fmri.utils.stats import jackknife_mean_r

    rng = np.random.default_rng(7)
    p = rng.standard_normal((23, 5)) + 100.0  # an offset: the sums are centred first
    y = 0.4 * p + rng.standard_normal((23, 5))
    p[:, 3] = 2.5  # a constant prediction counts as r = 0
    full, loo = jackknife_mean_r(p, y, 4)

    def ref(rows):
        return np.mean([0.0 if np.ptp(p[rows, j]) == 0 else stats.pearsonr(p[rows, j], y[rows, j])[0] for j in range(5)])

    blocks = np.array_split(np.arange(23), 4)
    assert full == pytest.approx(ref(np.arange(23)), abs=1e-10)
    np.testing.assert_allclose(loo, [ref(np.setdiff1d(np.arange(23), b)) for b in blocks], atol=1e-10)
    # a perturbation breaks it: blocks of another size
    assert not np.allclose(loo[:3], [ref(np.setdiff1d(np.arange(23), b)) for b in np.array_split(np.arange(23), 3)], atol=1e-6)


def test_shift_mean_r_equals_scipy_pearsonr_of_numpy_rolls():
    """shift_mean_r: entry s is the mean over columns of scipy's r of y with np.roll(p, -s) (constant column: r = 0);
    entry 0 is jackknife_mean_r's full value; shift_gain_level's threshold is circular_shift_level of the gains."""
    from scipy import stats

    from eeg2fmri.utils.stats import (
        circular_shift_level,
        jackknife_mean_r,
        shift_gain_level,
        shift_mean_r,
    )

    rng = np.random.default_rng(11)
    p = rng.standard_normal((29, 6)) + 50.0
    y = 0.3 * p + rng.standard_normal((29, 6))
    p[:, 2] = -1.5
    got = shift_mean_r(p, y)

    def ref(a, s):
        q = np.roll(a, -s, axis=0)
        return np.mean([0.0 if np.ptp(q[:, j]) == 0 else stats.pearsonr(y[:, j], q[:, j])[0] for j in range(6)])

    np.testing.assert_allclose(got, [ref(p, s) for s in range(29)], atol=1e-10)
    assert got[0] == pytest.approx(jackknife_mean_r(p, y, 1)[0], abs=1e-12)
    assert not np.allclose(got[1:], [ref(p, -s) for s in range(1, 29)], atol=1e-6)  # the other direction differs
    q = p + rng.standard_normal(p.shape)
    gain, level = shift_gain_level(q, p, y)
    gains = [ref(q, s) - ref(p, s) for s in range(29)]
    assert gain == pytest.approx(gains[0], abs=1e-10)
    assert level == pytest.approx(circular_shift_level(np.array(gains[1:])), abs=1e-10)
    assert np.isnan(shift_gain_level(q[:15], p[:15], y[:15])[1])  # under 20 rows: no 5 % level


def test_jackknife_se_of_a_mean_equals_scipy_sem():
    """The jackknife SE of a sample mean from its leave-one-out means is the standard error (scipy.stats.sem)."""
    from scipy import stats

    from eeg2fmri.utils.stats import jackknife_se

    x = np.random.default_rng(3).standard_normal(17)
    loo = np.array([np.delete(x, i).mean() for i in range(len(x))])
    assert jackknife_se(loo) == pytest.approx(stats.sem(x), rel=1e-12)
    assert jackknife_se(loo, loo) == 0.0  # the difference of a statistic with itself
    assert jackknife_se(loo[:1]) == 0.0
    assert jackknife_se(loo) != pytest.approx(stats.sem(x, ddof=0), rel=1e-6)


def test_jackknife_r_columns_matches_scipy_pearsonr_on_all_rows_and_each_left_out_block():
    from scipy.stats import pearsonr

    from eeg2fmri.utils.stats import jackknife_mean_r, jackknife_r_columns

    rng = np.random.default_rng(4)
    y = rng.standard_normal((37, 5))
    p = 0.5 * y + rng.standard_normal((37, 5))
    p[:, 4] = 2.0  # a constant prediction: r counts as 0
    full, loo = jackknife_r_columns(p, y, 4)
    blocks = np.array_split(np.arange(37), 4)
    for j in range(4):
        assert full[j] == pytest.approx(pearsonr(p[:, j], y[:, j]).statistic, abs=1e-12)
        for b, idx in enumerate(blocks):
            keep = np.setdiff1d(np.arange(37), idx)
            assert loo[b, j] == pytest.approx(pearsonr(p[keep, j], y[keep, j]).statistic, abs=1e-12)
    assert full[4] == 0 and (loo[:, 4] == 0).all()
    m, mloo = jackknife_mean_r(p, y, 4)
    assert m == pytest.approx(full.mean()) and np.allclose(mloo, loo.mean(1))
    assert jackknife_r_columns(p, y, 1)[1].shape == (0, 5)
