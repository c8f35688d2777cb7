"""The torch signal processing of synthesis (eeg2fmri.preprocessing.torch_dsp) equals the NumPy/SciPy/MNE path.

Runs on CPU torch. Tolerances (documented in the module and the README):

* resampling and FIR filters (float64, as SciPy and MNE): 1e-12 of the signal's scale;
* the work-rate EEG (rounded to float32 where the NumPy code stores it): 1e-6 relative;
* band power envelopes (complex64, as ``band_envelopes``): 1e-5 of the largest power;
  against scipy.signal.hilbert of the band-passed signal in float64: 1e-5;
* streamed features (log-standardised frames): 1e-3 absolute in standardised units
  (observed ~5e-5).
"""

from __future__ import annotations

import importlib
import json
import warnings

import mne
import numpy as np
import pytest
import torch
from scipy.signal import firwin, hilbert, resample_poly

from eeg2fmri.datasets.prepared import PrepareConfig, load_eeg_lowrate, lowrate_plan
from eeg2fmri.preprocessing.eeg import auto_bands, band_envelopes, band_gains
from eeg2fmri.preprocessing.representations.bandpower import bandpower_frames
from eeg2fmri.preprocessing.torch_dsp import (
    band_envelopes_torch,
    bandpower_frames_torch,
    fir_filter_torch,
    mne_fir_kernels,
    resample_poly_torch,
    work_rate_eeg_torch,
)
from eeg2fmri.synthesis import stream_representation, synthesize
from eeg2fmri.utils.timing import collect_timings
from eeg2fmri.utils.validation import Eeg2fmriInputError

synth_mod = importlib.import_module("eeg2fmri.synthesis.synthesize")


def _raw(sfreq: float, seconds: float, n_chans: int, extra: int = 0, seed: int = 0) -> mne.io.RawArray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sfreq) + extra
    t = np.arange(n) / sfreq
    x = rng.standard_normal((n_chans, n)) * 5e-6 + 20e-6  # with a DC offset
    for c in range(n_chans):
        x[c] += 10e-6 * (1 + 0.5 * np.sin(2 * np.pi * 0.02 * t + c)) * np.sin(2 * np.pi * (9 + c) * t) + 3e-6 * np.sin(2 * np.pi * 50 * t)
    info = mne.create_info([f"E{i}" for i in range(n_chans)], sfreq, "eeg")
    info["line_freq"] = 50.0
    return mne.io.RawArray(x, info, verbose=False)


@pytest.mark.parametrize(("up", "down", "custom"), [(19, 40, False), (19, 40, True), (1, 4, False), (5, 2, False), (2, 1, True), (6, 4, False)])
def test_resample_poly_matches_scipy(up, down, custom):
    x = np.random.default_rng(1).standard_normal((3, 1001))
    h = firwin(2 * 6 * max(up, down) + 1, 1.0 / max(up, down), window=("kaiser", 5.0)) if custom else None
    ref = resample_poly(x, up, down, axis=1, **({"window": h} if custom else {}))
    got = resample_poly_torch(torch.as_tensor(x), up, down, h).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("l_freq", "h_freq", "notch", "n"), [(0.5, None, (50.0, 100.0), 4001), (1.0, 40.0, (), 2999), (None, None, (50.0,), 997),
                                                             (0.5, None, (), 700)])
def test_fir_filters_match_mne(l_freq, h_freq, notch, n):
    x = np.random.default_rng(2).standard_normal((4, n)) + 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "filter_length is longer than the signal" for the shortest signals
        ref = x.copy()
        if l_freq is not None or h_freq is not None:
            ref = mne.filter.filter_data(ref, 237.5, l_freq, h_freq, verbose=False)
        if notch:
            ref = mne.filter.notch_filter(ref, 237.5, np.array(notch), verbose=False)
        kernels = mne_fir_kernels(237.5, l_freq, h_freq, notch)
    assert len(kernels) == (l_freq is not None or h_freq is not None) + bool(notch)
    got = torch.as_tensor(x)
    for h in kernels:
        got = fir_filter_torch(got, h)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-12, rtol=0)


def test_band_envelopes_match_numpy_and_scipy_hilbert():
    rng = np.random.default_rng(3)
    sf, bands = 237.5, auto_bands(500.0)
    x = rng.standard_normal((5, 3001)).astype(np.float32)
    got = band_envelopes_torch(torch.as_tensor(x), sf, bands).numpy()
    ref = band_envelopes(x, sf, bands)
    assert got.shape == ref.shape == (len(bands), 5, 3001) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-5 * ref.max(), rtol=0)
    # the same as band-passing (the raised-cosine gains, zero phase) then the Hilbert envelope, in float64
    spec = np.fft.rfft(x.astype(np.float64), axis=-1)
    for b, (a, e, g) in enumerate(band_gains(x.shape[1], sf, bands)):
        s = np.zeros_like(spec)
        s[:, a:e] = spec[:, a:e] * g
        xb = np.fft.irfft(s, n=x.shape[1], axis=-1)
        env = np.abs(hilbert(xb, axis=-1)) ** 2
        np.testing.assert_allclose(got[b], env, atol=1e-5 * env.max(), rtol=0)


def test_bandpower_frames_match_numpy():
    rng = np.random.default_rng(4)
    wsf, bands = 237.5, auto_bands(500.0)
    seg = rng.standard_normal((3, 5000)).astype(np.float32) * 1e-5
    starts = np.arange(2.0, 18.0, 2.0)
    ref = bandpower_frames(seg, wsf, bands, 0.5, starts, 2.0, 84.1)
    got = bandpower_frames_torch(torch.as_tensor(seg), wsf, bands, 0.5, starts, 2.0, 84.1).numpy()
    assert got.shape == ref.shape == (len(starts), 3, len(bands)) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5)


@pytest.mark.parametrize(("sfreq", "cfg"), [(500.0, {}), (250.0, {"representation": "stft"}), (200.0, {"l_freq": 1.0, "h_freq": 70.0, "reference": None})])
def test_work_rate_eeg_matches_load_eeg_lowrate(sfreq, cfg):
    raw = _raw(sfreq, 37.0, 5, extra=3)
    config = PrepareConfig(**cfg).resolved(sfreq)
    ref, wsf, _ = load_eeg_lowrate(raw, config)
    plan = lowrate_plan(sfreq, config, raw.info["line_freq"])
    kernels = [torch.tensor(h) for h in mne_fir_kernels(plan.wsf, plan.l_freq, plan.h_freq, plan.notch_freqs)]
    got = work_rate_eeg_torch(torch.as_tensor(raw.get_data()), plan, kernels, raw.ch_names).numpy()
    assert plan.wsf == wsf and got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-6 * np.abs(ref).max(), rtol=0)


def test_work_rate_eeg_errors():
    raw = _raw(250.0, 20.0, 3)
    config = PrepareConfig().resolved(250.0)
    plan = lowrate_plan(250.0, config, 50.0)
    x = torch.as_tensor(raw.get_data())
    x[1, 5] = float("nan")
    with pytest.raises(Eeg2fmriInputError, match=r"\['E1'\] contain NaN/Inf"):
        work_rate_eeg_torch(x, plan, [], raw.ch_names)
    x[1, 5] = 0.0
    x[2] = 1e-6
    with pytest.raises(Eeg2fmriInputError, match=r"\['E2'\] are flat"):
        work_rate_eeg_torch(x, plan, [], raw.ch_names)


@pytest.mark.parametrize(
    ("sfreq", "cfg", "work_sfreq", "tol"),
    [
        (250.0, {}, None, 1e-3),  # band power, periodic first/last chunks
        (500.0, {"frames_per_tr": 2}, None, 1e-3),
        (200.0, {"bands": {"alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 90.0)}}, 237.5, 1e-3),  # upsampled to the work rate
        (250.0, {"representation": "stft"}, None, 1e-4),
        (250.0, {"representation": "raw", "raw_sfreq": 50.0}, None, 1e-4),
    ],
)
def test_stream_representation_torch_equals_numpy(sfreq, cfg, work_sfreq, tol):
    raw = _raw(sfreq, 170.0, 5, extra=7)
    config = PrepareConfig(**cfg)
    kw = dict(tr=2.0, chunk_seconds=60.0, pad_seconds=15.0, work_sfreq=work_sfreq)
    ref = stream_representation(raw, config, **kw)
    with collect_timings() as t:
        got = stream_representation(raw, config, torch_device="cpu", **kw)
    assert got.info["dsp"] == "torch:cpu" and ref.info["dsp"] == "numpy" and got.info["n_chunks"] == 3
    assert {"read", "filter", "standardise"} <= set(t)
    a, b = np.asarray(got.features), np.asarray(ref.features)
    assert a.shape == b.shape and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=tol, rtol=0)
    np.testing.assert_array_equal(got.starts, ref.starts)


def test_dsp_device_choice(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda:0")
    assert synth_mod._dsp_device("auto", cpu) is None and synth_mod._dsp_device("auto", None) is None
    assert synth_mod._dsp_device("auto", cuda) == cuda
    assert synth_mod._dsp_device("cpu", cuda) is None and synth_mod._dsp_device(None, cuda) is None
    with pytest.raises(Eeg2fmriInputError, match="dsp_device: expected one of"):
        synth_mod._dsp_device("gpu", cpu)
    if not torch.cuda.is_available():
        with pytest.raises(Eeg2fmriInputError, match="expected a visible CUDA GPU"):
            synth_mod._dsp_device("cuda", cpu)


def test_synthesize_torch_dsp_equals_cpu(tiny_bids, tiny_prepared, tmp_path, monkeypatch):
    """The whole synthesis with the torch signal processing (on CPU torch) gives the CPU path's NIfTI to 1e-3."""
    import nibabel as nib

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import save_model
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", targets=split_targets(tiny_prepared, sp))
    model = tmp_path / "ridge"
    save_model(fitted.model, model, spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=tiny_prepared.mask,
               affine=tiny_prepared.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=tiny_prepared.config.to_dict())
    eeg = tiny_bids / "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr"
    ref = synthesize(eeg, model, tmp_path / "cpu.nii.gz", progress_bar=False, device="cpu", chunk_seconds=30.0)
    monkeypatch.setattr(synth_mod, "_dsp_device", lambda dsp_device, dev: torch.device("cpu"))
    got = synthesize(eeg, model, tmp_path / "torch.nii.gz", progress_bar=False, device="cpu", chunk_seconds=30.0)
    a, b = np.asarray(nib.load(got).dataobj), np.asarray(nib.load(ref).dataobj)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-3 * np.abs(b).max(), rtol=0)
    assert json.loads((tmp_path / "torch.json").read_text())["SignalProcessing"] == "cpu (torch)"
    assert json.loads((tmp_path / "cpu.json").read_text())["SignalProcessing"] == "cpu (NumPy, SciPy, MNE)"

