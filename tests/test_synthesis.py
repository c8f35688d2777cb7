"""Synthesis: streamed features == one-shot features, NIfTI header/affine/TR, channel mapping,
resampling, errors, no partial output after an interruption, uncertainty output, CLI."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import mne
import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.datasets.prepared import PrepareConfig, eeg_representation
from eeg2fmri.preprocessing import auto_bands
from eeg2fmri.synthesis import StreamingNifti, nifti_header, stream_representation, synthesize
from eeg2fmri.synthesis import stream as stream_mod
from eeg2fmri.utils.validation import Eeg2fmriInputError

synth_mod = importlib.import_module("eeg2fmri.synthesis.synthesize")  # the module (the package exports the function)
EEG_NAME = "sub-01/eeg/sub-01_task-rest_run-1_eeg.vhdr"


def _synthetic_raw(sfreq: float = 250.0, seconds: float = 300.0, n_chans: int = 6, extra_samples: int = 0, seed: int = 0) -> mne.io.RawArray:
    rng = np.random.default_rng(seed)
    n = int(seconds * sfreq) + extra_samples
    t = np.arange(n) / sfreq
    x = rng.standard_normal((n_chans, n)) * 5e-6
    for c in range(n_chans):
        x[c] += 10e-6 * (1 + 0.5 * np.sin(2 * np.pi * 0.02 * t + c)) * np.sin(2 * np.pi * (9 + c) * t)
    info = mne.create_info([f"E{i}" for i in range(n_chans)], sfreq, "eeg")
    info["line_freq"] = 50.0
    return mne.io.RawArray(x, info, verbose=False)


@pytest.mark.parametrize(
    ("cfg", "tol", "extra"),
    [
        ({}, 5e-3, 7),  # band power: FFT envelopes interpolated at the one-shot sample times
        ({"representation": "stft"}, 1e-4, 7),
        ({"representation": "stft", "stft_log": True, "frames_per_tr": 2}, 1e-4, 7),
        ({"representation": "raw", "raw_sfreq": 50.0}, 1e-4, 0),
        ({"representation": "raw", "raw_sfreq": 50.0}, 1e-4, 7),
    ],
)
def test_streaming_matches_one_shot(cfg, tol, extra):
    # 7 extra samples: a length that is not a multiple of the resampling factor (250 -> 112.5 Hz is 9/20)
    raw = _synthetic_raw(seconds=170.0, extra_samples=extra)
    config = PrepareConfig(**cfg)
    one = eeg_representation(raw, config, tr=2.0)["features"]
    chunked = stream_representation(raw, config, tr=2.0, chunk_seconds=60.0, pad_seconds=15.0)
    assert chunked.info["n_chunks"] == 3
    got = np.asarray(chunked.features)
    assert got.shape == one.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, one, atol=tol, rtol=0)
    whole = stream_representation(raw, config, tr=2.0, chunk_seconds=1000.0)
    assert whole.info["n_chunks"] == 1
    np.testing.assert_allclose(np.asarray(whole.features), one, atol=tol, rtol=0)


def test_streaming_memmap_and_finer_hop(tmp_path):
    raw = _synthetic_raw(sfreq=200.0, seconds=120.0, n_chans=3)
    st = stream_representation(raw, PrepareConfig(), tr=2.0, hop=0.5, folder=tmp_path, chunk_seconds=40.0)
    assert isinstance(st.features, np.memmap) and (tmp_path / "features.npy").exists()
    # bands="auto" at 200 Hz: delta..gamma and high gamma up to 0.4 x 200 = 80 Hz
    assert auto_bands(200.0)["high_gamma"] == (55.0, 80.0)
    assert st.step == 0.5 and st.features.shape == (len(st.starts), 3, 6)
    np.testing.assert_allclose(st.starts[:5], [0.0, 0.5, 1.0, 1.5, 2.0])
    # every 4th frame is a frame of the TR grid: the same frames as with the default hop, up to the
    # standardisation (statistics over 4x more, overlapping frames)
    coarse = np.asarray(stream_representation(raw, PrepareConfig(), tr=2.0).features)
    fine = np.asarray(st.features)[::4][: len(coarse)]
    assert np.corrcoef(fine.ravel(), coarse.ravel())[0, 1] > 0.99
    with pytest.raises(Eeg2fmriInputError, match=r"hop=0\.3 s must divide the frame length 2\.0 s"):
        stream_representation(raw, PrepareConfig(), tr=2.0, hop=0.3)


def test_exact_median_matches_numpy(monkeypatch):
    rng = np.random.default_rng(3)
    monkeypatch.setattr(stream_mod, "_GATHER_LIMIT", 5)  # force several refinements
    monkeypatch.setattr(stream_mod, "_HIST_BINS", 7)
    for shape in [(101, 3, 2), (64, 5, 3)]:
        a = rng.standard_normal(shape).astype(np.float32)
        a[:10] = 0.25  # ties
        assert stream_mod._exact_median(a, rows=13) == pytest.approx(float(np.median(a.astype(np.float64))), abs=0)


def test_streaming_nifti_roundtrip_and_abort(tmp_path):
    mask = np.zeros((5, 4, 3), bool)
    mask[1:4, 1:3, :] = True
    aff = np.diag([2.0, 3.0, 4.0, 1.0])
    hdr = nifti_header((5, 4, 3, 7), aff, (2.0, 3.0, 4.0), 1.5)
    vals = np.arange(7 * int(mask.sum()), dtype=np.float32).reshape(7, -1)
    for name in ("a.nii", "b.nii.gz"):
        with StreamingNifti(tmp_path / name, hdr) as w:
            w.write_masked(0, vals[:3], mask)
            w.write_masked(3, vals[3:], mask)
            w.finish()
        img = nib.load(tmp_path / name)
        data = np.asarray(img.dataobj)
        assert data.dtype == np.float32 and data.shape == (5, 4, 3, 7)
        np.testing.assert_array_equal(data[mask].T, vals)
        assert (data[~mask] == 0).all()
        np.testing.assert_allclose(img.affine, aff)
        assert img.header.get_zooms() == (2.0, 3.0, 4.0, 1.5) and img.header.get_xyzt_units() == ("mm", "sec")
    with pytest.raises(Eeg2fmriInputError, match="output file already exists"):
        StreamingNifti(tmp_path / "a.nii", hdr)
    with pytest.raises(RuntimeError, match="stop"), StreamingNifti(tmp_path / "c.nii.gz", hdr) as w:
        w.write_masked(0, vals[:3], mask)
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii", "b.nii.gz"]


def test_sequential_nifti_same_bytes_as_random_access(tmp_path, monkeypatch):
    import gzip

    from eeg2fmri.synthesis import nifti as nifti_mod

    monkeypatch.setattr(nifti_mod, "_MEMBER_BYTES", 1000)  # several gzip members, compressed by several threads
    rng = np.random.default_rng(5)
    mask = rng.random((7, 5, 3)) > 0.4
    hdr = nifti_header((7, 5, 3, 11), np.diag([2.0, 3.0, 4.0, 1.0]), (2.0, 3.0, 4.0), 1.5)
    vals = rng.standard_normal((11, int(mask.sum()))).astype(np.float32)
    vol = np.zeros((7, 5, 3, 2), np.float32)
    vol[mask] = vals[9:].T
    for ext in (".nii", ".nii.gz"):
        for seq in (False, True):
            with StreamingNifti(tmp_path / f"{seq}{ext}", hdr, sequential=seq, threads=3) as w:
                w.write_masked(0, vals[:4], mask)
                w.write_masked(4, vals[4:9], mask)
                w.write(9, vol)
                w.finish()
        read = gzip.open if ext == ".nii.gz" else open
        with read(tmp_path / f"False{ext}", "rb") as fa, read(tmp_path / f"True{ext}", "rb") as fb:
            assert fa.read() == fb.read()
        np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / f"True{ext}").dataobj)[mask].T, vals)
    with StreamingNifti(tmp_path / "d.nii.gz", hdr, sequential=True) as w:
        with pytest.raises(ValueError, match="expected volumes from 0"):
            w.write_masked(2, vals[:3], mask)
        w.write_masked(0, vals[:3], mask)
        with pytest.raises(ValueError, match="3 of 11 volumes written"):
            w.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["False.nii", "False.nii.gz", "True.nii", "True.nii.gz"]


# --------------------------------------------------------------------------- with a trained model


@pytest.fixture(scope="module")
def ridge_dir(tiny_prepared, tmp_path_factory):
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import save_model
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", targets=split_targets(tiny_prepared, sp))
    out = tmp_path_factory.mktemp("models") / "ridge"
    save_model(fitted.model, out, spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=tiny_prepared.mask,
               affine=tiny_prepared.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=tiny_prepared.config.to_dict())
    return out


def test_synthesize_header_affine_tr_and_values(tiny_bids, tiny_prepared, ridge_dir, tmp_path):
    from eeg2fmri.models import load_model

    eeg = tiny_bids / EEG_NAME
    out = synthesize(eeg, ridge_dir, tmp_path / "s_bold.nii.gz", progress_bar=False, first_onset=0)
    img = nib.load(out)
    data = np.asarray(img.dataobj)
    mask = tiny_prepared.mask
    assert data.dtype == np.float32 and data.ndim == 4 and data.shape[:3] == mask.shape == (17, 20, 16)
    np.testing.assert_allclose(img.affine, tiny_prepared.affine)
    assert img.header.get_zooms() == pytest.approx((12.0, 12.0, 12.0, 2.0))
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert (data[~mask] == 0).all() and data[mask].std() > 0
    side = json.loads((tmp_path / "s_bold.json").read_text())
    assert side["RepetitionTime"] == 2.0 and side["ChannelsIgnored"] == ["ECG", "EOG"] and not side["Resampled"]
    assert side["Model"] == "ridge_hrf" and len(side["ChannelsUsed"]) == 16
    assert side["VolumeTiming"]["acquisition_s"] == [0.0, 2.0] and side["VolumeTiming"]["fixed_hrf_reference_s"] == 1.0
    # the HRF basis the predictions use, and what it means for timing (user test 56)
    assert side["HrfBasis"]["basis"] == load_model(ridge_dir).model.hrf_ in ("canonical", "basis", "lags")
    assert side["HrfBasis"]["meaning"]
    # volume j = the model's prediction on the window of one-shot frames j .. j + n_frames - 1
    lm = load_model(ridge_dir)
    raw = mne.io.read_raw_brainvision(eeg, preload=True, verbose=False).pick(side["ChannelsUsed"])
    feats = eeg_representation(raw, tiny_prepared.config, tr=2.0)["features"]
    n_frames = lm.meta["window"]["n_frames"]
    # the first window is frames 0 .. n_frames - 1 (2 s each from the first sample); its volume is the last frame
    assert side["StartTime"] == pytest.approx((n_frames - 1) * 2.0)
    x = np.stack([feats[j : j + n_frames].transpose(1, 2, 0) for j in range(data.shape[3])])
    ref = lm.model.predict(x)
    np.testing.assert_allclose(data[mask].T, ref, atol=2e-3 * np.abs(ref).max())
    # a finer output step: twice the volumes, TR in the header
    out2 = synthesize(eeg, ridge_dir, tmp_path / "fine.nii", tr=1.0, progress_bar=False, first_onset=0)
    img2 = nib.load(out2)
    assert img2.header.get_zooms()[3] == pytest.approx(1.0) and img2.shape[3] in (2 * data.shape[3], 2 * data.shape[3] + 1)
    with pytest.raises(Eeg2fmriInputError, match=r"tr=0\.7 s: expected the training TR, a whole number of training frames \(2 s each\) or a step that divides the frame length"):
        synthesize(eeg, ridge_dir, tmp_path / "bad.nii.gz", tr=0.7, progress_bar=False, first_onset=0)


def test_synthesize_takes_a_fit_model_result_as_its_saved_folder_would(tiny_bids, tiny_prepared, tmp_path):
    """synthesize(eeg, fit_model(...), out): the fitted object in memory gives the volumes its saved folder gives, the sidecar
    says it was in memory, and no temporary folder is left behind."""
    import tempfile

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.training import fit_model, save_fit

    sp = make_split(tiny_prepared, "within")
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "canonical"}, targets=split_targets(tiny_prepared, sp))
    assert fitted.dataset is tiny_prepared and fitted.split is sp
    eeg = tiny_bids / EEG_NAME
    before = set(Path(tempfile.gettempdir()).glob("eeg2fmri-fit-*"))
    mem = synthesize(eeg, fitted, tmp_path / "mem_bold.nii.gz", progress_bar=False)
    assert set(Path(tempfile.gettempdir()).glob("eeg2fmri-fit-*")) == before
    saved = save_fit(fitted, tmp_path / "model")  # the dataset and split come with the result
    disk = synthesize(eeg, saved, tmp_path / "disk_bold.nii.gz", progress_bar=False)
    np.testing.assert_array_equal(np.asarray(nib.load(mem).dataobj), np.asarray(nib.load(disk).dataobj))
    side = json.loads((tmp_path / "mem_bold.json").read_text())
    assert side["ModelDir"] == "(in memory: fit_model result of 'ridge_hrf')" and side["Model"] == "ridge_hrf"
    assert json.loads((tmp_path / "disk_bold.json").read_text())["ModelDir"] == str(saved.absolute())


def test_synthesize_channel_mapping_and_resampling(tiny_bids, ridge_dir, tmp_path, caplog):
    import logging

    eeg = tiny_bids / EEG_NAME
    base = np.asarray(nib.load(synthesize(eeg, ridge_dir, tmp_path / "base.nii.gz", progress_bar=False)).dataobj)
    raw = mne.io.read_raw_brainvision(eeg, preload=True, verbose=False)
    renamed = raw.copy().rename_channels({c: c.upper() for c in raw.ch_names})  # case differs
    renamed.add_channels([mne.io.RawArray(np.random.default_rng(0).standard_normal((1, raw.n_times)) * 1e-5,
                                          mne.create_info(["Extra1"], raw.info["sfreq"], "eeg"), verbose=False)])
    synthesize(renamed, ridge_dir, tmp_path / "upper.nii.gz", progress_bar=False)
    side = json.loads((tmp_path / "upper.json").read_text())
    assert "Extra1" in side["ChannelsIgnored"] and side["ChannelsRenamed"]["FP1"] == "Fp1"
    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "upper.nii.gz").dataobj), base, atol=1e-5)
    # EDF-style decorations ("EEG FP1-REF") are the training names, as prepare matches them (synthesize refused them)
    decorated = raw.copy().rename_channels({c: f"EEG {c.upper()}-REF" for c in raw.ch_names})
    synthesize(decorated, ridge_dir, tmp_path / "edf.nii.gz", progress_bar=False)
    side = json.loads((tmp_path / "edf.json").read_text())
    assert side["ChannelsRenamed"]["EEG FP1-REF"] == "Fp1"
    np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "edf.nii.gz").dataobj), base, atol=1e-5)
    # another sampling rate is resampled to the training work rate (100 Hz) and reported
    up = raw.copy().resample(200.0, verbose=False)
    synthesize(up, ridge_dir, tmp_path / "up.nii.gz", progress_bar=False)
    side = json.loads((tmp_path / "up.json").read_text())
    assert side["Resampled"] and side["SamplingFrequency"] == 200.0 and side["WorkSamplingFrequency"] == 100.0
    got = np.asarray(nib.load(tmp_path / "up.nii.gz").dataobj)
    assert got.shape == base.shape and np.corrcoef(got.ravel(), base.ravel())[0, 1] > 0.95
    # two training channels missing: interpolated at their sites, as prepare's channels option does (user test 30: synthesize
    # refused what prepare did), said and recorded
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(raw.copy().drop_channels(["O1", "O2"]), ridge_dir, tmp_path / "interp2.nii.gz", progress_bar=False)
    assert any("the recording's channels differ from the model's; mapped by" in r.getMessage()
               and "; interpolated from their neighbours: O1, O2;" in r.getMessage() for r in caplog.records)  # (user test 44: unnamed)
    assert json.loads((tmp_path / "interp2.json").read_text())["ChannelMapping"]["interpolated"] == ["O1", "O2"]
    # EDF names with a channel missing: the mapping renames them; the sidecar still says which fed which (user test 54: {})
    synthesize(decorated.copy().drop_channels(["EEG O1-REF"]), ridge_dir, tmp_path / "edfmap.nii.gz", progress_bar=False)
    side = json.loads((tmp_path / "edfmap.json").read_text())
    assert side["ChannelMapping"]["interpolated"] == ["O1"] and side["ChannelsRenamed"]["EEG FP1-REF"] == "Fp1"
    assert side["ChannelMapping"]["renamed"]["EEG C3-REF"] == "C3" and "EEG O1-REF" not in side["ChannelsRenamed"]
    with pytest.raises(Eeg2fmriInputError, match=r"sampled at 80 Hz, but the model's features use EEG up to 45 Hz"):
        synthesize(raw.copy().resample(80.0, verbose=False), ridge_dir, tmp_path / "low.nii.gz", progress_bar=False)
    dup = raw.copy().pick(["Fp1", "Fp2"])
    with pytest.raises(Eeg2fmriInputError, match=r"and 14 are missing here"):
        synthesize(dup, ridge_dir, tmp_path / "few.nii.gz", progress_bar=False)
    assert not any(p.name.startswith(("low", "few")) for p in tmp_path.iterdir())


def test_synthesize_errors_and_overwrite(tiny_bids, ridge_dir, tmp_path):
    eeg = tiny_bids / EEG_NAME
    raw = mne.io.read_raw_brainvision(eeg, preload=True, verbose=False)
    with pytest.raises(Eeg2fmriInputError, match=r"the recording lasts 10\.0 s but one EEG window of the model needs 18\.0 s"):
        synthesize(raw.copy().crop(0, 10.0, include_tmax=False), ridge_dir, tmp_path / "short.nii.gz", progress_bar=False, first_onset=0)
    padded = raw.copy().crop(0, 10.0, include_tmax=False)  # an EDF's last record padded: MNE marks it BAD_ACQ_SKIP (user test 13)
    padded.set_annotations(padded.annotations + mne.Annotations([padded.first_time + 9.0], [1.0], ["BAD_ACQ_SKIP"]))
    with pytest.raises(Eeg2fmriInputError, match=r"the recording lasts 10\.0 s \(1\.0 s of it at the end marked BAD_ACQ_SKIP: a file's padding, "
                                                 r"no data\) but one EEG window of the model needs 18\.0 s"):
        synthesize(padded, ridge_dir, tmp_path / "short.nii.gz", progress_bar=False, first_onset=0)
    with pytest.raises(Eeg2fmriInputError, match="expected an output name ending in .nii.gz or .nii"):
        synthesize(eeg, ridge_dir, tmp_path / "o.png", progress_bar=False)
    # two pieces joined (mne.concatenate_raws marks the join): the regular volume grid would misplace every later volume
    joined = mne.concatenate_raws([raw.copy().crop(0, 60.0), raw.copy().crop(100.0, None)])
    with pytest.raises(Eeg2fmriInputError, match=r"the recording is not continuous: data are joined at 60\.\d+ s \(boundary .*\(raw\.crop"):
        synthesize(joined, ridge_dir, tmp_path / "j.nii.gz", progress_bar=False)
    assert not (tmp_path / "j.nii.gz").exists()
    with pytest.raises(Eeg2fmriInputError, match="expected a model directory with model.json"):
        synthesize(eeg, tmp_path, tmp_path / "o.nii.gz", progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match="provides no uncertainty"):
        synthesize(eeg, ridge_dir, tmp_path / "u.nii.gz", uncertainty=True, progress_bar=False)
    out = synthesize(eeg, ridge_dir, tmp_path / "o.nii.gz", progress_bar=False, first_onset=0)
    mtime = out.stat().st_mtime_ns
    with pytest.raises(Eeg2fmriInputError, match=r"o\.nii\.gz: output already exists; choose another path or pass overwrite=True"):
        synthesize(eeg, ridge_dir, out, progress_bar=False)
    assert out.stat().st_mtime_ns == mtime
    synthesize(eeg, ridge_dir, out, overwrite=True, progress_bar=False)
    assert out.stat().st_mtime_ns != mtime


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_interrupted_synthesis_leaves_nothing(tiny_bids, ridge_dir, tmp_path, monkeypatch, exc):
    calls = {"n": 0}
    real = synth_mod.predict_windows

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise exc("interrupted mid-way")
        return real(*args, **kwargs)

    monkeypatch.setattr(synth_mod, "predict_windows", flaky)
    out_dir = tmp_path / "out"
    with pytest.raises(exc, match="interrupted mid-way"):
        synthesize(tiny_bids / EEG_NAME, ridge_dir, out_dir / "x_bold.nii.gz", batch_size=8, progress_bar=False)
    assert calls["n"] == 3  # two batches were written before the interruption
    assert list(out_dir.iterdir()) == []  # no NIfTI, no sidecar, no temporary file


def test_synthesize_stft_model_with_uncertainty(tiny_bids, tiny_prepared, tmp_path):
    """An STFT model that provides predict_uncertainty gets a second NIfTI with the same grid."""
    from eeg2fmri.datasets.targets import default_window
    from eeg2fmri.models import DataSpec, build_model, save_model

    cfg = PrepareConfig(representation="stft", stft_fmax=30.0)
    freqs = np.fft.rfftfreq(200, 1 / 100.0)
    freqs = freqs[(freqs >= cfg.stft_fmin - 1e-9) & (freqs <= cfg.stft_fmax + 1e-9)]
    n_frames = default_window(2.0, 0.5)
    chans = tuple(tiny_prepared.ch_names)
    spec = DataSpec("stft", (len(chans), len(freqs), n_frames), (int(tiny_prepared.mask.sum()),), 100.0, 2.0, chans, tuple(freqs), 0.5, 2)
    model = build_model("calhas2022", spec, aleatoric=True, latent_dim=27, n_fourier=16)
    save_model(model, tmp_path / "calhas", spec=spec, name="calhas2022", hparams={"aleatoric": True, "latent_dim": 27, "n_fourier": 16},
               mask=tiny_prepared.mask, affine=tiny_prepared.affine, window={"n_frames": n_frames, "lag": 0}, prepare=cfg.to_dict())
    out = synthesize(tiny_bids / EEG_NAME, tmp_path / "calhas", tmp_path / "c_bold.nii.gz", progress_bar=False)
    side = json.loads((tmp_path / "c_bold.json").read_text())
    assert side["Representation"] == "stft" and side["UncertaintyFile"] == "c_bold_uncertainty.nii.gz"
    bold, unc = nib.load(out), nib.load(tmp_path / "c_bold_uncertainty.nii.gz")
    assert bold.shape == unc.shape and np.allclose(unc.affine, bold.affine) and unc.header.get_zooms() == bold.header.get_zooms()
    u = np.asarray(unc.dataobj)
    assert (u[tiny_prepared.mask] > 0).all() and (u[~tiny_prepared.mask] == 0).all()
    assert "predict_uncertainty" in side["UncertaintyMeaning"] and "UNCALIBRATED" in side["UncertaintyMeaning"]
    # with a calibration.json holding a temperature, the scale is multiplied by it
    from eeg2fmri.evaluation.uncertainty import save_calibration

    n_vox = int(tiny_prepared.mask.sum())
    save_calibration(tmp_path / "calhas", {"levels": [0.8], "halfwidths": np.ones((1, n_vox)), "laplace_scale": np.ones(n_vox),
                                           "temperature": 2.5, "meaning": "x", "n_calibration": 7})
    synthesize(tiny_bids / EEG_NAME, tmp_path / "calhas", tmp_path / "t_bold.nii.gz", progress_bar=False)
    ut = np.asarray(nib.load(tmp_path / "t_bold_uncertainty.nii.gz").dataobj)
    np.testing.assert_allclose(ut[tiny_prepared.mask], 2.5 * u[tiny_prepared.mask], rtol=1e-5)
    meaning = json.loads((tmp_path / "t_bold.json").read_text())["UncertaintyMeaning"]
    assert "temperature 2.5" in meaning and "the calibration predates that choice" in meaning  # (no "scale" key: before session 15)
    save_calibration(tmp_path / "calhas", {"levels": [0.8], "halfwidths": np.ones((1, n_vox)), "laplace_scale": np.ones(n_vox),
                                           "temperature": 2.5, "meaning": "x", "n_calibration": 7, "scale": "own"})
    synthesize(tiny_bids / EEG_NAME, tmp_path / "calhas", tmp_path / "o_bold.nii.gz", progress_bar=False)
    meaning = json.loads((tmp_path / "o_bold.json").read_text())["UncertaintyMeaning"]
    assert "temperature 2.5" in meaning and "predates" not in meaning
    # a calibration that chose the per-voxel residual scale (the own scale predicted the validation errors worse, or was ~0):
    # that scale is written, not the model's uncalibrated spread (user test: the flagship's spread was written)
    lap = np.linspace(0.5, 1.5, n_vox).astype(np.float32)
    save_calibration(tmp_path / "calhas", {"levels": [0.8], "halfwidths": np.ones((1, n_vox)), "laplace_scale": lap, "temperature": None,
                                           "meaning": None, "n_calibration": 7, "scale": "residuals", "own_scale_not_chosen": "x"})
    synthesize(tiny_bids / EEG_NAME, tmp_path / "calhas", tmp_path / "r_bold.nii.gz", uncertainty=True, progress_bar=False)
    ur = np.asarray(nib.load(tmp_path / "r_bold_uncertainty.nii.gz").dataobj)
    np.testing.assert_allclose(ur[tiny_prepared.mask], np.broadcast_to(lap[:, None], (n_vox, ur.shape[-1])), rtol=1e-6)
    assert "per-voxel Laplace scale from the validation residuals" in json.loads((tmp_path / "r_bold.json").read_text())["UncertaintyMeaning"]
    # by default (no --uncertainty) too: a model whose own scale is written by default writes the chosen residual scale
    synthesize(tiny_bids / EEG_NAME, tmp_path / "calhas", tmp_path / "d_bold.nii.gz", progress_bar=False)
    ud = np.asarray(nib.load(tmp_path / "d_bold_uncertainty.nii.gz").dataobj)
    np.testing.assert_allclose(ud, ur)
    synthesize(tiny_bids / EEG_NAME, tmp_path / "calhas", tmp_path / "n_bold.nii.gz", uncertainty=False, progress_bar=False)
    assert not (tmp_path / "n_bold_uncertainty.nii.gz").exists()
    # a variational model without the aleatoric head: predict_uncertainty refuses, predict_mc gives the spread
    mc = build_model("calhas2022", spec, variational=True, latent_dim=27, n_fourier=16)
    save_model(mc, tmp_path / "mc", spec=spec, name="calhas2022", hparams={"variational": True, "latent_dim": 27, "n_fourier": 16},
               mask=tiny_prepared.mask, affine=tiny_prepared.affine, window={"n_frames": n_frames, "lag": 0}, prepare=cfg.to_dict())
    synthesize(tiny_bids / EEG_NAME, tmp_path / "mc", tmp_path / "m_bold.nii.gz", uncertainty=True, progress_bar=False)
    assert "Monte-Carlo" in json.loads((tmp_path / "m_bold.json").read_text())["UncertaintyMeaning"]
    assert (np.asarray(nib.load(tmp_path / "m_bold_uncertainty.nii.gz").dataobj)[tiny_prepared.mask] > 0).all()


def test_synthesize_cli(tiny_bids, ridge_dir, tmp_path, capsys):
    eeg = str(tiny_bids / EEG_NAME)
    out = tmp_path / "cli_bold.nii.gz"
    assert main(["synthesize", eeg, "--model", str(ridge_dir), "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "cli_bold.json" in printed and "ignored 2 channel(s) the model does not use: ECG, EOG" in printed
    assert main(["synthesize", eeg, "--model", str(ridge_dir), "--out", str(out), "-q"]) == 2
    assert "output already exists; choose another path or pass --overwrite." in capsys.readouterr().err  # the CLI's flag, not the keyword
    assert main(["synthesize", str(tmp_path / "nope.vhdr"), "--model", str(ridge_dir), "--out", str(tmp_path / "n.nii.gz"), "-q"]) == 2
    assert "nope.vhdr: EEG file not found; check the path." in capsys.readouterr().err
    assert main(["synthesize", eeg, "--model", str(ridge_dir), "--out", str(tmp_path / "t.nii.gz"), "--tr", "1", "-q", "--no-uncertainty"]) == 0
    assert nib.load(tmp_path / "t.nii.gz").header.get_zooms()[3] == pytest.approx(1.0)
    assert main(["synthesize", eeg, "--model", str(ridge_dir), "--out", str(tmp_path / "n20.nii.gz"), "--notch", "20", "-q"]) == 0
    assert json.loads((tmp_path / "n20.json").read_text())["NotchFrequency"] == 20.0  # --notch reaches synthesize
    capsys.readouterr()
    # a finer grid on the markers: where marker k lies among the output volumes (user test 38: "marker k is measured volume
    # k" beside output volumes of half the marker interval)
    assert main(["synthesize", eeg, "--model", str(ridge_dir), "--out", str(tmp_path / "t2.nii.gz"), "--tr", "1", "--first-onset", "markers",
                 "-q", "--no-uncertainty"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("scanner markers"))
    assert "; marker k is measured volume k" in line and re.search(r"and output volume -?\d+ \+ 2k \(2 output volumes per marker\)", line), line


def test_device_choice_and_errors(tiny_bids, tiny_prepared, tmp_path, capsys):
    """--device: auto falls back to the CPU, cuda never falls back silently, the sidecar says where it ran."""
    import torch

    from eeg2fmri.datasets.targets import default_window
    from eeg2fmri.models import DataSpec, build_model, save_model
    from eeg2fmri.models.predictor import TorchPredictor, place_model, resolve_device

    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto") and resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(Eeg2fmriInputError, match="expected one of 'auto', 'cpu', 'cuda' or 'cuda:N', got 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(Eeg2fmriInputError, match=r"--device: expected a visible CUDA GPU for 'cuda', found none .*use 'cpu' or 'auto'"):
            resolve_device("cuda", where="--device")
    else:
        with pytest.raises(Eeg2fmriInputError, match="expected a GPU index below"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    cfg = PrepareConfig(representation="stft", stft_fmax=30.0)
    freqs = np.fft.rfftfreq(200, 1 / 100.0)
    freqs = freqs[(freqs >= cfg.stft_fmin - 1e-9) & (freqs <= cfg.stft_fmax + 1e-9)]
    n_frames = default_window(2.0, 0.5)
    chans = tuple(tiny_prepared.ch_names)
    spec = DataSpec("stft", (len(chans), len(freqs), n_frames), (int(tiny_prepared.mask.sum()),), 100.0, 2.0, chans, tuple(freqs), 0.5, 2)
    model = build_model("calhas2022", spec, latent_dim=19, n_fourier=8)
    # place_model moves torch modules and predictors, leaves closed-form models alone
    tp = place_model(TorchPredictor(model, spec), "cpu")
    assert tp.device == torch.device("cpu") and next(model.parameters()).device.type == "cpu"
    sentinel = object()
    assert place_model(sentinel, "cpu") is sentinel and place_model(model, None) is model
    save_model(model, tmp_path / "m", spec=spec, name="calhas2022", hparams={"latent_dim": 19, "n_fourier": 8},
               mask=tiny_prepared.mask, affine=tiny_prepared.affine, window={"n_frames": n_frames, "lag": 0}, prepare=cfg.to_dict())
    eeg = tiny_bids / EEG_NAME
    synthesize(eeg, tmp_path / "m", tmp_path / "cpu.nii.gz", device="cpu", progress_bar=False)
    assert json.loads((tmp_path / "cpu.json").read_text())["Device"] == "cpu"
    if torch.cuda.is_available():
        synthesize(eeg, tmp_path / "m", tmp_path / "gpu.nii.gz", device="cuda", progress_bar=False)
        assert json.loads((tmp_path / "gpu.json").read_text())["Device"].startswith("cuda")
        np.testing.assert_allclose(np.asarray(nib.load(tmp_path / "gpu.nii.gz").dataobj), np.asarray(nib.load(tmp_path / "cpu.nii.gz").dataobj),
                                   atol=2e-3, rtol=2e-3)
    else:
        assert main(["synthesize", str(eeg), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "g.nii.gz"), "-q", "--device", "cuda"]) == 2
        assert "synthesize: error: device: expected a visible CUDA GPU for 'cuda', found none" in capsys.readouterr().err
        assert not (tmp_path / "g.nii.gz").exists()


def test_calibrated_scale_for_a_model_without_its_own(tiny_bids, tiny_prepared, ridge_dir, tmp_path):
    """ridge_hrf has no predictive scale: with a calibration.json (validation residuals) --uncertainty writes the
    per-voxel Laplace scale in every volume; the calibration comes from the validation windows only."""
    import shutil

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.uncertainty import (
        CALIBRATION_NAME,
        calibrate_uncertainty,
        load_calibration,
        save_calibration,
    )
    from eeg2fmri.models import load_model

    model_dir = tmp_path / "ridge"
    shutil.copytree(ridge_dir, model_dir)
    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    lm = load_model(model_dir)
    cal = calibrate_uncertainty(lm.model, tiny_prepared, sp, tg)
    n_vox = int(tiny_prepared.mask.sum())
    assert cal["temperature"] is None and cal["halfwidths"].shape == (3, n_vox) and cal["n_calibration"] == sum(len(v) for v in sp.selections["val"].values())
    save_calibration(model_dir, cal)
    back = load_calibration(model_dir, n_vox)
    np.testing.assert_array_equal(back["laplace_scale"], cal["laplace_scale"])
    out = synthesize(tiny_bids / EEG_NAME, model_dir, tmp_path / "r_bold.nii.gz", uncertainty=True, progress_bar=False)
    unc = np.asarray(nib.load(tmp_path / "r_bold_uncertainty.nii.gz").dataobj)
    assert unc.shape == nib.load(out).shape
    np.testing.assert_allclose(unc[tiny_prepared.mask], np.repeat(cal["laplace_scale"][:, None], unc.shape[-1], axis=1), rtol=1e-6)
    side = json.loads((tmp_path / "r_bold.json").read_text())
    assert "validation residuals" in side["UncertaintyMeaning"] and "log(1 / (1 - p))\"" not in side["UncertaintyMeaning"]
    # interval factors calibrated at every level (user test 15: the Laplace reading covered 0.41 at 50 % and 0.98 at 95 %):
    # the share of validation windows x voxels with |residual| <= k_p * scale is >= p, and < p (+ 1/n) strictly below k_p
    y_va = np.concatenate([tg["val"][i] for i in sp.selections["val"]]).reshape(-1, n_vox)
    from eeg2fmri.datasets.windows import run_windows
    from eeg2fmri.training.predictor import predict_windows

    p_va = np.concatenate([predict_windows(lm.model, run_windows(tiny_prepared.runs[i], v, sp.n_frames, sp.lag), n_outputs=n_vox,
                                           mask=tiny_prepared.mask) for i, v in sp.selections["val"].items()])
    ratio = np.abs(y_va - p_va) / cal["laplace_scale"][None, :]
    ks = cal["interval_multipliers"]["residuals"]
    assert side["UncertaintyIntervals"] == {f"{lv:.0%}": round(k, 4) for lv, k in zip(cal["levels"], ks)}
    assert "scale * k_p with k_p from UncertaintyIntervals" in side["UncertaintyMeaning"]
    for lv, k in zip(cal["levels"], ks):
        assert np.mean(ratio <= k * (1 + 1e-6)) >= lv and np.mean(ratio < k * (1 - 1e-6)) < lv + 1.0 / ratio.size + 1e-9
    # default (uncertainty=None): only models with a scale of their own write one
    synthesize(tiny_bids / EEG_NAME, model_dir, tmp_path / "d_bold.nii.gz", progress_bar=False)
    assert not (tmp_path / "d_bold_uncertainty.nii.gz").exists()
    # overwriting an output without --uncertainty takes the old output's uncertainty file with it (it named it); a file
    # of that name that no sidecar names (the user's) stays
    synthesize(tiny_bids / EEG_NAME, model_dir, out, uncertainty=False, overwrite=True, progress_bar=False)
    assert not (tmp_path / "r_bold_uncertainty.nii.gz").exists() and "UncertaintyFile" not in json.loads((tmp_path / "r_bold.json").read_text())
    (tmp_path / "d_bold_uncertainty.nii.gz").write_bytes(b"the user's")
    synthesize(tiny_bids / EEG_NAME, model_dir, tmp_path / "d_bold.nii.gz", uncertainty=False, overwrite=True, progress_bar=False)
    assert (tmp_path / "d_bold_uncertainty.nii.gz").read_bytes() == b"the user's"
    with pytest.raises(Eeg2fmriInputError, match="expected a scale for each of the model's 5 outputs"):
        load_calibration(model_dir, 5)
    (model_dir / "calibration.npz").write_bytes(b"not a zip")
    with pytest.raises(Eeg2fmriInputError, match=f"{CALIBRATION_NAME}: unreadable calibration"):
        load_calibration(model_dir)


def test_synthesize_flagship_on_tangent_windows(tiny_bids, tmp_path, one_torch_thread):
    """A flagship trained on tangent windows synthesises from an EEG file: the streamed features (band power plus
    re-centred band covariances) give the same volumes as the one-shot features of the whole recording."""
    import torch

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import load_model, save_model
    from eeg2fmri.training import fit_model

    prep = prepare_dataset(tiny_bids, PrepareConfig(representation="tangent"), progress_bar=False)
    n_ch = len(prep.ch_names)
    assert prep.runs[0].features.shape[1:] == (n_ch, len(prep.config.bands) * (1 + n_ch))
    sp = make_split(prep, "within")
    cfg = {"optimizer": {"max_epochs": 2, "batch_size": 32}, "trainer": {"accelerator": "cpu", "log": [], "progress_bar": False}, "seed": 0}
    fitted = fit_model(prep, sp, "eeg2fmri_net", {"n_members": 2, "seed": 0}, targets=split_targets(prep, sp), train_config=cfg)
    assert 0.0 <= fitted.info["tangent_weight"] <= 1.0 and fitted.info["ridge_weight"] in np.round(np.linspace(0, 1, 21), 2)
    out = tmp_path / "net"
    save_model(fitted.model, out, spec=fitted.spec, name="eeg2fmri_net", hparams={"n_members": 2}, mask=prep.mask, affine=prep.affine,
               window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=prep.config.to_dict())
    eeg = tiny_bids / EEG_NAME
    data = np.asarray(nib.load(synthesize(eeg, out, tmp_path / "t_bold.nii.gz", progress_bar=False, first_onset=0)).dataobj)
    side = json.loads((tmp_path / "t_bold.json").read_text())
    assert side["Representation"] == "tangent"
    lm = load_model(out)
    raw = mne.io.read_raw_brainvision(eeg, preload=True, verbose=False).pick(side["ChannelsUsed"])
    feats = eeg_representation(raw, prep.config, tr=2.0)["features"]
    n_frames = lm.meta["window"]["n_frames"]
    x = np.stack([feats[j : j + n_frames].transpose(1, 2, 0) for j in range(data.shape[3])])
    with torch.no_grad():
        ref = lm.model.eval()(torch.from_numpy(x)).reshape(len(x), -1).numpy()
    np.testing.assert_allclose(data[prep.mask].T, ref, atol=5e-3 * np.abs(ref).max())


def test_a_channel_in_other_units_is_reported(tiny_bids, ridge_dir, tmp_path, caplog):
    """A channel 1000x too large (mV read as uV, or a lifted electrode) is named in a warning and in the sidecar; the
    simulated recordings have none; a channel 1000x too small is an outlier too."""
    import logging

    from eeg2fmri.preprocessing.eeg import amplitude_outliers

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    eeg = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg" and c not in ("ECG", "EOG")]
    assert amplitude_outliers(raw, eeg) == {}
    loud = raw.copy()
    a, b = eeg[3], eeg[5]
    loud._data[loud.ch_names.index(a)] *= 1000.0
    found = amplitude_outliers(loud, eeg)
    assert list(found) == [a] and found[a] > 100
    from scipy.stats import median_abs_deviation

    # the scale is scipy's median absolute deviation (of 60 s from the middle)
    n, m = loud.n_times, int(round(60.0 * loud.info["sfreq"]))
    mad = median_abs_deviation(loud.get_data(picks=eeg, start=(n - m) // 2, stop=(n - m) // 2 + m), axis=1)
    assert found[a] == pytest.approx(mad[eeg.index(a)] / np.median(mad), rel=1e-9)
    quiet = raw.copy()
    quiet._data[quiet.ch_names.index(b)] /= 1000.0
    assert list(amplitude_outliers(quiet, eeg)) == [b]
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        out = synthesize(loud, ridge_dir, tmp_path / "loud.nii.gz", progress_bar=False, first_onset=0, interpolate_outliers=False)
    assert any(f"['{a}'] have an amplitude far from the other channels'" in r.getMessage() for r in caplog.records)
    assert list(json.loads(out.with_name("loud.json").read_text())["ChannelsWithOutlyingAmplitude"]) == [a]
    assert json.loads(out.with_name("loud.json").read_text())["ChannelsOutlyingInterpolated"] == {}  # (kept as recorded)
    assert not any("interpolated from the other channels" in r.getMessage() for r in caplog.records)
    # by default such a channel is interpolated like one marked bad (user test 18: x1000 took a region's r from 0.53 to -0.02)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        fixed = synthesize(loud, ridge_dir, tmp_path / "fixed.nii.gz", progress_bar=False, first_onset=0)
    side = json.loads(fixed.with_name("fixed.json").read_text())
    assert list(side["ChannelsOutlyingInterpolated"]) == [a] and side["ChannelsOutlyingInterpolated"][a] == pytest.approx(found[a], rel=1e-3)
    assert any(f"['{a}'] have an amplitude far from the other channels'" in r.getMessage() and "interpolated from the other channels" in r.getMessage()
               for r in caplog.records)
    marked = loud.copy()
    marked.info["bads"] = [a]
    ref = synthesize(marked, ridge_dir, tmp_path / "marked.nii.gz", progress_bar=False, first_onset=0)
    np.testing.assert_allclose(np.asarray(nib.load(fixed).dataobj), np.asarray(nib.load(ref).dataobj), rtol=1e-5, atol=1e-6)


def test_synthesis_notches_as_training_did_whatever_the_file_format(tmp_path):
    """Training notched each run at its recording's line frequency (from the BIDS sidecar); a bare copy of the same
    .vhdr carries none. The model's prepare config records the frequency (model_prepare_config), so synthesis from
    either file is the same; with notch None (before) the bare copy was filtered differently."""
    import shutil

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import model_prepare_config
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import save_model
    from eeg2fmri.simulate import simulate_dataset
    from eeg2fmri.training import fit_model

    root = simulate_dataset(tmp_path / "bids", progress_bar=False, n_subjects=2, minutes=2.5, voxel_size=14.0, n_channels=16, n_regions=6,
                            n_networks=2, sfreq=250.0, seed=3)
    ds = prepare_dataset(root, progress_bar=False)
    cfg = model_prepare_config(ds)
    assert ds.config.notch is None and cfg["notch"] == 50.0
    sp = make_split(ds, "within")
    fitted = fit_model(ds, sp, "ridge_hrf", targets=split_targets(ds, sp))
    models = {}
    for label, prep in (("old", ds.config.to_dict()), ("new", cfg)):
        models[label] = tmp_path / label
        save_model(fitted.model, models[label], spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=ds.mask,
                   affine=ds.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=prep)
    src = next(root.glob("sub-01/eeg/*_eeg.vhdr"))
    bare = tmp_path / "bare"
    bare.mkdir()
    for f in src.parent.glob(src.name.replace(".vhdr", ".*")):
        if f.suffix != ".json":  # a bare copy: without its sidecar (which now gives the line frequency even without channels.tsv)
            shutil.copy(f, bare / f.name)
    out = {(label, kind): np.asarray(nib.load(synthesize(p, models[label], tmp_path / f"{label}_{kind}.nii.gz", progress_bar=False)).dataobj)
           for label in models for kind, p in (("bids", src), ("bare", bare / src.name))}
    assert np.abs(out["old", "bids"] - out["old", "bare"]).max() > 1e-5  # the mismatch this fixes (small here: bands skip 45-55 Hz)
    np.testing.assert_allclose(out["new", "bids"], out["new", "bare"], atol=1e-6)
    np.testing.assert_allclose(out["new", "bids"], out["old", "bids"], atol=1e-6)  # the BIDS file: as before


def _longest_runs(x: np.ndarray) -> list[tuple[int, int]]:
    """(length, start) of each row's longest stretch of equal values, by itertools.groupby (the brute-force reference)."""
    import itertools

    out = []
    for row in x:
        best, pos, start = (0, 0), 0, 0
        for _, grp in itertools.groupby(row):
            n = len(list(grp))
            if n > best[0]:
                best = (n, start)
            start += n
            pos += n
        out.append(best)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_scan_matches_groupby_whatever_the_blocks(seed):
    from eeg2fmri.preprocessing.eeg import FlatScan

    rng = np.random.default_rng(seed)
    n_chans, n = 5, 3000
    x = np.round(rng.standard_normal((n_chans, n)), 1)  # coarse values: short runs of equal samples happen everywhere
    for c in range(n_chans):  # one long stretch per channel, at random places (across block edges too)
        a = int(rng.integers(0, n - 400))
        x[c, a : a + int(rng.integers(50, 400))] = x[c, a]
    x[4] = 7.0  # a constant channel
    ref = _longest_runs(x)
    names = [f"C{i}" for i in range(n_chans)]
    for blocks in ([n], [1, 999, 2000], [2, 1, 1, 2996], list(rng.multinomial(n, np.full(17, 1 / 17)))):
        for min_seconds in (0.5, 0.02):  # 50 samples (only the planted stretches), 2 samples (every stretch searched)
            scan = FlatScan(names, sfreq=100.0, min_seconds=min_seconds)
            edges = np.cumsum([0, *blocks])
            for a, b in zip(edges[:-1], edges[1:]):
                scan.update(x[:, a:b])
            assert scan.constant == ["C4"]
            want = {f"C{i}": (s / 100.0, b / 100.0) for i, (b, s) in enumerate(ref) if b >= round(min_seconds * 100)}
            assert scan.stretches() == pytest.approx(want)
            if min_seconds < 0.1:
                assert len(want) == n_chans and [(int(b), int(s)) for b, s in zip(scan._best, scan._best_start)] == ref


def test_flat_check_does_not_depend_on_the_chunk_length(caplog):
    """A channel flat for 70 s of 170 s is a warning (with its times) whatever the chunk length (it was an error when the
    stretch covered a whole chunk, and silent otherwise); a channel flat throughout is an error (before anything is written)."""
    import logging

    raw = _synthetic_raw(seconds=170.0)
    raw._data[2, 5000:22500] = raw._data[2, 5000]  # 20 s to 90 s at 250 Hz
    config = PrepareConfig()
    feats = []
    for chunk in (30.0, 60.0, 1000.0):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
            st = stream_representation(raw, config, tr=2.0, chunk_seconds=chunk, pad_seconds=10.0)
        assert any("E2 20.0-90.0 s" in r.getMessage() and "hold one value" in r.getMessage() for r in caplog.records)
        assert st.info["flat_stretches"] == {"E2": pytest.approx((20.0, 70.0))}
        feats.append(np.asarray(st.features))
    np.testing.assert_allclose(feats[0], feats[2], atol=5e-3, rtol=0)  # and the features are the one-shot ones
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        data = eeg_representation(raw, config, tr=2.0)  # prepare's path warns the same way
    assert any("E2 20.0-90.0 s" in r.getMessage() for r in caplog.records)
    np.testing.assert_allclose(feats[2], data["features"], atol=5e-3, rtol=0)
    raw._data[4] = 0.0
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: channel\(s\) \['E4'\] are flat \(constant\); mark them bad"):
        stream_representation(raw, config, tr=2.0, chunk_seconds=30.0)
    with pytest.raises(Eeg2fmriInputError, match=r"EEG: channel\(s\) \['E4'\] are flat \(constant\); mark them bad"):
        eeg_representation(raw, config, tr=2.0)


def test_trailing_padding_of_every_channel_is_named(tiny_bids, ridge_dir, tmp_path, caplog):
    """Every channel zero over the last 3 s (as an EDF writer pads its last data record): a warning that says so, the
    sidecar lists the stretches; the simulated recordings have none."""
    import logging

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        out = synthesize(raw, ridge_dir, tmp_path / "plain.nii.gz", progress_bar=False)
    assert not any("hold one value" in r.getMessage() for r in caplog.records)
    assert json.loads(out.with_name("plain.json").read_text())["ChannelsWithFlatStretches"] == {}
    n = int(3.0 * raw.info["sfreq"])
    raw._data[:, -n:] = 0.0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        out = synthesize(raw, ridge_dir, tmp_path / "padded.nii.gz", progress_bar=False)
    msg = [r.getMessage() for r in caplog.records if "hold one value" in r.getMessage()]
    assert len(msg) == 1 and "they all end at the recording's end" in msg[0] and "EDF" in msg[0]
    side = json.loads(out.with_name("padded.json").read_text())["ChannelsWithFlatStretches"]
    eeg = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg" and c not in ("ECG", "EOG")]
    assert set(eeg) <= set(side)
    assert all(v["duration_s"] == pytest.approx(3.0, abs=2 / raw.info["sfreq"]) for v in side.values())


def test_channels_marked_bad_are_interpolated(tiny_bids, ridge_dir, tmp_path, caplog):
    from eeg2fmri.preprocessing.channels import training_montage_name

    """A training channel the recording marks bad is interpolated from the others (it was used as recorded): its
    recorded data then do not matter, the sidecar names it; without positions it is used as recorded, with the reason."""
    import logging

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    eeg = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg" and c not in ("ECG", "EOG")]
    bad = eeg[4]
    marked = raw.copy()
    marked.info["bads"] = [bad]
    broken = marked.copy()
    broken._data[broken.ch_names.index(bad)] = np.random.default_rng(0).standard_normal(broken.n_times) * 1e-3  # 1000x, noise
    outs = {}
    for name, r in (("plain", raw), ("marked", marked), ("broken", broken)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
            out = synthesize(r, ridge_dir, tmp_path / f"{name}.nii.gz", progress_bar=False)
        outs[name] = np.asarray(nib.load(out).dataobj)
        side = json.loads(out.with_name(f"{name}.json").read_text())
        if name != "plain":
            assert side["ChannelsMarkedBadInterpolated"] == [bad] and side["ChannelsMarkedBadButUsed"] == []
            assert side["ChannelMapping"]["interpolated"] == [bad] and side["ChannelMapping"]["positions"] == training_montage_name()
            assert any(f"['{bad}'] are marked bad in the recording; interpolated" in r_.getMessage() for r_ in caplog.records)
    np.testing.assert_allclose(outs["broken"], outs["marked"], atol=1e-5)  # the bad channel's data are not used
    assert np.abs(outs["marked"] - outs["plain"]).max() > 1e-3  # (and interpolating it changes the output)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):  # a montage that has none of the channels: used as recorded, said
        out = synthesize(marked, ridge_dir, tmp_path / "nopos.nii.gz", progress_bar=False, channel_positions="GSN-HydroCel-32")
    msg = [r_.getMessage() for r_ in caplog.records if "marked bad" in r_.getMessage()]
    assert len(msg) == 1 and "used as recorded, since they could not be interpolated" in msg[0] and "--channel-positions" in msg[0]
    side = json.loads(out.with_name("nopos.json").read_text())
    assert side["ChannelsMarkedBadButUsed"] == [bad] and side["ChannelsMarkedBadInterpolated"] == []
    np.testing.assert_allclose(np.asarray(nib.load(out).dataobj), outs["plain"], atol=1e-5)


def test_synthesize_cli_prints_interpolated_channels(tiny_bids, ridge_dir, tmp_path, capsys):
    """The console names the training channels synthesize interpolated (user test: only the sidecar said so)."""
    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    eeg = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg" and c not in ("ECG", "EOG")]
    raw.info["bads"] = [eeg[2]]
    fif = tmp_path / "rec_raw.fif"
    raw.save(fif, verbose=False)
    assert main(["synthesize", str(fif), "--model", str(ridge_dir), "--out", str(tmp_path / "o.nii.gz"), "-q", "--no-uncertainty"]) == 0
    printed = capsys.readouterr().out
    assert f"interpolated 1 of {len(eeg)} training channel(s) from their neighbours' positions" in printed and eeg[2] in printed


def test_first_onset_anchors_the_volume_grid(tiny_bids, ridge_dir, tmp_path, caplog):
    """first_onset (seconds or the recording's scanner markers) moves the volume grid so that a volume starts there: the
    output is the one of the recording read from that phase, its StartTime shifted by it (default: the first sample)."""
    from eeg2fmri.io.sync import marker_times

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    sf, tr = raw.info["sfreq"], 2.0
    base = synthesize(raw, ridge_dir, tmp_path / "base.nii.gz", progress_bar=False, first_onset=0)
    side0 = json.loads(base.with_name("base.json").read_text())
    assert side0["VolumeGrid"] == {"anchor": "first EEG sample", "anchor_time_s": 0.0, "offset_s": 0.0,
                                   "first_volume": round(side0["StartTime"] / tr)}
    out = synthesize(raw, ridge_dir, tmp_path / "at.nii.gz", progress_bar=False, first_onset=7.3)
    side = json.loads(out.with_name("at.json").read_text())
    off = round(1.3 * sf) / sf
    assert side["VolumeGrid"] == {"anchor": "first_onset", "anchor_time_s": 7.3, "offset_s": pytest.approx(off),
                                  "first_volume": round((side["StartTime"] - 7.3) / tr)}
    # which volume of the grid anchored at 7.3 s comes first (user test 7): StartTime = 7.3 + first_volume * TR
    assert side["StartTime"] == pytest.approx(7.3 + side["VolumeGrid"]["first_volume"] * tr, abs=1 / sf)
    assert side["StartTime"] == pytest.approx(side0["StartTime"] + off)
    # the header says it too: toffset = the first volume's onset (float32 in the header)
    assert nib.load(out).header["toffset"] == pytest.approx(side["StartTime"], abs=1e-5) and side["StartTime"] > 0
    assert ((7.3 - side["StartTime"]) / tr) == pytest.approx(round((7.3 - side["StartTime"]) / tr), abs=1 / sf)
    cropped = synthesize(raw.copy().crop(tmin=off), ridge_dir, tmp_path / "cropped.nii.gz", progress_bar=False, first_onset=0)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), np.asarray(nib.load(cropped).dataobj))
    # a first_onset so early that its first volumes lack a whole EEG window: said, with the volume to start from (user test 31)
    import logging

    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        early = synthesize(raw, ridge_dir, tmp_path / "early.nii.gz", progress_bar=False, first_onset=0.5)
    k = json.loads(early.with_name("early.json").read_text())["VolumeGrid"]["first_volume"]
    assert k > 0 and any(f"output volume 0 is volume {k} of the scan timed from first_onset 0.50 s" in r.getMessage()
                         and f"drop the scan's first {k} volumes (nibabel: img.slicer[..., {k}:])" in r.getMessage() for r in caplog.records)
    # times in the sidecar stay those of the recording (a flat stretch at 20-25 s is reported there, not 1.3 s earlier)
    flat = raw.copy()
    ch = flat.ch_names.index("C3")
    flat._data[ch, int(20 * sf) : int(25 * sf)] = flat._data[ch, int(20 * sf)]
    fo = synthesize(flat, ridge_dir, tmp_path / "flat.nii.gz", progress_bar=False, first_onset=7.3)
    side_f = json.loads(fo.with_name("flat.json").read_text())["ChannelsWithFlatStretches"]
    assert side_f == {"C3": {"start_s": pytest.approx(20.0, abs=2 / sf), "duration_s": pytest.approx(5.0, abs=2 / sf)}}
    # the recording's own scanner markers (those the model was trained with): a volume starts at the first one
    name, times = marker_times(raw, ("R128",))
    assert name == "R128" and times[0] > 0
    mk = synthesize(raw, ridge_dir, tmp_path / "markers.nii.gz", progress_bar=False, first_onset="markers")
    side = json.loads(mk.with_name("markers.json").read_text())
    assert side["VolumeGrid"]["anchor"] == "marker 'R128'" and side["VolumeGrid"]["anchor_time_s"] == pytest.approx(times[0])
    k = (times[0] - side["StartTime"]) / tr
    assert k == pytest.approx(round(k), abs=1 / sf)
    # a model trained on markers of another name (mne-bids names events.tsv markers by trial_type, e.g. 'scanner') still
    # finds an EEG-only file's own scanner markers
    import shutil

    renamed = shutil.copytree(ridge_dir, tmp_path / "renamed_model")
    meta = json.loads((renamed / "model.json").read_text())
    meta["prepare"]["marker"] = ["scanner"]
    (renamed / "model.json").write_text(json.dumps(meta))
    mk2 = synthesize(raw, renamed, tmp_path / "markers2.nii.gz", progress_bar=False, first_onset="markers")
    assert json.loads(mk2.with_name("markers2.json").read_text())["VolumeGrid"]["anchor"] == "marker 'R128'"
    bare = raw.copy().set_annotations(None)
    with pytest.raises(Eeg2fmriInputError, match=r"first_onset='markers' but none of the scanner markers \['scanner', 'R128'.*annotations present: \[\]"):
        synthesize(bare, renamed, tmp_path / "x.nii.gz", progress_bar=False, first_onset="markers")
    with pytest.raises(Eeg2fmriInputError, match=r"first_onset='markers' but none of the scanner markers \['R128'.*annotations present: \[\]"):
        synthesize(bare, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset="markers")
    with pytest.raises(Eeg2fmriInputError, match=r"expected first_onset to be a time in seconds or 'markers', got 'marker'"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset="marker")
    with pytest.raises(Eeg2fmriInputError, match=r"expected first_onset >= 0 \(seconds from the first EEG sample\) or 'markers', got -1"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset=-1)
    with pytest.raises(Eeg2fmriInputError, match=r"first_onset=10000 s lies after the recording's end"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset=1e4)
    assert main(["synthesize", str(tiny_bids / EEG_NAME), "--model", str(ridge_dir), "--out", str(tmp_path / "cli.nii.gz"),
                 "--first-onset", "markers", "-q"]) == 0
    assert json.loads((tmp_path / "cli.json").read_text())["VolumeGrid"]["anchor"] == "marker 'R128'"


def test_marker_volumes_map_output_to_scan(tiny_bids, ridge_dir, tmp_path, caplog, capsys):
    """With --first-onset markers the sidecar says which output volumes the first and last scanner marker are and how
    many lie outside the marked span; --volumes markers keeps only the marked ones (the measured run's volumes)."""
    import logging

    from eeg2fmri.io.sync import marker_times

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    sf = raw.info["sfreq"]
    _, times = marker_times(raw, ("R128",))
    # the scan starts 10 volumes into the recording (the markers of the first 10 removed): EEG before and after it
    late = raw.copy().set_annotations(mne.Annotations(times[10:], 0.0, ["R128"] * (len(times) - 10)))
    t = times[10:]
    full = synthesize(late, ridge_dir, tmp_path / "all.nii.gz", progress_bar=False, first_onset="markers")
    g = json.loads(full.with_name("all.json").read_text())["VolumeGrid"]
    n_all = nib.load(full).shape[3]
    a, b = g["marker_volumes"]
    assert g["n_markers"] == len(t) and b - a == len(t) - 1 and 0 < a <= b < n_all
    assert g["volumes_before_first_marker"] == a and g["volumes_after_last_marker"] == n_all - 1 - b
    only = synthesize(late, ridge_dir, tmp_path / "only.nii.gz", progress_bar=False, first_onset="markers", volumes="markers")
    side = json.loads(only.with_name("only.json").read_text())
    assert nib.load(only).shape[3] == len(t) and side["StartTime"] == pytest.approx(t[0], abs=1 / sf)
    assert side["VolumeGrid"]["marker_volumes"] == [0, len(t) - 1] and side["VolumeGrid"]["first_volume"] == 0
    np.testing.assert_array_equal(np.asarray(nib.load(only).dataobj), np.asarray(nib.load(full).dataobj)[..., a : b + 1])
    # the recording as simulated: its first markers come before the first complete EEG window and get no volume (warned)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        cut = synthesize(raw, ridge_dir, tmp_path / "early.nii.gz", progress_bar=False, first_onset="markers", volumes="markers")
    g = json.loads(cut.with_name("early.json").read_text())["VolumeGrid"]
    n_cut = nib.load(cut).shape[3]
    assert g["marker_volumes"] == [-g["markers_without_volume"], n_cut - 1] and g["markers_without_volume"] > 0
    assert n_cut == len(times) - g["markers_without_volume"] and g["volumes_before_first_marker"] == g["volumes_after_last_marker"] == 0
    assert "scanner marker(s) come before the first volume whose whole EEG window lies in the recording" in caplog.text
    start = json.loads(cut.with_name("early.json").read_text())["StartTime"]  # (user test 14: the message gave the earliest possible start)
    # (user test 30: "no volume starts before" the earliest possible time contradicted the marker time after the grid's rounding)
    assert (f"needs 18.0 s of EEG up to the end of a volume's acquisition; on the markers' grid the first volume with a whole window "
            f"starts at {start:.2f} s; the first marker with a volume is at {start:.2f} s)") in caplog.text
    # a finer output grid (--tr half the scan's): counts in markers, not output steps (user test 15: 299 "missing", 25 early)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        fine = synthesize(raw, ridge_dir, tmp_path / "fine.nii.gz", progress_bar=False, first_onset="markers", volumes="markers", tr=1.0)
    gf = json.loads(fine.with_name("fine.json").read_text())["VolumeGrid"]
    assert "markers_missing" not in gf and "scanner marker(s) missing" not in caplog.text
    assert gf["markers_without_volume"] == g["markers_without_volume"] and gf["volumes_per_marker"] == 2
    assert f"the first {g['markers_without_volume']} scanner marker(s) come before the first volume" in caplog.text
    assert "only the first lines up with a marker" not in caplog.text  # two volumes per marker stay on the scan (review)
    a_f, b_f = gf["marker_volumes"]  # marker k is output volume a_f + 2 k; the last marker's is the last volume written
    assert b_f - a_f == 2 * (len(times) - 1) and nib.load(fine).shape[3] == b_f + 1 and 2 * (n_cut - 1) + 1 <= b_f + 1 <= 2 * n_cut
    # a marker interval that is no whole number of output volumes (markers every 1.25 s, --tr 0.5): no formula, no markers
    # "missing" (a review: 18 counted, and "marker k is output volume 2k - a" printed)
    n_odd = int((raw.times[-1] - times[0]) / 1.25)
    odd_raw = raw.copy().set_annotations(mne.Annotations(times[0] + 1.25 * np.arange(n_odd), 0.0, ["R128"] * n_odd))
    odd_raw.save(tmp_path / "odd_raw.fif", verbose=False)
    odd = synthesize(tmp_path / "odd_raw.fif", ridge_dir, tmp_path / "odd.nii.gz", progress_bar=False, first_onset="markers", tr=0.5)
    go = json.loads(odd.with_name("odd.json").read_text())["VolumeGrid"]
    assert "markers_missing" not in go and go["volumes_per_marker"] == 2.5
    capsys.readouterr()
    assert main(["synthesize", str(tmp_path / "odd_raw.fif"), "--model", str(ridge_dir), "--out", str(tmp_path / "odd_cli.nii.gz"),
                 "--first-onset", "markers", "--volumes", "markers", "--tr", "0.5", "-q"]) == 0
    assert "a marker every 2.5 output volumes, so they do not line up one to one" in capsys.readouterr().out
    # without --volumes markers the same (user test 32: "marker k is measured volume k" was printed)
    assert main(["synthesize", str(tmp_path / "odd_raw.fif"), "--model", str(ridge_dir), "--out", str(tmp_path / "odd_all.nii.gz"),
                 "--first-onset", "markers", "--tr", "0.5", "-q"]) == 0
    out = capsys.readouterr().out
    assert "a marker every 2.5 output volumes: markers and output volumes do not line up one to one" in out
    assert "marker k is measured volume" not in out
    with pytest.raises(Eeg2fmriInputError, match=r"volumes='markers' needs first_onset='markers' \(--first-onset markers\)"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset=0, volumes="markers")
    with pytest.raises(Eeg2fmriInputError, match=r"expected volumes 'all' or 'markers', got 'marked'"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset="markers", volumes="marked")
    capsys.readouterr()
    assert main(["synthesize", str(tiny_bids / EEG_NAME), "--model", str(ridge_dir), "--out", str(tmp_path / "cli.nii.gz"),
                 "--first-onset", "markers", "--volumes", "markers", "-q"]) == 0
    printed = capsys.readouterr().out
    k = g["markers_without_volume"]
    assert (f"scanner markers ({len(times)}): only their volumes written; output volume j is measured volume j + {k} if the scan had "
            "no dummy volumes and the recording began before its first volume: else pass --dummy-scans N (N = markers - volumes) or "
            f"--first-marker-volume N; the first {k} marker(s) have no volume") in printed
    cli_side = json.loads((tmp_path / "cli.json").read_text())
    assert cli_side["VolumeGrid"]["measured_volumes"][0] == k
    # the shift that times the scan's events.tsv from this file's volume 0 (user test 23: a GLM with the events as found
    # found nothing), and the warning against reading a GLM's statistics on a prediction
    assert cli_side["VolumeGrid"]["events_shift_s"] == pytest.approx(-k * cli_side["RepetitionTime"])
    assert cli_side["StatisticalUse"].startswith("a prediction, not a measurement") and "signal_scaling=False" in cli_side["StatisticalUse"]
    # a recording cut after the scan began (a preprocessed segment; user test 17: ds002336 eeg_pp starts after volume 0):
    # its first marker is measured volume N, so every output volume is N volumes later in the measured run
    assert main(["synthesize", str(tiny_bids / EEG_NAME), "--model", str(ridge_dir), "--out", str(tmp_path / "cut.nii.gz"),
                 "--first-onset", "markers", "--volumes", "markers", "--first-marker-volume", "2", "-q"]) == 0
    assert f"output volume j is measured volume j + {k + 2} (--first-marker-volume)" in capsys.readouterr().out
    cut_grid = json.loads((tmp_path / "cut.json").read_text())["VolumeGrid"]
    assert cut_grid["first_marker_volume"] == 2 and cut_grid["first_marker_volume_source"] == "given"
    assert cut_grid["measured_volumes"] == [k + 2, k + 2 + nib.load(tmp_path / "cut.nii.gz").shape[3] - 1]
    np.testing.assert_array_equal(np.asarray(nib.load(tmp_path / "cut.nii.gz").dataobj), np.asarray(nib.load(tmp_path / "cli.nii.gz").dataobj))
    all_vols = synthesize(raw, ridge_dir, tmp_path / "cut_all.nii.gz", progress_bar=False, first_onset="markers", first_marker_volume=2)
    g_all = json.loads(all_vols.with_name("cut_all.json").read_text())["VolumeGrid"]
    assert g_all["measured_volumes"][0] == 2 - g_all["marker_volumes"][0]
    with pytest.raises(Eeg2fmriInputError, match=r"first_marker_volume=1 numbers the scanner markers, so it needs first_onset='markers'"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset=0, first_marker_volume=1)
    with pytest.raises(Eeg2fmriInputError, match=r"expected first_marker_volume to be a whole number >= 0, got -1"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset="markers", first_marker_volume=-1)
    # dummy scans: the first 10 markers of the full recording belong to volumes the scanner did not save; dropping them
    # anchors the grid on the first saved volume: the same output as the recording without those markers (user test:
    # output volume j was measured volume j + 2 with 3 dummy scans)
    dummy = synthesize(raw, ridge_dir, tmp_path / "dummy.nii.gz", progress_bar=False, first_onset="markers", volumes="markers", dummy_scans=10)
    np.testing.assert_array_equal(np.asarray(nib.load(dummy).dataobj), np.asarray(nib.load(only).dataobj))
    assert "after 10 dummy scans" in json.loads(dummy.with_name("dummy.json").read_text())["VolumeGrid"]["anchor"]
    assert main(["synthesize", str(tiny_bids / EEG_NAME), "--model", str(ridge_dir), "--out", str(tmp_path / "cli2.nii.gz"),
                 "--first-onset", "markers", "--volumes", "markers", "--dummy-scans", "10", "-q"]) == 0
    assert "output volume j is measured volume j (the first 10 dummy-scan marker(s) dropped)" in capsys.readouterr().out
    # a marker lost in the middle of the scan: the same volumes (regular grid), the gap reported in the sidecar and printed
    holed = late.copy().set_annotations(mne.Annotations(np.delete(t, 7), 0.0, ["R128"] * (len(t) - 1)))
    fif = tmp_path / "holed_raw.fif"
    holed.save(fif, verbose=False)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        gap = synthesize(fif, ridge_dir, tmp_path / "gap.nii.gz", progress_bar=False, first_onset="markers", volumes="markers")
    late.save(tmp_path / "late_raw.fif", verbose=False)  # (the same float32 storage as the holed file)
    ref = synthesize(tmp_path / "late_raw.fif", ridge_dir, tmp_path / "ref.nii.gz", progress_bar=False, first_onset="markers", volumes="markers")
    np.testing.assert_array_equal(np.asarray(nib.load(gap).dataobj), np.asarray(nib.load(ref).dataobj))
    assert json.loads(gap.with_name("gap.json").read_text())["VolumeGrid"]["markers_missing"] == 1
    assert "1 scanner marker(s) missing between the first and the last" in caplog.text
    capsys.readouterr()
    assert main(["synthesize", str(fif), "--model", str(ridge_dir), "--out", str(tmp_path / "gap_cli.nii.gz"), "--first-onset", "markers",
                 "--volumes", "markers", "-q"]) == 0
    assert "1 marker(s) missing between the first and the last: their volumes are on the regular grid" in capsys.readouterr().out
    with pytest.raises(Eeg2fmriInputError, match=r"dummy_scans=3 drops scanner markers, so it needs first_onset='markers'"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset=0, dummy_scans=3)
    with pytest.raises(Eeg2fmriInputError, match=rf"dummy_scans={len(times)} but the recording has only {len(times)} 'R128' marker"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset="markers", dummy_scans=len(times))
    with pytest.raises(Eeg2fmriInputError, match=r"expected dummy_scans to be a whole number >= 0, got -1"):
        synthesize(raw, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, first_onset="markers", dummy_scans=-1)


def test_synthesis_killed_outright_is_cleaned_up_by_the_next_run(tiny_bids, ridge_dir, tmp_path):
    """SIGKILL in the middle of a synthesis (what the out-of-memory killer does) leaves its hidden temporaries (the
    features' folder, the NIfTI being written); the next synthesis to that output removes them."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "out" / "bold.nii.gz"
    out.parent.mkdir()
    code = (
        "import importlib, time\n"
        "s = importlib.import_module('eeg2fmri.synthesis.synthesize')\n"
        "orig = s.predict_windows\n"
        "def slow(*a, **k):\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(120)\n"
        "s.predict_windows = slow\n"
        f"s.synthesize({str(tiny_bids / EEG_NAME)!r}, {str(ridge_dir)!r}, {str(out)!r}, progress_bar=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"  # the features are computed, the NIfTI is open
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    left = sorted(p.name for p in out.parent.iterdir())
    assert not out.exists() and len(left) >= 2 and all(n.startswith(".bold.") for n in left), left
    synthesize(tiny_bids / EEG_NAME, ridge_dir, out, progress_bar=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["bold.json", "bold.nii.gz"]


def test_volumes_computed_from_eeg_marked_bad_are_listed(tiny_bids, ridge_dir, tmp_path, caplog):
    """A BAD_motion span in the recording: the volumes whose EEG window overlaps it are named in the sidecar (recording
    times, also with the grid moved by first_onset) and in a warning; the output itself is unchanged."""
    import logging

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    marked = raw.copy()
    marked.annotations.append(40.0 + raw.first_time if raw.annotations.orig_time is not None else 40.0, 10.0, "BAD_motion")
    base = synthesize(raw, ridge_dir, tmp_path / "base.nii.gz", progress_bar=False, first_onset=7.3)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        out = synthesize(marked, ridge_dir, tmp_path / "bad.nii.gz", progress_bar=False, first_onset=7.3)
    side = json.loads(out.with_name("bad.json").read_text())
    np.testing.assert_allclose(side["EEGSpansMarkedBad"], [[40.0, 50.0]], atol=0.02)
    n = nib.load(out).shape[3]
    end = side["StartTime"] + np.arange(n) * 2.0 + 2.0  # each volume's window: the 18 s of EEG up to the end of its acquisition
    expected = np.flatnonzero((end - 18.0 < 50.0) & (end > 40.0)).tolist()
    assert side["VolumesOverBadEEG"] == expected and len(expected) >= 9
    assert any(f"{len(expected)} of {n} output volumes are computed from EEG the recording marks bad" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), np.asarray(nib.load(base).dataobj))
    assert json.loads(base.with_name("base.json").read_text())["VolumesOverBadEEG"] == []


def test_space_code_is_kept_from_bold_to_synthesis(tiny_bids, tiny_prepared, tmp_path):
    """BOLD in scanner space (sform code 1, as a scanner writes it; the simulator writes 4, MNI, its grid being
    MNI152's): the prepared mask, the model's mask and the synthesised image keep the input's code, not 'aligned' (2)."""
    import shutil

    from eeg2fmri.datasets import load_prepared, prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.io.bold import xform_code
    from eeg2fmri.models import save_model
    from eeg2fmri.training import fit_model

    root = tmp_path / "bids"
    shutil.copytree(tiny_bids, root)
    for path in root.glob("sub-*/func/*_bold.nii.gz"):
        img = nib.load(path)
        img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
        img.set_sform(img.affine, code=1)
        img.set_qform(img.affine, code=1)
        nib.save(img, path)
    assert xform_code(nib.load(path)) == 1 and tiny_prepared.xform_code == 4 and tiny_prepared.space == "mni"
    ds = load_prepared(prepare_dataset(root, progress_bar=False).save(tmp_path / "prepared"))
    assert ds.xform_code == 1 and xform_code(nib.load(tmp_path / "prepared" / "mask.nii.gz")) == 1 and ds.space == "native"
    assert nib.load(tmp_path / "prepared" / "mask.nii.gz").header.get_xyzt_units()[0] == "mm"
    sp = make_split(ds, "within")
    fitted = fit_model(ds, sp, "ridge_hrf", targets=split_targets(ds, sp))
    model = save_model(fitted.model, tmp_path / "model", spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=ds.mask,
                       affine=ds.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=ds.config.to_dict(), xform_code=ds.xform_code)
    out = synthesize(root / EEG_NAME, model, tmp_path / "bold.nii.gz", progress_bar=False)
    img = nib.load(out)
    assert int(img.header["sform_code"]) == int(img.header["qform_code"]) == 1
    np.testing.assert_allclose(img.affine, ds.affine)


def test_roi_targets_train_evaluate_and_synthesize_region_series(tiny_bids, tiny_prepared, tmp_path):
    """An atlas of 3 ROIs: models get 3 outputs (they were given the mask's voxel count and crashed), evaluation skips
    the volume metrics, and synthesis writes the region series (NAME_rois.tsv) and paints them on their ROIs' voxels."""
    from eeg2fmri.datasets import load_prepared, prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.protocol import evaluate_split
    from eeg2fmri.models import save_model
    from eeg2fmri.training import fit_model

    labels = np.zeros(tiny_prepared.mask.shape, np.int16)
    xs = np.nonzero(tiny_prepared.mask)[0]
    cuts = np.quantile(xs, [1 / 3, 2 / 3])
    for i, j, k in np.argwhere(tiny_prepared.mask):
        labels[i, j, k] = 1 + int(i > cuts[0]) + int(i > cuts[1])
    atlas = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, tiny_prepared.affine), atlas)
    ds = load_prepared(prepare_dataset(tiny_bids, {"atlas": str(atlas)}, progress_bar=False).save(tmp_path / "prepared"))
    assert ds.n_outputs == 3 and ds.runs[0].bold.shape[1] == 3
    sp = make_split(ds, "within")
    targets = split_targets(ds, sp)
    fitted = fit_model(ds, sp, "ridge_hrf", targets=targets)
    assert fitted.spec.output_shape == (3,)
    res = evaluate_split(ds, sp, targets, fitted.model, n_boot=0)
    assert np.isfinite(res["summary"]["model_median_r"]) and np.isnan(res["summary"]["model_ssim"])
    # the reports name what the outputs are (user test 14: "median voxel r in the brain mask" on 3 ROI outputs)
    from eeg2fmri.plotting.report import evaluation_markdown

    assert res["settings"]["targets"] == "3 ROIs"
    # each ROI scored by name, as region tables are (user test 26: only tables got the per-ROI table)
    assert res["settings"]["roi_names"] == {str(i + 1): str(nm) for i, nm in enumerate(ds.rois["names"])}
    assert all(sorted(v["models"]["ridge_hrf"]["roi_r"]) == ["1", "2", "3"] for v in res["per_subject"].values())
    lab_in = labels[tiny_prepared.mask]
    assert res["settings"]["roi_voxels"] == {str(i + 1): int((lab_in == v).sum()) for i, v in enumerate(ds.rois["labels"])}
    assert "median r of" in evaluation_markdown(res, [], title="t") and "per-subject median over the 3 ROIs the data were prepared on" in (
        evaluation_markdown(res, [], title="t"))
    sp_v = make_split(tiny_prepared, "within")
    tg_v = split_targets(tiny_prepared, sp_v)
    on_voxels = evaluate_split(tiny_prepared, sp_v, tg_v, fit_model(tiny_prepared, sp_v, "ridge_hrf", targets=tg_v).model, n_boot=0)
    assert on_voxels["settings"]["targets"] == "voxels" and "median voxel-wise r of" in evaluation_markdown(on_voxels, [], title="t")
    model = save_model(fitted.model, tmp_path / "model", spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=ds.mask,
                       affine=ds.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=ds.config.to_dict(), rois=ds.rois)
    out = synthesize(tiny_bids / EEG_NAME, model, tmp_path / "bold.nii.gz", progress_bar=False)
    side = json.loads(out.with_name("bold.json").read_text())
    assert side["RoiFile"] == "bold_rois.tsv" and side["Targets"].startswith("3 ROIs of the training atlas")
    rows = [line.split("\t") for line in (tmp_path / "bold_rois.tsv").read_text().splitlines()]
    assert rows[0] == ["onset", *ds.rois["names"]]
    series = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    vol = np.asarray(nib.load(out).dataobj)
    assert series.shape == (vol.shape[3], 3)
    for roi in (1, 2, 3):  # every voxel of a ROI shows that ROI's series
        col = ds.rois["labels"].index(roi)
        np.testing.assert_allclose(vol[labels == roi], np.broadcast_to(series[:, col], ((labels == roi).sum(), len(series))), rtol=1e-5, atol=1e-6)
    assert "ValidationR" not in side  # (no calibration in the folder)
    # with the calibration train writes: which ROIs the model predicts above chance on validation (user test 18)
    from eeg2fmri.evaluation.uncertainty import calibrate_uncertainty
    from eeg2fmri.models.calibration import save_calibration

    cal = calibrate_uncertainty(fitted.model, ds, sp, targets)
    save_calibration(model, cal)
    out2 = synthesize(tiny_bids / EEG_NAME, model, tmp_path / "bold2.nii.gz", progress_bar=False, uncertainty=False)
    val = json.loads(out2.with_name("bold2.json").read_text())["ValidationR"]
    assert val["n_outputs"] == 3 and val["outputs_above_null"] == int(np.sum(cal["val_r"] > cal["val_r_null95"]))
    assert [v["r"] for v in val["rois"].values()] == [round(float(x), 4) for x in cal["val_r"]]
    assert list(val["rois"]) == [str(n) for n in ds.rois["names"]]
    assert "earlier_level" not in val
    # a calibration written before session 28 (no val_r_null tag: far shifts only) is named as such
    cal_json = model / "calibration.json"
    meta = json.loads(cal_json.read_text())
    del meta["val_r_null"]
    cal_json.write_text(json.dumps(meta))
    out4 = synthesize(tiny_bids / EEG_NAME, model, tmp_path / "bold4.nii.gz", progress_bar=False, uncertainty=False)
    assert "passes about 10 % of unpredictable outputs" in json.loads(out4.with_name("bold4.json").read_text())["ValidationR"]["earlier_level"]
    with pytest.raises(Eeg2fmriInputError, match=r"the model's outputs are already the ROIs of its own atlas .*: drop the atlas"):
        synthesize(tiny_bids / EEG_NAME, model, tmp_path / "bold3.nii.gz", progress_bar=False, atlas=atlas)


def test_marker_grid_of_another_tr_is_warned(tiny_bids, ridge_dir, tmp_path, caplog):
    """--first-onset markers with an output TR whose grid drifts off the markers' spacing: only the first volume lines up
    with a marker; the warning gives the --tr that would match (none when they agree or a whole number of volumes fits
    between markers)."""
    import logging

    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "same.nii.gz", progress_bar=False, first_onset="markers")
    assert not any("markers come every" in r.getMessage() or "timed from its first sample" in r.getMessage() for r in caplog.records)
    # without --first-onset, a recording with scanner markers is timed by them (user test 48: by the first sample, a held-out
    # run's synthesis was 0.18 s off its volumes; user test 30 had asked for a warning), said at info level; --first-onset 0
    # keeps the first sample
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        default = synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "default.nii.gz", progress_bar=False)
    assert any(re.search(r"the recording has \d+ 'R128' scanner markers: the output's volumes are timed by them \(pass --first-onset 0 ",
                         r.getMessage()) for r in caplog.records)
    grid = json.loads(default.with_name("default.json").read_text())["VolumeGrid"]
    same = json.loads((tmp_path / "same.json").read_text())["VolumeGrid"]
    assert grid["anchor"] == "marker 'R128'" and grid == same
    sample0 = synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "sample0.nii.gz", progress_bar=False, first_onset=0)
    assert json.loads(sample0.with_name("sample0.json").read_text())["VolumeGrid"]["anchor"] == "first EEG sample"
    caplog.clear()
    # half the markers' interval: every second volume is a marker's, the grid stays on the scan (no warning since session 25)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "tr1.nii.gz", progress_bar=False, first_onset="markers", tr=1.0)
    assert not any("markers come every" in r.getMessage() for r in caplog.records)
    # markers every 1.25 s, volumes every 2 s: the grid drifts off the markers
    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    n = int((raw.times[-1] - 20.0) / 1.25)
    raw.set_annotations(mne.Annotations(20.0 + 1.25 * np.arange(n), 0.0, ["R128"] * n))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(raw, ridge_dir, tmp_path / "drift.nii.gz", progress_bar=False, first_onset="markers")
    # (user test 30: --tr 1.25 was advised and then refused: the model writes only steps that divide its frame length)
    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.models import load_model

    lm = load_model(ridge_dir)
    flen = lm.spec.tr / PrepareConfig.from_dict(lm.meta["prepare"]).frames_per_tr
    assert any("markers come every 1.250 s, but the output's volumes every 2 s" in r.getMessage()
               and f"the model writes only steps that divide its frame length ({flen:g} s), so the output cannot follow this scan's 1.25 s"
               in r.getMessage() and "prepare option resample_tr" in r.getMessage() for r in caplog.records)
    caplog.clear()
    step = flen / 2  # a step it can write: advised, and taken
    n = int((raw.times[-1] - 20.0) / step)
    raw.set_annotations(mne.Annotations(20.0 + step * np.arange(n), 0.0, ["R128"] * n))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(raw, ridge_dir, tmp_path / "drift2.nii.gz", progress_bar=False, first_onset="markers")
    assert any(f"pass --tr {step:.3g} for one volume per marker" in r.getMessage() for r in caplog.records)
    synthesize(raw, ridge_dir, tmp_path / "drift3.nii.gz", progress_bar=False, first_onset="markers", tr=step)


def test_line_frequency_other_than_the_models_notch_is_warned(tiny_bids, ridge_dir, tmp_path, caplog):
    """The model's training runs were notched at 45 Hz and the recording declares 50 Hz: synthesis filters as training
    did, says so, and records the notch in the sidecar."""
    import logging
    import shutil

    model = tmp_path / "model60"
    shutil.copytree(ridge_dir, model)
    meta = json.loads((model / "model.json").read_text())
    meta["prepare"]["notch"] = 45.0  # below the 100 Hz recording's Nyquist (the tiny data are sampled at 100 Hz)
    (model / "model.json").write_text(json.dumps(meta))
    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    raw.info["line_freq"] = 50.0
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        out = synthesize(raw, model, tmp_path / "b.nii.gz", progress_bar=False)
    assert any("declares a 50 Hz power line, but the model's training runs were notched at 45 Hz" in r.getMessage() for r in caplog.records)
    assert json.loads(out.with_name("b.json").read_text())["NotchFrequency"] == 45.0


def test_training_notches_recorded_and_a_recording_without_line_frequency_is_warned(tiny_bids, tiny_prepared, ridge_dir, tmp_path, caplog):
    """User test 54 #6: training runs notched at two line frequencies leave prepare.notch empty; a recording declaring no
    line frequency is then left unnotched, which a warning says, and ``notch=`` gives it (0: none, silenced)."""
    import logging
    import shutil

    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training import fit_model, save_fit

    sp = make_split(tiny_prepared, "within")
    folder = save_fit(fit_model(tiny_prepared, sp, "mean"), tmp_path / "saved")
    used = {p.get("notch_hz") for p in tiny_prepared.provenance["inputs"].values()}
    # every training run counted by its notch (a saved model keeps them: model.json training_notch_hz)
    assert json.loads((folder / "model.json").read_text())["training_notch_hz"] == {
        ("none" if hz is None else f"{hz:g}"): sum(p.get("notch_hz") == hz for p in tiny_prepared.provenance["inputs"].values()) for hz in used}
    model = tmp_path / "mixed"
    shutil.copytree(ridge_dir, model)
    meta = json.loads((model / "model.json").read_text())
    meta["prepare"]["notch"] = None
    meta["training_notch_hz"] = {"20": 2, "30": 1}  # below the tiny recording's 50 Hz Nyquist
    (model / "model.json").write_text(json.dumps(meta))
    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    raw.info["line_freq"] = None
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        plain = synthesize(raw, model, tmp_path / "plain.nii.gz", progress_bar=False)
    assert any("declares no power-line frequency" in r.getMessage() and "(20 Hz in 2 run(s); 30 Hz in 1 run(s))" in r.getMessage()
               and "--notch 50" in r.getMessage() for r in caplog.records)
    assert json.loads(plain.with_name("plain.json").read_text())["NotchFrequency"] is None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        given = synthesize(raw, model, tmp_path / "given.nii.gz", progress_bar=False, notch=20)
        off = synthesize(raw, model, tmp_path / "off.nii.gz", progress_bar=False, notch=0)
    assert not any("power-line" in r.getMessage() for r in caplog.records)
    assert json.loads(given.with_name("given.json").read_text())["NotchFrequency"] == 20.0
    assert json.loads(off.with_name("off.json").read_text())["NotchFrequency"] is None
    a, b, c = (np.asarray(nib.load(p).dataobj) for p in (plain, given, off))
    assert np.array_equal(a, c) and not np.allclose(a, b)  # notch=0 is the unnotched output; 20 Hz changed the features
    # a notch given overrides the model's own (45 Hz here), and the recording's declared line does not warn then
    meta["prepare"]["notch"] = 45.0
    (model / "model.json").write_text(json.dumps(meta))
    raw.info["line_freq"] = 50.0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        over = synthesize(raw, model, tmp_path / "over.nii.gz", progress_bar=False, notch=20.0)
    assert json.loads(over.with_name("over.json").read_text())["NotchFrequency"] == 20.0
    assert not any("power line" in r.getMessage() for r in caplog.records)
    # a training notch the work rate never filtered (a line at or above its Nyquist frequency - 1 Hz) is not claimed
    meta["prepare"]["notch"] = None
    meta["training_notch_hz"] = {"50": 2}  # the tiny recordings' work rate is 100 Hz: nothing was notched at 50 Hz
    (model / "model.json").write_text(json.dumps(meta))
    raw.info["line_freq"] = None
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        synthesize(raw, model, tmp_path / "nyq.nii.gz", progress_bar=False)
    assert not any("power-line" in r.getMessage() for r in caplog.records)
    for bad in (-50, "fifty", float("nan"), True, 0.5, 2):  # (a 2 Hz notch takes out every band; 0.5 Hz failed inside MNE)
        with pytest.raises(Eeg2fmriInputError, match=r"expected notch to be the power-line frequency in Hz \(50 or 60\) or 0 for no notch, got"):
            synthesize(raw, model, tmp_path / "bad.nii.gz", progress_bar=False, notch=bad)


def test_misspelt_montage_is_refused_even_when_channels_match_by_name(tiny_bids, ridge_dir, tmp_path):
    with pytest.raises(Eeg2fmriInputError, match=r"channel_positions='biosemi65': expected 'file' or an MNE standard montage.*'biosemi64'"):
        synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "m.nii.gz", progress_bar=False, channel_positions="biosemi65")
    assert not (tmp_path / "m.nii.gz").exists()


@pytest.mark.parametrize(("t0", "tr", "sf"), [(16.2, 1.8, 512.0), (9.0, 1.8, 512.0), (7.3, 2.0, 250.0), (0.7, 0.7, 1000.0), (4.41, 2.2, 500.0),
                                              (3.5999, 1.8, 1000.0), (123.456, 2.5, 256.0)])
def test_grid_offset_equals_exact_rational_arithmetic(t0, tr, sf):
    """The first volume of the grid through first_onset: t0 minus whole TRs, rounded to a sample, computed exactly with
    fractions.Fraction on the decimal values (user test: 16.2 s with TR 1.8 s gave 1.8 s, one TR late, from the float
    remainder 16.2 % 1.8 = 1.7999...)."""
    from fractions import Fraction

    from eeg2fmri.synthesis.synthesize import _grid_offset

    t, T, f = Fraction(str(t0)), Fraction(str(tr)), Fraction(str(sf))
    n = round((t - (t // T) * T) * f)
    expected = 0.0 if n >= round(T * f) else float(n / f)
    assert _grid_offset(t0, tr, sf) == pytest.approx(expected, abs=1e-12)


def test_a_recording_with_uncorrected_gradient_artefacts_is_refused(tiny_bids, tiny_prepared, ridge_dir, tmp_path):
    """User test 17: raw in-scanner EEG (gradient artefacts not removed) synthesised for a model trained on clean EEG gave
    noise without a word. synthesize runs prepare's gradient-artefact check on the channels the model reads and refuses
    such a recording with the fixes; check_artifacts=False (--no-artifact-check) writes it; a clean recording records the
    check in the sidecar."""
    from eeg2fmri.preprocessing.artifacts import check_gradient_artifacts

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    tr = float(json.loads((tiny_bids / EEG_NAME).parent.parent.joinpath("func").glob("*_bold.json").__next__().read_text())["RepetitionTime"])
    eeg = [c for c, t in zip(raw.ch_names, raw.get_channel_types()) if t == "eeg"]
    per = int(round(tr * raw.info["sfreq"]))
    wave = np.tile(np.random.default_rng(0).standard_normal(per), raw.n_times // per + 1)[: raw.n_times]  # periodic in the TR
    dirty = raw.copy()
    dirty._data[[dirty.ch_names.index(c) for c in eeg]] += 200e-6 * wave / np.abs(wave).max()  # lines at every multiple of 1 / TR
    with pytest.warns(UserWarning, match="uncorrected for MRI gradient artifacts"):
        assert check_gradient_artifacts(dirty.copy().pick(eeg), tr=tr)["detected"]
    with pytest.raises(Eeg2fmriInputError, match=r"EEG \(Raw object\): strong periodic power at multiples of [\d.]+ Hz .* the recording looks "
                                                 r"uncorrected for MRI gradient artefacts, and the model does not record such artefacts in its training EEG, "
                                                 r"so its predictions would be noise\. Clean it first -- `eeg2fmri clean REC --out cleaned\.fif` .*"
                                                 r"\(--no-artifact-check\)"):
        synthesize(dirty, ridge_dir, tmp_path / "dirty.nii.gz", progress_bar=False)
    assert not (tmp_path / "dirty.nii.gz").exists()
    out = synthesize(dirty, ridge_dir, tmp_path / "dirty.nii.gz", progress_bar=False, check_artifacts=False)
    assert "GradientArtifactCheck" not in json.loads(out.with_name("dirty.json").read_text())
    clean = synthesize(raw, ridge_dir, tmp_path / "clean.nii.gz", progress_bar=False)
    check = json.loads(clean.with_name("clean.json").read_text())["GradientArtifactCheck"]
    assert check["detected"] is False and check["peak_ratio"] < check["threshold"]
    # channels matched by name whatever their type (here typed misc) are checked too (review: refused as "no EEG channels")
    misc = raw.copy().set_channel_types({c: "misc" for c in eeg}, on_unit_change="ignore")
    synthesize(misc, ridge_dir, tmp_path / "misc.nii.gz", progress_bar=False)
    # save_fit records prepare's check of the training runs; a model whose own training runs had the artefacts gets a
    # warning, not a refusal (review: a model trained on raw ds002336 EEG could not synthesise raw EEG)
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.training import fit_model, save_fit

    sp = make_split(tiny_prepared, "within")
    recorded = save_fit(fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "canonical"}), tmp_path / "recorded")
    meta = json.loads((recorded / "model.json").read_text())
    assert meta["training_gradient_artifacts"] == {"runs": 2, "detected": 0}
    with pytest.raises(Eeg2fmriInputError, match=r"and the model's 2 training run\(s\) passed this check, so its predictions would be noise"):
        synthesize(dirty, recorded, tmp_path / "dirty2.nii.gz", progress_bar=False)
    meta["training_gradient_artifacts"] = {"runs": 2, "detected": 2}
    (recorded / "model.json").write_text(json.dumps(meta))
    synthesize(dirty, recorded, tmp_path / "dirty2.nii.gz", progress_bar=False)


def test_measured_volumes_of_a_recording_cut_after_the_scan_began(tiny_bids, ridge_dir, tmp_path, monkeypatch):
    """A recording cut after the scan began (a preprocessed segment; user test 17 p2): with first_marker_volume N, output
    volume j of the cut file is the measured volume the sidecar names, i.e. the same volume of the full recording."""
    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    full = synthesize(raw, ridge_dir, tmp_path / "full.nii.gz", progress_bar=False, first_onset="markers")
    g_full = json.loads(full.with_name("full.json").read_text())["VolumeGrid"]
    assert g_full["first_marker_volume"] == 0 and g_full["first_marker_volume_source"].startswith("assumed: no layout places this recording")
    on = np.array([a["onset"] for a in raw.annotations if a["description"].endswith("R128")]) - raw.first_time
    n = 30
    cut = raw.copy().crop(tmin=float(on[n]) - 0.35)
    out = synthesize(cut, ridge_dir, tmp_path / "cut.nii.gz", progress_bar=False, first_onset="markers", first_marker_volume=n)
    g_cut = json.loads(out.with_name("cut.json").read_text())["VolumeGrid"]
    a = np.asarray(nib.load(full).dataobj).reshape(-1, nib.load(full).shape[3])
    b = np.asarray(nib.load(out).dataobj).reshape(-1, nib.load(out).shape[3])
    inside = a.std(1) > 0
    m_full, m_cut = g_full["measured_volumes"][0], g_cut["measured_volumes"][0]
    same, off = [], []
    for j in range(b.shape[1]):
        k = m_cut + j - m_full  # the full recording's output volume of the same measured volume
        if 1 <= k < a.shape[1] - 1:
            same.append(np.corrcoef(a[inside, k], b[inside, j])[0, 1])
            off.append(np.corrcoef(a[inside, k + 1], b[inside, j])[0, 1])
    assert len(same) > 10 and np.min(same) > 0.9 and np.median(same) > np.median(off) + 0.2, (np.min(same), np.median(off))
    # a file a layout places: synthesize takes the layout's N and says where it came from
    import eeg2fmri.io.layouts as layouts

    monkeypatch.setattr(layouts, "segment_marker_volume", lambda path, rec, t: (n, "the test layout places it"))
    auto = synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "auto.nii.gz", progress_bar=False, first_onset="markers")
    g_auto = json.loads(auto.with_name("auto.json").read_text())["VolumeGrid"]
    assert g_auto["first_marker_volume"] == n and g_auto["first_marker_volume_source"] == "the test layout places it"
    assert g_auto["measured_volumes"][0] == g_full["measured_volumes"][0] + n


def test_region_series_of_a_voxel_model_with_an_atlas(tiny_bids, tiny_prepared, ridge_dir, tmp_path):
    """synthesize --atlas on a voxel model (user test 18: parcel series were extracted by hand with nilearn): NAME_rois.tsv
    holds the mean of every ROI's voxels of the written image (checked against nilearn's NiftiLabelsMasker), named from a
    look-up table beside the labels."""
    from nilearn.maskers import NiftiLabelsMasker

    labels = np.zeros(tiny_prepared.mask.shape, np.int16)
    inside = np.argwhere(tiny_prepared.mask)
    cut = np.median(inside[:, 0])
    for i, j, k in inside:
        labels[i, j, k] = 4 if i <= cut else 9
    atlas = tmp_path / "parcels.nii.gz"
    nib.save(nib.Nifti1Image(labels, tiny_prepared.affine), atlas)
    (tmp_path / "parcels.tsv").write_text("index\tname\n4\tleft part\n9\tright part\n")
    out = synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "bold.nii.gz", progress_bar=False, atlas=atlas)
    side = json.loads(out.with_name("bold.json").read_text())
    assert side["RoiFile"] == "bold_rois.tsv" and side["RoiAtlas"]["labels"] == [4, 9]
    rows = [line.split("\t") for line in (tmp_path / "bold_rois.tsv").read_text().splitlines()]
    assert rows[0] == ["onset", "left part", "right part"]
    series = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    theirs = NiftiLabelsMasker(str(atlas), strategy="mean", standardize=None).fit_transform(str(out))
    np.testing.assert_allclose(series, theirs, rtol=1e-4, atol=1e-5)
    with pytest.raises(Eeg2fmriInputError, match=r"atlas: no ROI label inside the brain mask \(all 0\)"):
        synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "x.nii.gz", progress_bar=False, atlas=np.zeros(int(tiny_prepared.mask.sum()), int))
    # with a calibration: how many voxels of every ROI the model predicts above chance on validation (user test 20)
    import shutil

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.uncertainty import calibrate_uncertainty
    from eeg2fmri.models import load_model
    from eeg2fmri.models.calibration import save_calibration

    model = tmp_path / "ridge_cal"
    shutil.copytree(ridge_dir, model)
    sp = make_split(tiny_prepared, "within")
    cal = calibrate_uncertainty(load_model(model).model, tiny_prepared, sp, split_targets(tiny_prepared, sp))
    save_calibration(model, cal)
    out2 = synthesize(tiny_bids / EEG_NAME, model, tmp_path / "bold2.nii.gz", progress_bar=False, atlas=atlas, uncertainty=False)
    rois = json.loads(out2.with_name("bold2.json").read_text())["ValidationR"]["atlas_rois"]
    lab = labels[tiny_prepared.mask]
    above = cal["val_r"] > cal["val_r_null95"]
    # the voxels above chance as a mask on the model's grid (user test 23: a GLM restricted to them found 129 voxels
    # outside the driven regions instead of 2,445)
    side = json.loads(out2.with_name("bold2.json").read_text())
    chance = nib.load(tmp_path / side["AboveChanceMask"]["file"])
    assert side["AboveChanceMask"]["file"] == "bold2_abovechance_mask.nii.gz" and side["AboveChanceMask"]["voxels"] == int(above.sum())
    assert side["AboveChanceMask"]["false_positives"].startswith(f"uncorrected, voxel by voxel: up to about {int(round(0.05 * side['AboveChanceMask']['of']))} of these voxels")
    np.testing.assert_allclose(chance.affine, nib.load(out2).affine)
    got = np.asarray(chance.dataobj)
    assert got.shape == tiny_prepared.mask.shape and got.dtype == np.uint8 and not got[~tiny_prepared.mask].any()
    np.testing.assert_array_equal(got[tiny_prepared.mask].astype(bool), above)
    for name, v in (("left part", 4), ("right part", 9)):
        assert rois[name]["voxels"] == int((lab == v).sum()) and rois[name]["voxels_above_null"] == int(above[lab == v].sum())
        assert rois[name]["median_r"] == pytest.approx(float(np.median(cal["val_r"][lab == v])), abs=1e-4)
        # evidence: a share above 10 % and more voxels than 5 % chance gives (binomial; user test 37: 3 of 22 voxels passed)
        from scipy.stats import binom

        n_v, k_v = rois[name]["voxels"], rois[name]["voxels_above_null"]
        p_v = binom.sf(k_v - 1, n_v, 0.05) if k_v else 1.0
        assert rois[name]["binomial_p"] == pytest.approx(p_v, abs=1e-4)
        # evidence (user test 44: voxels sharing noise wider than the region passed the count): the ROI's mean prediction vs its
        # mean validation target, against that pair's own circular-shift null -- recomputed here from the calibration's series
        assert rois[name]["test"] == "roi_mean"
        sel = lab == v
        yt, yp = cal["val_true"][:, sel].astype(float).mean(1), cal["val_pred"][:, sel].astype(float).mean(1)
        n = len(yt)
        r0 = np.corrcoef(yt, yp)[0, 1]
        shifted = sorted((np.corrcoef(yt, np.roll(yp, k))[0, 1] for k in range(1, n)), reverse=True)
        level = shifted[int(np.floor(0.05 * n + 1e-9)) - 1]
        assert rois[name]["roi_r"] == pytest.approx(r0, abs=2e-3) and rois[name]["roi_null_p95"] == pytest.approx(level, abs=2e-3)
        assert rois[name]["evidence"] == bool(r0 > level)
    assert binom.sf(2, 22, 0.05) > 0.05  # the user test's control region: 3 of 22 is no evidence
    assert cal["val_true"].dtype == np.float16 and cal["val_true"].shape == (n, lab.size)
    # a calibration without the validation series (written before session 33): the voxel count decides, and the sidecar says so
    old_cal = {k: v for k, v in cal.items() if k not in ("val_true", "val_pred")}
    save_calibration(model, old_cal)
    out_old = synthesize(tiny_bids / EEG_NAME, model, tmp_path / "bold_old.nii.gz", progress_bar=False, atlas=atlas, uncertainty=False)
    vold = json.loads(out_old.with_name("bold_old.json").read_text())["ValidationR"]
    assert vold["atlas_rois_meaning"].endswith("the voxel count was used, re-run eeg2fmri train for the ROI-mean test")
    for name in ("left part", "right part"):
        e = vold["atlas_rois"][name]
        assert e["test"] == "voxel_count" and "roi_r" not in e
        assert e["evidence"] == (e["share_above_null"] > 0.1 and e["binomial_p"] < 0.05)
    # a validation span too short for the test: "not testable", not "no evidence" (user test 38: 16 windows)
    short = dict(cal)
    short["val_r_null95"] = np.full_like(np.asarray(cal["val_r_null95"], dtype=float), np.nan)
    save_calibration(model, short)
    out3 = synthesize(tiny_bids / EEG_NAME, model, tmp_path / "bold3.nii.gz", progress_bar=False, atlas=atlas, uncertainty=False)
    v3 = json.loads(out3.with_name("bold3.json").read_text())["ValidationR"]
    assert v3["not_testable"].startswith("the model's validation span is too short for a 5 % test over circular shifts (under 20 windows)")


def test_marker_advice_of_a_sample_based_model(caplog):
    """A review: for a raw-window model (no frame length) the --tr advice formatted None and crashed; any step up to the
    training TR is advised, a longer one is said to be out of reach."""
    import logging

    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.synthesis.synthesize import _grid_phase

    raw = mne.io.RawArray(np.zeros((2, 100 * 60)), mne.create_info(["Cz", "Pz"], 100.0, "eeg"), verbose=False)
    for step, want in ((1.25, "pass --tr 1.25 for one volume per marker"),
                       (3.0, "the model writes steps up to its training TR (2 s), so the output cannot follow this scan's 3 s")):
        raw.set_annotations(mne.Annotations(5.0 + step * np.arange(10), 0.0, ["R128"] * 10))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
            _grid_phase(raw, "markers", 2.0, PrepareConfig(), "rec", frame_len=None, max_step=2.0)
        assert any(want in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_tiny_synthesised_amplitude_is_said(tiny_bids, ridge_dir, tmp_path, monkeypatch, caplog):
    """User test 45: penalties and gains chosen over a mask of mostly unpredictable voxels shrank the synthesised series to
    SD 3e-5 in z units, and nothing said so; the sidecar (SmallAmplitude) and a warning now do, with the median SD."""
    import logging
    import sys

    syn = sys.modules["eeg2fmri.synthesis.synthesize"]  # (the package's synthesize attribute is the function)
    out = synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "normal.nii.gz", progress_bar=False)
    assert "SmallAmplitude" not in json.loads(out.with_name("normal.json").read_text())
    data = np.asarray(nib.load(out).dataobj, dtype=np.float64)
    real = syn.predict_windows
    monkeypatch.setattr(syn, "predict_windows", lambda *a, **k: np.asarray(real(*a, **k)) * 1e-4)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        small = synthesize(tiny_bids / EEG_NAME, ridge_dir, tmp_path / "small.nii.gz", progress_bar=False)
    note = json.loads(small.with_name("small.json").read_text())["SmallAmplitude"]
    inside = data.reshape(-1, data.shape[-1])
    inside = inside[np.abs(inside).sum(1) > 0]
    assert note["median_sd"] == pytest.approx(1e-4 * float(np.median(inside.std(1))), rel=1e-3)
    assert note["meaning"].startswith("the synthesised series vary by")
    assert any("under 1 % of a z-scored run" in r.getMessage() for r in caplog.records)


def test_a_recording_of_several_scans_is_said(tiny_bids, ridge_dir, tmp_path, caplog):
    """User test 50: one session recording holding several scans (blocks of scanner markers parted by pauses): the output's
    grid follows the first marker, which puts later scans off their volumes -- warned with each block's start, and the
    pauses are not reported as lost markers ("output volume k stays the scan's volume k" was false); the sidecar counts
    the blocks; --first-onset at block 2's first marker puts the output on that scan's volumes."""
    import logging

    raw = mne.io.read_raw_brainvision(tiny_bids / EEG_NAME, preload=True, verbose=False)
    sf = raw.info["sfreq"]
    pause = raw.get_data(start=int(100 * sf), stop=int(131.3 * sf))  # 31.3 s: no whole number of TRs
    both = mne.io.RawArray(np.concatenate([raw.get_data(), pause, raw.get_data()], axis=1), raw.info.copy(), verbose=False)
    t2 = (raw.n_times + pause.shape[1]) / sf
    ann = raw.annotations
    on = ann.onset - raw.first_time
    both.set_annotations(mne.Annotations(np.r_[on, on + t2], np.zeros(2 * len(on)), list(ann.description) * 2))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        out = synthesize(both, ridge_dir, tmp_path / "session.nii.gz", progress_bar=False)
    text = " ".join(r.getMessage() for r in caplog.records)
    first2 = float(np.sort(on[[str(d).endswith("R128") for d in ann.description]])[0]) + t2
    assert re.search(r"the recording holds 2 blocks of 'R128' scanner markers, parted by pauses \(separate scans: 1: 3\.7-183\.7 s, "
                     r"90 markers; 2: .*\): the output's grid follows the first marker", text)
    assert "pass --marker-block K (K = 1..2; marker_block=K)" in text and "scanner marker(s) missing" not in text
    assert json.loads(out.with_name("session.json").read_text())["VolumeGrid"]["marker_blocks"] == 2
    second = synthesize(both, ridge_dir, tmp_path / "second.nii.gz", progress_bar=False, first_onset=round(first2, 3))
    grid = json.loads(second.with_name("second.json").read_text())["VolumeGrid"]
    assert grid["anchor"] == "first_onset" and abs(grid["offset_s"] - (first2 % 2.0)) < 1.5 / sf
    # --marker-block 2: scan 2's volumes on its own grid -- the volumes of the same file's scan 1, 93 markers later in time
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        blk = synthesize(both, ridge_dir, tmp_path / "block2.nii.gz", progress_bar=False, marker_block=2)
    assert "blocks of 'R128' scanner markers" not in caplog.text
    side = json.loads(blk.with_name("block2.json").read_text())
    assert side["VolumeGrid"]["marker_block"] == 2 and abs(side["VolumeGrid"]["anchor_time_s"] - first2) < 1.5 / sf
    assert side["StartTime"] >= first2 - 1.5 / sf  # (file seconds: the scan's own volumes only)
    one = synthesize(both, ridge_dir, tmp_path / "block1.nii.gz", progress_bar=False, marker_block=1)
    a, b = np.asarray(nib.load(one).dataobj), np.asarray(nib.load(blk).dataobj)
    # the same scan twice: output volume 0 is scan volume k (block 1: the first volumes lack a whole EEG window before them)
    side1 = json.loads(one.with_name("block1.json").read_text())
    ka = round((side1["StartTime"] - side1["VolumeGrid"]["anchor_time_s"]) / 2.0)
    kb = round((side["StartTime"] - side["VolumeGrid"]["anchor_time_s"]) / 2.0)
    assert ka > kb == 0 and a.shape[3] + ka == b.shape[3]
    # (away from the pause's edges; the whole recording's standardisation differs a little between the two grids)
    va, vb = a[..., 5:-5][a[..., 0] != 0], b[..., ka + 5 : -5][a[..., 0] != 0]
    r = [np.corrcoef(va[i], vb[i])[0, 1] for i in range(0, len(va), 13)]
    assert np.median(r) > 0.99
    # (scan 1's grid put on scan 2: one TR off would correlate far less)
    r_off = [np.corrcoef(va[i][1:], b[..., ka + 5 : -6][a[..., 0] != 0][i])[0, 1] for i in range(0, len(va), 13)]
    assert np.median(r_off) < np.median(r) - 0.05
    with pytest.raises(Eeg2fmriInputError, match=r"marker_block=3, but the recording holds 2 block\(s\) of 'R128' scanner markers \(1: 3\.7"):
        synthesize(both, ridge_dir, tmp_path / "b3.nii.gz", progress_bar=False, marker_block=3)
    with pytest.raises(Eeg2fmriInputError, match=r"marker_block=2 writes that scan's volumes only; expected volumes='markers' .* got 'all'"):
        synthesize(both, ridge_dir, tmp_path / "ba.nii.gz", progress_bar=False, marker_block=2, volumes="all")
    with pytest.raises(Eeg2fmriInputError, match=r"dummy_scans=95 but block 2 has only 90 'R128' marker\(s\)"):
        synthesize(both, ridge_dir, tmp_path / "bd.nii.gz", progress_bar=False, marker_block=2, dummy_scans=95)
    with pytest.raises(Eeg2fmriInputError, match=r"expected marker_block as a whole number >= 1 .* got 0"):
        synthesize(both, ridge_dir, tmp_path / "b0.nii.gz", progress_bar=False, marker_block=0)
    with pytest.raises(Eeg2fmriInputError, match=r"marker_block=2 picks a block of scanner markers, .* got 12\.0: drop --first-onset"):
        synthesize(both, ridge_dir, tmp_path / "bx.nii.gz", progress_bar=False, marker_block=2, first_onset=12.0)


def test_hrf_basis_note_of_the_flagship_reads_its_linear_path():
    """The flagship's linear-path basis is read from its saved basis matrix (identity: lags; one row: canonical; else the
    informed basis); no note where the blend gives the linear path no weight or there is no path."""
    import torch

    from eeg2fmri.synthesis.synthesize import _hrf_basis_note

    class Net:  # what _hrf_basis_note reads of an eeg2fmri_net
        def __init__(self, basis, weight):
            self.linear_hrf, self.ridge_weight = basis, torch.tensor(weight)

    assert _hrf_basis_note(Net("lags", 0.6))["basis"] == "lags"
    assert "comes out early" in _hrf_basis_note(Net("canonical", 1.0))["meaning"]
    assert _hrf_basis_note(Net("basis", 0.0)) is None and _hrf_basis_note(Net(None, 1.0)) is None
    from eeg2fmri.models.flagship import EEG2fMRINet

    for rows, expected in ((torch.ones(1, 7), "canonical"), (torch.eye(7), "lags"), (torch.ones(3, 7), "basis")):
        net = EEG2fMRINet.__new__(EEG2fMRINet)
        torch.nn.Module.__init__(net)
        net.register_buffer("ridge_basis", rows)
        net.register_buffer("ridge_coef", torch.zeros(1))
        assert net.linear_hrf == expected
