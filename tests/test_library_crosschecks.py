"""Library cross-checks: what eeg2fmri computes itself == the reference library on the same input.

One test per computation that had no library comparison yet: correlation and error metrics
(scipy.stats, scikit-learn, scikit-image), scalers (scikit-learn), detrending and confound
regression (nilearn.signal), atlas extraction (nilearn maskers), the block-length ACF
(numpy.correlate), the one-group bootstrap (scipy.stats.bootstrap), the balloon models
(scipy.integrate.solve_ivp) and the electrode sphere fit (MNE). Every input is small, random
(``numpy.random.default_rng`` seeds) and has a different size on every axis; the tolerances
are those of the arithmetic (float64: ~1e-12, float32 outputs: ~1e-6), except where stated.
"""

from __future__ import annotations

import inspect

import nibabel as nib
import numpy as np
import pytest
from scipy.stats import pearsonr

# --------------------------------------------------------------------------------------
# helpers


def _pair(seed: int, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Observed and correlated predicted float64 arrays of ``shape`` (time last for 4D, first for 2D)."""
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(shape)
    return t, 0.5 * t + rng.standard_normal(shape)


def _scipy_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """scipy.stats.pearsonr of every column of two (n_times, n_voxels) arrays."""
    return np.array([pearsonr(a[:, j], b[:, j]).statistic for j in range(a.shape[1])])


# --------------------------------------------------------------------------------------
# correlation metrics vs scipy.stats.pearsonr / numpy


def test_voxelwise_r_and_r_map_equal_scipy_pearsonr():
    """voxelwise_r (4D + 3D mask, 2D + 1D mask) and r_map == scipy.stats.pearsonr of each selected voxel's series."""
    from eeg2fmri.evaluation.metrics import r_map, voxelwise_r

    t, p = _pair(1, (7, 9, 5, 23))
    mask = np.random.default_rng(2).random((7, 9, 5)) < 0.6
    ref = _scipy_r(t[mask].T, p[mask].T)  # C order of the mask, as y[mask]
    np.testing.assert_allclose(voxelwise_r(t, p, mask), ref, rtol=0, atol=1e-12)
    rm = r_map(t, p, mask)
    np.testing.assert_allclose(rm[mask], ref, rtol=0, atol=1e-12)
    assert np.isnan(rm[~mask]).all()

    t2, p2 = _pair(3, (23, 37))
    m2 = np.random.default_rng(4).random(37) < 0.7
    np.testing.assert_allclose(voxelwise_r(t2, p2, m2), _scipy_r(t2[:, m2], p2[:, m2]), rtol=0, atol=1e-12)
    np.testing.assert_allclose(voxelwise_r(t2, p2), _scipy_r(t2, p2), rtol=0, atol=1e-12)


def test_median_r_and_summarize_r_equal_numpy_of_scipy_r():
    """median_r == np.median of scipy.stats.pearsonr per voxel; summarize_r == np.nan{median,mean,quantile} of r with NaNs."""
    from eeg2fmri.evaluation.metrics import median_r, summarize_r

    t, p = _pair(5, (23, 37))
    t[:, 11] = 4.0  # a constant voxel: NaN r, ignored by the median
    keep = np.arange(37) != 11
    ref = _scipy_r(t[:, keep], p[:, keep])
    assert abs(median_r(t, p) - np.median(ref)) < 1e-12

    r = np.random.default_rng(6).uniform(-0.6, 0.9, (13, 17))
    r[np.random.default_rng(7).random(r.shape) < 0.2] = np.nan
    s = summarize_r(r)
    q25, q75 = np.nanpercentile(r, [25, 75])
    np.testing.assert_allclose([s["median"], s["mean"], s["q25"], s["q75"]], [np.nanmedian(r), np.nanmean(r), q25, q75],
                               rtol=0, atol=1e-14)
    finite = r[np.isfinite(r)]
    assert s["n"] == finite.size and s["n_nan"] == r.size - finite.size
    assert s["frac_positive"] == np.mean(finite > 0)


@pytest.mark.parametrize("layout", ["4d", "2d"])
def test_roi_r_equals_scipy_pearsonr_of_roi_means(layout):
    """roi_r == scipy.stats.pearsonr of the ROI-mean observed and predicted series (label 0 = background)."""
    from eeg2fmri.evaluation.metrics import roi_r

    rng = np.random.default_rng(8)
    ids = np.array([0, 2, 5, 7])  # gaps between the label values
    if layout == "4d":
        t, p = _pair(9, (8, 6, 5, 29))
        labels = ids[rng.integers(0, 4, (8, 6, 5))]
        ser_t, ser_p, lab = t.reshape(-1, 29).T, p.reshape(-1, 29).T, labels.ravel()
    else:
        t, p = _pair(10, (29, 41))
        labels = ids[rng.integers(0, 4, 41)].astype(np.float64)  # whole-number floats, as from NIfTI
        ser_t, ser_p, lab = t, p, labels
    got = roi_r(t, p, labels)
    assert list(got) == [2, 5, 7]
    for k, v in got.items():
        want = pearsonr(ser_t[:, lab == k].mean(1), ser_p[:, lab == k].mean(1)).statistic
        assert abs(v - want) < 1e-12


# --------------------------------------------------------------------------------------
# intensity errors vs scikit-learn


def test_rmse_mae_equal_sklearn():
    """rmse / mae (whole array, 4D + 3D mask, 2D + 1D mask) == sklearn mean_squared_error (sqrt) / mean_absolute_error."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    from eeg2fmri.evaluation.metrics import mae, rmse

    t, p = _pair(11, (7, 9, 5, 11))
    mask = np.random.default_rng(12).random((7, 9, 5)) < 0.5
    t2, p2 = _pair(13, (17, 31))
    m2 = np.random.default_rng(14).random(31) < 0.5
    cases = [(t, p, None, t.ravel(), p.ravel()), (t, p, mask, t[mask].ravel(), p[mask].ravel()),
             (t2, p2, m2, t2[:, m2].ravel(), p2[:, m2].ravel())]
    for a, b, m, ra, rb in cases:
        assert rmse(a, b, m) == pytest.approx(np.sqrt(mean_squared_error(ra, rb)), rel=1e-12)
        assert mae(a, b, m) == pytest.approx(mean_absolute_error(ra, rb), rel=1e-12)


def test_calhas_rmse_equals_mean_of_sklearn_rmse_per_volume():
    """calhas_rmse == the mean over volumes of sqrt(sklearn mean_squared_error) over every voxel of the grid (3D = one volume)."""
    from sklearn.metrics import mean_squared_error

    from eeg2fmri.evaluation.metrics import calhas_rmse

    t, p = _pair(15, (9, 11, 7, 5))
    want = np.mean([np.sqrt(mean_squared_error(t[..., i].ravel(), p[..., i].ravel())) for i in range(5)])
    assert calhas_rmse(t, p) == pytest.approx(want, rel=1e-12)
    assert calhas_rmse(t[..., 2], p[..., 2]) == pytest.approx(np.sqrt(mean_squared_error(t[..., 2].ravel(), p[..., 2].ravel())), rel=1e-12)


@pytest.mark.parametrize("data_range", [7.5, "peer", "true_range"])
def test_calhas_ssim_equals_skimage_per_slice(data_range):
    """calhas_ssim == the mean over volumes of the mean over slices 0, 3, 6 (Z = 11) of skimage structural_similarity (Gaussian 11x11, sigma 1.5)."""
    from skimage.metrics import structural_similarity

    from eeg2fmri.evaluation.metrics import calhas_ssim

    rng = np.random.default_rng(16)
    t = rng.standard_normal((13, 16, 11, 3)).cumsum(0) + 5.0  # spatial structure
    p = t + 0.8 * rng.standard_normal(t.shape)
    per_vol = []
    for v in range(3):
        per_slice = []
        for z in (0, 3, 6):  # 3k for k < 11 // 3: slice 9 is not used
            a, b = t[:, :, z, v] + 1e-9, p[:, :, z, v] + 1e-9  # their offset
            if data_range == "peer":
                dr = max(a.max(), b.max())
            elif data_range == "true_range":
                dr = t[..., v].max() - t[..., v].min()
            else:
                dr = data_range
            # skimage averages the map where the 11x11 window fits (a border of 5 cropped): tf's VALID map
            per_slice.append(structural_similarity(a, b, data_range=dr, gaussian_weights=True, sigma=1.5,
                                                   use_sample_covariance=False))
        per_vol.append(np.mean(per_slice))
    assert abs(calhas_ssim(t, p, data_range=data_range) - np.mean(per_vol)) < 1e-12


def test_protocol_r2_equals_sklearn_r2_score_variance_weighted():
    """evaluation.protocol._r2 (pooled over voxels) == sklearn r2_score(multioutput="variance_weighted")."""
    from sklearn.metrics import r2_score

    from eeg2fmri.evaluation.protocol import _r2

    y, p = _pair(17, (37, 23))
    y = y * np.random.default_rng(18).uniform(0.5, 3.0, 23)  # voxels of different variance: the weighting matters
    assert _r2(y, p) == pytest.approx(r2_score(y, p, multioutput="variance_weighted"), rel=1e-12)


# --------------------------------------------------------------------------------------
# scalers vs scikit-learn


def test_standardizer_equals_sklearn_standard_scaler():
    """preprocessing.bold.Standardizer == sklearn StandardScaler (mean_, scale_, transform, inverse), a constant column scaled by 1."""
    from sklearn.preprocessing import StandardScaler

    from eeg2fmri.preprocessing.bold import Standardizer

    rng = np.random.default_rng(19)
    y = rng.standard_normal((37, 23)) * rng.uniform(0.5, 3.0, 23) + rng.uniform(-5.0, 5.0, 23)
    y[:, 4] = 2.5
    ours, sk = Standardizer().fit(y), StandardScaler().fit(y)
    np.testing.assert_allclose(ours.mean_, sk.mean_, rtol=1e-6, atol=1e-6)  # stored as float32
    np.testing.assert_allclose(ours.scale_, sk.scale_, rtol=1e-6)
    z = ours.transform(y)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, sk.transform(y), rtol=1e-5, atol=1e-6)
    zz = rng.standard_normal((11, 23))
    np.testing.assert_allclose(ours.inverse_transform(zz), sk.inverse_transform(zz), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("unit_variance", [True, False])
@pytest.mark.parametrize("axis", [0, 2])
def test_robust_scaler_equals_sklearn(unit_variance, axis):
    """representations.scaling.RobustScaler along ``axis`` == sklearn RobustScaler on the (time, positions) reshape (center_, scale_, transform)."""
    from sklearn.preprocessing import RobustScaler as SkRobustScaler

    from eeg2fmri.preprocessing.representations.scaling import RobustScaler

    rng = np.random.default_rng(20)
    x = rng.standard_normal((37, 6, 4)) * 3.0 + 1.0  # (time, channels, freqs)
    x[:, 2, 1] = 4.0  # a constant position
    sk = SkRobustScaler(unit_variance=unit_variance).fit(x.reshape(37, -1))
    ref = sk.transform(x.reshape(37, -1)).reshape(x.shape)
    ours = RobustScaler(axis=axis, unit_variance=unit_variance)
    z = ours.fit_transform(np.moveaxis(x, 0, axis))
    np.testing.assert_allclose(ours.center_.ravel(), sk.center_, rtol=1e-6, atol=1e-6)  # float32
    moving = np.ones(x.shape[1:], dtype=bool)
    moving[2, 1] = False
    np.testing.assert_allclose(ours.scale_[moving], sk.scale_.reshape(x.shape[1:])[moving], rtol=1e-6)
    # zero IQR: ours scale 1, sklearn 1 / 1.349 with unit_variance (1 before the division); both map the constant to 0
    assert ours.scale_[2, 1] == 1.0
    np.testing.assert_allclose(np.moveaxis(z, axis, 0), ref, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# detrending and confound regression vs nilearn.signal


@pytest.mark.parametrize(("tr", "high_pass"), [(1.3, 1.0 / 128.0), (0.7, 0.02)])
def test_detrend_equals_nilearn_clean_cosine(tr, high_pass):
    """preprocessing.bold.detrend == nilearn.signal.clean(detrend, filter="cosine") == lstsq on create_cosine_drift + a line."""
    from nilearn.signal import clean, create_cosine_drift

    from eeg2fmri.preprocessing.bold import detrend

    rng = np.random.default_rng(21)
    n = 157
    y = rng.standard_normal((n, 9)).cumsum(0) + 50.0  # random walks: drifts to remove
    ours = detrend(y, tr, high_pass=high_pass)
    drift = create_cosine_drift(high_pass, np.arange(n) * tr)  # cosines + a constant
    assert drift.shape[1] - 1 == int(np.floor(2 * n * tr * high_pass)) >= 3
    x = np.c_[drift, np.linspace(-1.0, 1.0, n)]
    ref = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7 * scale)  # float32 output
    nl = clean(y, detrend=True, standardize=None, filter="cosine", high_pass=high_pass, t_r=tr)
    np.testing.assert_allclose(ours, nl, rtol=1e-6, atol=1e-7 * scale)
    # no high-pass: order 1 == scipy.signal.detrend(type="linear")
    from scipy.signal import detrend as scipy_detrend

    np.testing.assert_allclose(detrend(y, tr, high_pass=None), scipy_detrend(y, axis=0), rtol=1e-6, atol=1e-7 * scale)


@pytest.mark.parametrize("keep_mean", [True, False])
def test_regress_confounds_equals_nilearn_clean(keep_mean):
    """preprocessing.volumes.regress_confounds == nilearn.signal.clean(confounds, standardize_confounds=True) (minus the mean if keep_mean=False)."""
    from nilearn.signal import clean

    from eeg2fmri.preprocessing.volumes import regress_confounds

    rng = np.random.default_rng(22)
    n, v, k = 83, 9, 5
    c = rng.standard_normal((n, k))
    c[:, 4] = 2.0 * c[:, 0] + 1.0  # rank-deficient: collinear with column 0 once centred
    y = rng.standard_normal((n, v)) + c[:, :3] @ rng.standard_normal((3, v)) + 20.0
    ours = regress_confounds(y, c, keep_mean=keep_mean)
    # z-scored confounds are centred: projecting them out leaves each column's mean, as keep_mean=True
    ref = clean(y, confounds=c, detrend=False, standardize=None, standardize_confounds=True)
    if not keep_mean:
        ref = ref - ref.mean(0)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7 * np.abs(ref).max())  # float32 output


# --------------------------------------------------------------------------------------
# atlas extraction vs nilearn maskers

AT_SHAPE, AT_T = (9, 11, 13), 6
AT_AFFINE = np.array([[3.0, 0, 0, -12.0], [0, 3.5, 0, -20.0], [0, 0, 4.0, -25.0], [0, 0, 0, 1]])
AT_OTHER = np.array([[2.0, 0, 0, -13.0], [0, 2.5, 0, -21.0], [0, 0, 3.0, -26.0], [0, 0, 0, 1]])  # finer, shifted grid
AT_OTHER_SHAPE = (14, 16, 18)


@pytest.mark.parametrize("kind", ["labels_same_grid", "labels_other_grid", "spheres", "probabilistic_other_grid"])
def test_atlas_equals_nilearn_maskers(kind):
    """Atlas.transform == nilearn NiftiLabelsMasker (mean) / NiftiSpheresMasker; probabilistic == weighted mean with nilearn linear-resampled maps."""
    from nilearn.image import resample_img
    from nilearn.maskers import NiftiLabelsMasker, NiftiSpheresMasker

    from eeg2fmri.preprocessing.atlas import Atlas

    rng = np.random.default_rng(23)
    bold = rng.standard_normal(AT_SHAPE + (AT_T,)).astype(np.float32) + 10.0
    mask = np.zeros(AT_SHAPE, dtype=bool)
    mask[1:8, 1:10, 2:12] = True
    img = nib.Nifti1Image(bold, AT_AFFINE)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), AT_AFFINE)
    y = bold[mask].T  # (n_volumes, n_voxels), C order
    if kind.startswith("labels"):
        shape, aff = (AT_SHAPE, AT_AFFINE) if kind == "labels_same_grid" else (AT_OTHER_SHAPE, AT_OTHER)
        labels = nib.Nifti1Image(rng.integers(0, 5, shape).astype(np.int16), aff)
        atlas = Atlas.from_labels(labels).fit((mask, AT_AFFINE))
        # resampling_target="data": the labels are resampled to the BOLD grid, nearest neighbour
        ref = NiftiLabelsMasker(labels, mask_img=mask_img, strategy="mean", standardize=None).fit_transform(img)
    elif kind == "spheres":
        centres = np.array([[0.0, 0.0, 0.0], [0.5, 15.0, 9.0], [-6.5, -8.0, -10.0]])  # world mm
        atlas = Atlas.from_spheres(centres, 6.0).fit((mask, AT_AFFINE))
        ref = NiftiSpheresMasker(centres, radius=6.0, mask_img=mask_img, standardize=None).fit_transform(img)
    else:
        maps = rng.random(AT_OTHER_SHAPE + (2,)).astype(np.float32) * (rng.random(AT_OTHER_SHAPE + (1,)) < 0.5)
        atlas = Atlas.from_probabilistic(nib.Nifti1Image(maps, AT_OTHER)).fit((mask, AT_AFFINE))
        w = resample_img(nib.Nifti1Image(maps, AT_OTHER), target_affine=AT_AFFINE, target_shape=AT_SHAPE,
                         interpolation="linear", force_resample=True, copy_header=True)
        w = np.clip(np.asarray(w.dataobj, dtype=np.float64)[mask], 0.0, None)
        ref = (y @ w) / w.sum(0)
    got = atlas.transform(y)
    assert got.shape == ref.shape and got.shape[1] >= 2
    # float32 data (~10, spacing 9.5e-7) and weights: measured 1.8e-7 .. 7.7e-7 of the largest value
    np.testing.assert_allclose(got, ref, rtol=0, atol=1.5e-6 * np.abs(ref).max())


# --------------------------------------------------------------------------------------
# block length: the FFT autocorrelation vs numpy.correlate


@pytest.mark.parametrize(("tr", "threshold"), [(4.0, 0.1), (4.0, 0.3), (2.5, 0.05)])
def test_measured_block_len_equals_numpy_correlate_acf(tr, threshold):
    """protocol.measured_block_len == 2 x the first lag where the median (over voxels) np.correlate ACF < threshold, clipped."""
    from eeg2fmri.evaluation.protocol import measured_block_len

    rng = np.random.default_rng(24)
    n, v = 131, 11
    e = rng.standard_normal((n + 8, v))
    x = np.stack([np.convolve(e[:, j], np.ones(9) / 9, "valid") for j in range(v)], 1)  # MA(8): ACF ~ 1 - lag / 9
    xc = x - x.mean(0)
    acf = np.stack([np.correlate(xc[:, j], xc[:, j], "full")[n - 1:] / (xc[:, j] ** 2).sum() for j in range(v)], 1)
    lag = int(np.flatnonzero(np.median(acf, 1) < threshold)[0])
    base = min(max(int(np.ceil(16.0 / tr)), round(n ** (1 / 3))), n // 2)  # the HRF-span rule
    assert 2 * lag > base  # the measured ACF decides
    assert measured_block_len(x, tr, threshold=threshold) == min(max(base, 2 * lag), n // 2)


# --------------------------------------------------------------------------------------
# one-group bootstrap vs scipy.stats.bootstrap


def test_hierarchical_bootstrap_one_group_equals_scipy_bootstrap_percentile():
    """hierarchical_bootstrap([values]) == scipy.stats.bootstrap(np.mean, method="percentile"): the same CI up to Monte-Carlo error."""
    from scipy.stats import bootstrap, norm

    from eeg2fmri.evaluation.hierarchical import hierarchical_bootstrap

    vals = np.random.default_rng(25).standard_normal(41) + 0.3
    n_boot = 20000
    ours = hierarchical_bootstrap([vals], n_boot=n_boot, random_state=1)
    seed_kw = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"  # scipy >= 1.15: rng
    ref = bootstrap((vals,), np.mean, n_resamples=n_boot, method="percentile", confidence_level=0.95,
                    **{seed_kw: np.random.default_rng(2)}).confidence_interval
    assert ours["mean"] == pytest.approx(vals.mean(), rel=1e-12)
    # Monte-Carlo SE of a 2.5 % quantile of B resamples of a ~normal law with sd s / sqrt(n):
    # sqrt(p (1 - p) / B) / density; two independent estimates differ by sqrt(2) of it. 4 SE of the difference.
    sd = vals.std() / np.sqrt(len(vals))
    se = np.sqrt(0.025 * 0.975 / n_boot) / (norm.pdf(norm.ppf(0.025)) / sd)
    tol = 4 * np.sqrt(2) * se  # ~0.1 of the bootstrap sd
    assert abs(ours["low"] - ref.low) < tol
    assert abs(ours["high"] - ref.high) < tol


def test_centred_interval_on_a_smooth_statistic_equals_scipy_percentile_and_basic():
    """For the mean of iid data (block length 1) the draws' median is the estimate up to Monte-Carlo error, so the
    centred interval that evaluate reports equals scipy.stats.bootstrap's percentile and basic intervals there; it
    departs from them only where the draws are offset from the estimate (the median r over mostly-noise voxels)."""
    from scipy.stats import bootstrap, norm

    from eeg2fmri.evaluation.metrics import block_bootstrap_ci

    vals = np.random.default_rng(26).standard_normal(61) + 0.2
    n_boot = 20000
    ours = block_bootstrap_ci(vals, np.zeros_like(vals), lambda a, b: float(np.mean(a - b)), n_boot=n_boot, block_len=1,
                              random_state=3, interval="centred")
    seed_kw = "rng" if "rng" in inspect.signature(bootstrap).parameters else "random_state"
    sd = vals.std() / np.sqrt(len(vals))
    se = np.sqrt(0.025 * 0.975 / n_boot) / (norm.pdf(norm.ppf(0.025)) / sd)
    tol = 4 * np.sqrt(2) * se + 4 * sd / np.sqrt(n_boot)  # two quantile estimates + the draws' median
    for method in ("percentile", "basic"):
        ref = bootstrap((vals,), np.mean, n_resamples=n_boot, method=method, confidence_level=0.95,
                        **{seed_kw: np.random.default_rng(4)}).confidence_interval
        assert abs(ours["low"] - ref.low) < tol and abs(ours["high"] - ref.high) < tol


# --------------------------------------------------------------------------------------
# balloon models vs scipy.integrate.solve_ivp

BALLOON = dict(kappa=0.65, gamma=0.41, tau=0.98, alpha=0.32, rho=0.34, v0=0.02)  # Friston et al. 2000


def _balloon_input(seed: int, dt: float, seg: int) -> np.ndarray:
    """(n_times, 3) random blocks held for ``seg`` steps, ~60 % of them off, the last block cut short."""
    rng = np.random.default_rng(seed)
    amp = rng.uniform(0.0, 1.0, (41, 3)) * (rng.random((41, 3)) < 0.4)
    return np.repeat(amp, seg, axis=0)[: 41 * seg - 17]


def _solve_ivp_balloon(u: np.ndarray, dt: float, seg: int, kappa=BALLOON["kappa"], tau=BALLOON["tau"]) -> np.ndarray:
    """Friston 2000 balloon BOLD at the end of every step, scipy solve_ivp (DOP853, rtol 1e-10) over each constant block."""
    from scipy.integrate import solve_ivp

    n, r = u.shape
    g, a, rho, v0 = BALLOON["gamma"], BALLOON["alpha"], BALLOON["rho"], BALLOON["v0"]

    def rhs(_t, x, ui):
        s, f, v, q = x.reshape(4, r)
        fout = v ** (1.0 / a)
        e = 1.0 - (1.0 - rho) ** (1.0 / f)
        return np.concatenate([ui - kappa * s - g * (f - 1.0), s, (f - fout) / tau, (f * e / rho - fout * q / v) / tau])

    x = np.r_[np.zeros(r), np.ones(3 * r)]  # rest: s = 0, f = v = q = 1
    out = np.empty((n, r))
    for a0 in range(0, n, seg):
        b0 = min(a0 + seg, n)
        sol = solve_ivp(rhs, (a0 * dt, b0 * dt), x, method="DOP853", t_eval=(np.arange(a0, b0) + 1) * dt,
                        args=(u[a0],), rtol=1e-10, atol=1e-12)
        x = sol.y[:, -1]
        _, _, v, q = sol.y.reshape(4, r, -1)
        out[a0:b0] = (v0 * (7 * rho * (1 - q) + 2 * (1 - q / v) + (2 * rho - 0.2) * (1 - v))).T
    return out


def test_balloon_windkessel_equals_solve_ivp():
    """simulate.neural_mass.balloon_windkessel (RK4, dt 10 ms) == solve_ivp of the same equations, also with per-region kappa, tau."""
    from eeg2fmri.simulate.neural_mass import balloon_windkessel

    dt, seg = 0.01, 50
    u = _balloon_input(26, dt, seg)
    ref = _solve_ivp_balloon(u, dt, seg)
    peak = np.abs(ref).max()
    assert peak > 0.01
    np.testing.assert_allclose(balloon_windkessel(u, dt), ref, rtol=0, atol=1e-8 * peak)  # measured 2e-9 of the peak
    kappa, tau = np.array([0.6, 0.65, 0.8]), np.array([0.9, 1.0, 1.1])
    ref2 = _solve_ivp_balloon(u, dt, seg, kappa=kappa, tau=tau)
    np.testing.assert_allclose(balloon_windkessel(u, dt, kappa=kappa, tau=tau), ref2, rtol=0, atol=1e-8 * peak)


def test_balloon_bold_converges_to_solve_ivp():
    """simulate.hrf.balloon_bold (forward Euler) -> solve_ivp of the same equations at first order: 10x smaller step, 10x smaller error."""
    from eeg2fmri.simulate.hrf import balloon_bold

    dt, seg = 0.01, 50
    u = _balloon_input(27, dt, seg)
    ref = _solve_ivp_balloon(u, dt, seg)
    peak = np.abs(ref).max()
    coarse = np.abs(balloon_bold(u, dt) - ref).max() / peak
    fine = np.abs(balloon_bold(np.repeat(u, 10, axis=0), dt / 10)[9::10] - ref).max() / peak  # same instants
    assert coarse < 8e-3 and fine < 8e-4  # measured 6.6e-3 and 6.6e-4 of the peak
    assert 9.5 < coarse / fine < 10.5  # Euler's O(dt) global error: measured 10.06


# --------------------------------------------------------------------------------------
# electrode sphere fit vs MNE


def test_fit_sphere_equals_mne_fit_sphere_to_headshape():
    """preprocessing.channels._fit_sphere == mne.bem.fit_sphere_to_headshape(dig_kinds=("eeg",)) on noisy scalp points."""
    mne = pytest.importorskip("mne", minversion="1.10", reason="MNE < 1.10 fits the sphere by COBYLA, not linear least squares")

    from eeg2fmri.preprocessing.channels import _fit_sphere

    rng = np.random.default_rng(28)
    n = 23
    centre, radius = np.array([0.003, -0.008, 0.041]), 0.092  # m, head frame
    theta, phi = np.arccos(rng.uniform(-0.1, 1.0, n)), rng.uniform(0.0, 2 * np.pi, n)  # upper scalp: MNE drops z < 0, y > 0
    u = np.c_[np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)]
    pts = centre + (radius + 0.004 * rng.standard_normal(n))[:, None] * u  # 4 mm radial noise
    names = [f"E{i}" for i in range(n)]
    info = mne.create_info(names, 100.0, "eeg")
    info.set_montage(mne.channels.make_dig_montage(ch_pos=dict(zip(names, pts)), coord_frame="head"))
    r_mne, o_mne, _ = mne.bem.fit_sphere_to_headshape(info, dig_kinds=("eeg",), units="m", verbose=False)
    c, r = _fit_sphere(pts)
    np.testing.assert_allclose(c, o_mne, rtol=0, atol=1e-12)
    assert abs(r - r_mne) < 1e-12
    assert np.linalg.norm(c - centre) > 1e-4  # the noise moves the fit: the comparison is not of the truth
