"""The circular-shift null on detrended targets: each rolled prediction projected off the run's drift basis and scaled by
its spread under the target's spectrum (session 40; benchmarks/check_shift_null_slow.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from eeg2fmri.evaluation.metrics import pearson_r
from eeg2fmri.evaluation.protocol import (
    _circular_shift_r,
    _drift_bases,
    _null_level,
    _null_shifts,
    _roi_shift_null_p95,
    _shift_null_distribution,
)
from eeg2fmri.preprocessing.bold import detrend, drift_basis
from eeg2fmri.utils.stats import circular_shift_level

TR = 2.0


def _ar(rng: np.random.Generator, n: int, v: int, a: float = 0.9) -> np.ndarray:
    return lfilter([1.0], [1.0, -a], rng.standard_normal((n + 100, v)), axis=0)[100:]


def _direct(y: np.ndarray, ps: list[np.ndarray], bases: list[np.ndarray | None], sh: tuple[int, ...]) -> np.ndarray:
    """The null's r for one shift, with np.roll, an explicit projection, np.corrcoef and full DFTs."""
    lens = [len(p) for p in ps]
    st = np.cumsum([0, *lens])
    yc = y.astype(np.float64) - y.astype(np.float64).mean(0)
    pc = np.concatenate(ps).astype(np.float64)
    pc -= pc.mean(0)

    def parts(shift: tuple[int, ...]) -> list[np.ndarray]:
        out = []
        for j, k in enumerate(shift):
            x = np.roll(pc[st[j] : st[j + 1]], k, axis=0)
            out.append(x if bases[j] is None else x - bases[j] @ (bases[j].T @ x))
        return out

    def spread2(shift: tuple[int, ...]) -> np.ndarray:
        return sum((np.abs(np.fft.fft(yc[st[j] : st[j + 1]], axis=0)) ** 2 * np.abs(np.fft.fft(x, axis=0)) ** 2).sum(0) / lens[j] ** 2
                   for j, x in enumerate(parts(shift)))

    x = np.concatenate(parts(sh))
    out = np.full(y.shape[1], np.nan)
    for v in range(y.shape[1]):
        if np.ptp(yc[:, v]) > 0 and np.ptp(pc[:, v]) > 0:
            r = np.corrcoef(yc[:, v], x[:, v])[0, 1]  # pearson r of the target and the projected rolled prediction
            out[v] = r * np.linalg.norm(x[:, v] - x[:, v].mean()) / np.linalg.norm(pc[:, v])
    with np.errstate(invalid="ignore"):
        return out * np.sqrt(spread2((0,) * len(ps)) / spread2(sh))


def _case(seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], tuple[int, ...]]:
    """Three runs of different lengths (13 voxels): the first two detrended as split_targets does, the third not; a
    target voxel constant (0 after detrending), a prediction voxel constant, one constant within a run only."""
    rng = np.random.default_rng(seed)
    lens, v = (41, 70, 54), 13
    ys = [detrend(_ar(rng, n, v), TR) for n in lens[:2]] + [_ar(rng, lens[2], v).astype(np.float32)]
    ps = [_ar(rng, n, v).astype(np.float32) for n in lens]
    ps[1] = detrend(ps[1], TR)  # a drift-free prediction in one run
    for y, p in zip(ys, ps):
        y[:, 3] = 0.0
        p[:, 5] = -1.0
    ps[0][:, 7] = 2.0  # constant within one run only: defined r
    return np.concatenate(ys), ps, lens


def test_drift_bases_are_the_orthonormal_drift_basis_of_detrended_runs_only():
    y, ps, lens = _case()
    assert _drift_bases(y, list(lens), None) is None  # no TR: no projection
    bases = _drift_bases(y, list(lens), TR)
    assert bases[2] is None  # the third run's targets are not detrended: plain shifts there
    for q, n in zip(bases[:2], lens[:2]):
        b = drift_basis(n, TR)
        assert q.shape == (n, b.shape[1] - 1)  # the basis but its constant
        np.testing.assert_allclose(q.T @ q, np.eye(q.shape[1]), atol=1e-12)
        np.testing.assert_allclose(q.sum(0), 0.0, atol=1e-10)  # orthogonal to the constant (the means are pearson_r's)
        bc = b - b.mean(0)
        np.testing.assert_allclose(bc - q @ (q.T @ bc), 0.0, atol=1e-10)  # spans the basis, constant aside
    # targets detrended with another TR are not taken for detrended with this one
    other = np.concatenate([detrend(_ar(np.random.default_rng(1), n, 4), 0.7) for n in (90, 75)])
    assert _drift_bases(other, [90, 75], TR) is None and _drift_bases(other, [90, 75], 0.7) is not None


@pytest.mark.parametrize("chunk", [None, 200])
def test_fast_path_equals_direct_projection_and_spectral_scale(chunk, monkeypatch):
    """Every shift's r from the FFT path equals np.roll + explicit projection + np.corrcoef + full DFTs, in voxel chunks
    too; NaN for constant voxels; the aligned r is pearson_r (the targets have nothing in their drift basis)."""
    if chunk is not None:
        monkeypatch.setattr("eeg2fmri.utils.stats.CHUNK_ELEMS", chunk)  # a voxel or two per chunk
    y, ps, lens = _case()
    bases = _drift_bases(y, list(lens), TR)
    shifts = [(0, 0, 0), (5, 3, 11), (40, 1, 53), (17, 69, 26)]
    got = _circular_shift_r(y, ps, shifts, bases=bases)
    for sh, g in zip(shifts, got):
        want = _direct(y, ps, bases, sh)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(want))
        assert np.isnan(g[3]) and np.isnan(g[5]) and np.isfinite(g[7])
        np.testing.assert_allclose(g[np.isfinite(g)], want[np.isfinite(want)], rtol=0, atol=1e-12)
    aligned = np.asarray(pearson_r(y, np.concatenate(ps)), dtype=np.float64)
    np.testing.assert_allclose(got[0][np.isfinite(got[0])], aligned[np.isfinite(aligned)], rtol=0, atol=1e-6)
    # without bases, or with none detrended: the plain r, bit for bit
    plain = _circular_shift_r(y, ps, shifts)
    for a, b in zip(plain, _circular_shift_r(y, ps, shifts, bases=[None, None, None])):
        np.testing.assert_array_equal(a, b)


def test_prediction_all_in_the_drift_basis_has_no_null():
    """A prediction voxel that is a pure drift (a line) has r ~ 0 with a detrended target and no part off the basis: its
    shifted r are NaN (left out of the median), not the r of a rolled ramp's jump."""
    rng = np.random.default_rng(3)
    n, v = 48, 5
    y = detrend(_ar(rng, n, v), TR)
    p = _ar(rng, n, v)
    p[:, 2] = np.linspace(-1.0, 2.0, n)
    got = _circular_shift_r(y, [p], [(7,), (20,)], bases=_drift_bases(y, [n], TR))
    assert all(np.isnan(g[2]) and np.isfinite(np.delete(g, 2)).all() for g in got)


def test_whole_mask_and_roi_nulls_use_the_projection_on_detrended_targets(monkeypatch):
    """_shift_null_distribution and _roi_shift_null_p95 with the TR: the medians / ROI levels of the direct computation
    over every shift of _null_shifts; targets that are not detrended keep the plain null exactly; the same in passes of
    bounded memory."""
    rng = np.random.default_rng(5)
    lens, v = (44, 37), 11
    runs = [{"y": detrend(_ar(rng, n, v, 0.95), TR), "preds": {"m": detrend(_ar(rng, n, v, 0.95), TR)}} for n in lens]
    y = np.concatenate([r["y"] for r in runs])
    ps = [r["preds"]["m"] for r in runs]
    bases = _drift_bases(y, list(lens), TR)
    order = _null_shifts(list(lens))
    got = _shift_null_distribution(y, runs, "m", tr=TR)
    want = [np.nanmedian(_direct(y, ps, bases, sh)) for sh in order]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert not np.allclose(got, _shift_null_distribution(y, runs, "m"))  # (the projection changes the null here)
    monkeypatch.setattr("eeg2fmri.evaluation.protocol.NULL_MEMORY", 8 * v * 4)  # four shifts per pass
    np.testing.assert_array_equal(_shift_null_distribution(y, runs, "m", tr=TR), got)

    labels = np.array([1] * 4 + [0] * 2 + [3] * 5)
    roi = _roi_shift_null_p95(y, runs, "m", labels, [1, 3], tr=TR)
    for key in (1, 3):
        cols = labels == key
        ym = y[:, cols].astype(np.float64).mean(1, keepdims=True)
        pm = [p[:, cols].astype(np.float64).mean(1, keepdims=True) for p in ps]
        rs = [_direct(ym, pm, _drift_bases(ym, list(lens), TR), sh)[0] for sh in _null_shifts(list(lens), 1000)]
        assert roi[key] == pytest.approx(circular_shift_level(np.array(rs)), abs=1e-12)

    raw = [{"y": _ar(rng, n, v), "preds": {"m": _ar(rng, n, v)}} for n in lens]  # not detrended: the TR changes nothing
    yr = np.concatenate([r["y"] for r in raw])
    np.testing.assert_array_equal(_shift_null_distribution(yr, raw, "m", tr=TR), _shift_null_distribution(yr, raw, "m"))
    assert _roi_shift_null_p95(yr, raw, "m", labels, [1, 3], tr=TR) == _roi_shift_null_p95(yr, raw, "m", labels, [1, 3])


def test_drift_free_slow_predictions_pass_about_five_percent():
    """Unrelated AR(0.97) pairs of 60 volumes, target and prediction detrended (the worst cell of the benchmark): the
    plain shifts passed ~11 %, the projected and spectrum-scaled ones ~5 % (every pair a column of one call; seeded)."""
    rng = np.random.default_rng(11)
    n, pairs = 60, 1200
    y = detrend(_ar(rng, n, pairs, 0.97), TR)
    p = detrend(_ar(rng, n, pairs, 0.97), TR)
    order = _null_shifts([n], 1000)
    aligned = _circular_shift_r(y, [p], [(0,)])[0]
    plain = np.mean(aligned > circular_shift_level(np.stack(_circular_shift_r(y, [p], order))))
    new = np.mean(aligned > circular_shift_level(np.stack(_circular_shift_r(y, [p], order, bases=_drift_bases(y, [n], TR)))))
    assert plain > 0.085
    assert 0.035 < new < 0.07
    # the whole-mask statistic on one subject of them: its level is the 5 % level of the medians
    runs = [{"y": y[:, :40], "preds": {"m": p[:, :40]}}]
    dist = _shift_null_distribution(y[:, :40], runs, "m", tr=TR)
    assert len(dist) == n - 1 and _null_level(dist) == pytest.approx(np.sort(dist)[-3])


def test_score_runs_uses_the_projected_null_on_detrended_targets():
    """score_runs (evaluate, benchmark) passes its TR on: the whole-mask null of detrended targets is the projected one."""
    from eeg2fmri.evaluation.protocol import score_runs

    rng = np.random.default_rng(8)
    lens, v = (46, 39), 7
    runs = [{"subject": "01", "key": f"sub-01_run-{i}", "y": detrend(_ar(rng, n, v, 0.95), TR),
             "preds": {"m": detrend(_ar(rng, n, v, 0.95), TR)}} for i, n in enumerate(lens)]
    y = np.concatenate([r["y"] for r in runs])
    core = score_runs(runs, ["m"], None, TR, reference=None, baseline=None, n_boot=0)
    m = core["per_subject"]["01"]["models"]["m"]
    want = _shift_null_distribution(y, runs, "m", tr=TR)
    np.testing.assert_allclose(m["null_median_r_shifts"], np.round(want, 6), atol=1e-9)
    assert m["null_p95_median_r"] == pytest.approx(_null_level(want), abs=1e-12)
    # each run's own half-shift null (a subject of several runs): the drift-projected one too, as the subject's (a review)
    for rr in runs:
        want_run = _circular_shift_r(rr["y"], [rr["preds"]["m"]], [(len(rr["y"]) // 2,)],
                                     bases=_drift_bases(rr["y"], [len(rr["y"])], TR))[0]
        plain = pearson_r(rr["y"], np.roll(rr["preds"]["m"], len(rr["y"]) // 2, axis=0))
        got = core["runs"][rr["key"]]["models"]["m"]["null_median_r"]
        assert got == pytest.approx(float(np.nanmedian(want_run)), abs=1e-9)
        assert got != pytest.approx(float(np.nanmedian(plain)), abs=1e-6)
