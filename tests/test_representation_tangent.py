"""Tests for the ``tangent`` representation (band covariances in the tangent space at the recording's mean)."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy import linalg

from eeg2fmri.datasets.prepared import PrepareConfig, eeg_representation
from eeg2fmri.preprocessing.representations import get_representation, split_tangent
from eeg2fmri.preprocessing.representations.tangent import band_covariances, tangent_space
from eeg2fmri.utils.validation import Eeg2fmriInputError

# 5 channels, 3 bands, 11 frames of 2 s at 100 Hz
N_CH, SF, TR = 5, 100.0, 2.0
BANDS = {"theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0)}


def _spd(rng, n_frames, n_bands, n_ch):
    a = rng.standard_normal((n_frames, n_bands, n_ch, 3 * n_ch))
    return a @ np.swapaxes(a, -1, -2) / (3 * n_ch)


def test_tangent_space_equals_scipy_logm():
    rng = np.random.default_rng(0)
    cov = _spd(rng, 7, 2, N_CH)
    ref = _spd(rng, 1, 2, N_CH)[0]
    got = tangent_space(cov, ref)
    shrink = lambda c: (1 - 1e-3) * c + 1e-3 * np.trace(c) / N_CH * np.eye(N_CH)  # noqa: E731
    for b in range(2):
        isq = linalg.fractional_matrix_power(shrink(ref[b]), -0.5).real
        for t in range(7):
            want = linalg.logm(isq @ shrink(cov[t, b]) @ isq).real
            np.testing.assert_allclose(got[t, b], want, atol=1e-9)
    # default reference: the mean of the (shrunk) covariances
    np.testing.assert_allclose(tangent_space(cov), tangent_space(cov, cov.mean(0)), atol=1e-9)


def test_tangent_space_is_invariant_to_channel_mixing(monkeypatch):
    """Re-centring makes the features independent of the mixing: with C' = A C A' (any invertible A, e.g. another head
    or montage), the tangent matrices are rotated, T' = U T U', so distances between frames are unchanged."""
    import eeg2fmri.preprocessing.representations.tangent as tangent_mod

    rng = np.random.default_rng(1)
    cov = _spd(rng, 9, 1, N_CH)
    q, _ = np.linalg.qr(rng.standard_normal((N_CH, N_CH)))
    a = q @ np.diag(np.linspace(0.5, 2.0, N_CH)) @ rng.standard_normal((N_CH, N_CH)) * 0.3 + q

    def distances(c):
        t = tangent_space(c)[:, 0]
        return t, np.linalg.norm(t[:, None] - t[None], axis=(-2, -1))

    (t, d), (tm, dm) = distances(cov), distances(a @ cov @ a.T)
    np.testing.assert_allclose(dm, d, rtol=0.05, atol=0.02)  # the small shrinkage towards the identity is not affine-invariant
    monkeypatch.setattr(tangent_mod, "TANGENT_SHRINK", 0.0)
    (t, d), (tm, dm) = distances(cov), distances(a @ cov @ a.T)
    np.testing.assert_allclose(dm, d, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(np.linalg.eigvalsh(tm), np.linalg.eigvalsh(t), atol=1e-8)
    # log power of the channels is not: a model on it sees another feature space after mixing
    lp, lpm = np.log(np.einsum("tii->ti", cov[:, 0])), np.log(np.einsum("tii->ti", (a @ cov @ a.T)[:, 0]))
    assert np.abs(np.linalg.norm(lpm[:, None] - lpm[None], axis=-1) - np.linalg.norm(lp[:, None] - lp[None], axis=-1)).max() > 0.1


def _raw(seconds=60.0, seed=0):
    rng = np.random.default_rng(seed)
    n = int(seconds * SF)
    t = np.arange(n) / SF
    x = rng.standard_normal((N_CH, n)) * 4e-6
    for c in range(N_CH):
        x[c] += 10e-6 * (1 + 0.5 * np.sin(2 * np.pi * 0.03 * t + c)) * np.sin(2 * np.pi * (6 + 3 * c) * t)
    info = mne.create_info([f"E{i}" for i in range(N_CH)], SF, "eeg")
    info["line_freq"] = 50.0
    return mne.io.RawArray(x, info, verbose=False)


def test_band_covariances_match_mne_bandpass():
    """Frame covariances of our zero-phase band-pass agree with MNE's FIR band-pass followed by np.cov."""
    x = _raw().get_data()
    starts = np.arange(2.0, 56.0, TR)
    got = band_covariances(x, SF, {"alpha": (8.0, 13.0)}, starts, TR)[:, 0]
    xf = mne.filter.filter_data(x, SF, 8.0, 13.0, l_trans_bandwidth=2.0, h_trans_bandwidth=2.0, verbose=False)
    want = np.stack([np.cov(xf[:, int(round(s * SF)) : int(round((s + TR) * SF))], bias=True) for s in starts])
    # the filters differ (raised-cosine gains vs a windowed FIR), the covariances agree closely
    iu = np.triu_indices(N_CH)
    r = np.corrcoef(got[:, iu[0], iu[1]].ravel(), want[:, iu[0], iu[1]].ravel())[0, 1]
    assert r > 0.99
    np.testing.assert_allclose(np.einsum("tii->t", got), np.einsum("tii->t", want), rtol=0.1)
    with pytest.raises(Eeg2fmriInputError, match="frames extend beyond the EEG recording"):
        band_covariances(x, SF, BANDS, np.array([58.5]), TR)


def test_representation_layout_and_power_block():
    raw = _raw()
    onsets = np.arange(4.0, 50.0, TR)
    cfg = PrepareConfig(representation="tangent", bands=BANDS)
    rep = eeg_representation(raw, cfg, tr=TR, onsets=onsets)
    bp = eeg_representation(raw, PrepareConfig(bands=BANDS), tr=TR, onsets=onsets)
    f = rep["features"]
    assert f.dtype == np.float32 and f.shape == (bp["features"].shape[0], N_CH, 3 * (1 + N_CH))
    np.testing.assert_array_equal(rep["window_end"], bp["window_end"])
    assert len(rep["freqs"]) == f.shape[2] and rep["frame_rate"] == bp["frame_rate"]
    power, tan = split_tangent(np.moveaxis(f, 0, -1), N_CH)  # windows put frames last
    np.testing.assert_array_equal(np.moveaxis(power, -1, 0), bp["features"])
    t = np.moveaxis(tan, -1, 0).reshape(len(f), N_CH, 3, N_CH)  # [frame, c, band, d]
    np.testing.assert_allclose(t, np.swapaxes(t, 1, 3), atol=1e-5)  # every band's matrix is symmetric
    assert np.abs(t).max() > 0.05
    with pytest.raises(Eeg2fmriInputError, match=r"expected axis -2 of size n_bands \* \(1 \+ n_chans\)"):
        split_tangent(np.zeros((2, N_CH, 7, 4)), N_CH)
    assert get_representation("tangent").needed_fmax(cfg) == 30.0


def test_streaming_matches_one_shot():
    from eeg2fmri.synthesis import stream_representation

    raw = _raw(seconds=170.0, seed=3)
    cfg = PrepareConfig(representation="tangent", bands=BANDS)
    one = eeg_representation(raw, cfg, tr=TR)["features"]
    chunked = stream_representation(raw, cfg, tr=TR, chunk_seconds=60.0, pad_seconds=15.0)
    assert chunked.info["n_chunks"] == 3
    got = np.asarray(chunked.features)
    assert got.shape == one.shape and got.dtype == np.float32
    np.testing.assert_allclose(got[:, :, :3], one[:, :, :3], atol=5e-3, rtol=0)  # band power: as for the bandpower representation
    np.testing.assert_allclose(got[:, :, 3:], one[:, :, 3:], atol=2e-3, rtol=0)


def test_prepare_cli_representation_flag(tiny_bids, tmp_path, capsys):
    from eeg2fmri.cli import main
    from eeg2fmri.datasets import load_prepared

    assert main(["prepare", str(tiny_bids), "--out", str(tmp_path / "t"), "--representation", "tangent", "--subjects", "01", "-q"]) == 0
    ds = load_prepared(tmp_path / "t")
    n_ch = len(ds.ch_names)
    assert ds.representation == "tangent" and ds.runs[0].features.shape[1:] == (n_ch, len(ds.config.bands) * (1 + n_ch))
    assert "representation tangent" in capsys.readouterr().out
    assert main(["prepare", str(tiny_bids), "--out", str(tmp_path / "w"), "--representation", "wavelet", "-q"]) == 2
    assert "unknown representation 'wavelet'; choose one of: 'bandpower', 'stft', 'raw', 'tangent'" in capsys.readouterr().err
