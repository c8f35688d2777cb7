"""EEG files written by other tools (pybv, eeglabio, edfio, mne-bids) read back through eeg2fmri.io.read_eeg.

Each test writes known data with the tool itself and compares what the package reads: values, sampling
rate, channel names and markers. (Elsewhere these writers only build fixtures: pybv in
test_spatial_end_to_end, EEGLAB through mne.export in the CWL layout test, EDF through the simulator.)
"""

from __future__ import annotations

import numpy as np
import pytest

from eeg2fmri.io import read_eeg

SF = 250.0
CH = ["Fp1", "Fz", "Cz", "Pz", "Oz"]


def _signal(n_ch: int = len(CH), n: int = 1000, seed: int = 0) -> np.ndarray:
    """Volts, shape (n_ch, n): smooth sines plus noise (~50 uV)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SF
    return (np.sin(2 * np.pi * (3 + np.arange(n_ch))[:, None] * t) * 40e-6 + rng.normal(scale=10e-6, size=(n_ch, n)))


def test_brainvision_written_by_pybv(tmp_path):
    import pybv

    data = _signal()
    events = np.array([[100, 1], [600, 2]])  # sample, value -> Stimulus/S  1, S  2
    pybv.write_brainvision(data=data, sfreq=SF, ch_names=CH, fname_base="rec", folder_out=tmp_path, events=events,
                           fmt="binary_float32", unit="µV")
    raw = read_eeg(tmp_path / "rec.vhdr")
    assert raw.ch_names == CH and raw.info["sfreq"] == SF and raw.n_times == data.shape[1]
    np.testing.assert_allclose(raw.get_data(), data, rtol=1e-6, atol=1e-12)  # pybv: volts in, float32 microvolts on disk
    stim = [(round(o * SF), d) for o, d in zip(raw.annotations.onset, raw.annotations.description) if d.startswith("Stimulus")]
    assert stim == [(100, "Stimulus/S  1"), (600, "Stimulus/S  2")]


def test_eeglab_set_written_by_eeglabio(tmp_path):
    from eeglabio.raw import export_set

    data = _signal(seed=1)
    export_set(str(tmp_path / "rec.set"), data, SF, CH, annotations=[np.array(["R128", "R128", "S  5"]), np.array([0.5, 2.5, 3.0]), np.zeros(3)])
    raw = read_eeg(tmp_path / "rec.set")
    assert raw.ch_names == CH and raw.info["sfreq"] == SF
    np.testing.assert_allclose(raw.get_data(), data, rtol=1e-5, atol=1e-11)  # float32 on disk
    np.testing.assert_allclose(raw.annotations.onset, [0.5, 2.5, 3.0], atol=1.0 / SF)
    assert list(raw.annotations.description) == ["R128", "R128", "S  5"]


def test_edf_written_by_edfio(tmp_path):
    from edfio import Edf, EdfAnnotation, EdfSignal

    data = _signal(seed=2)
    sigs = [EdfSignal(data[i] * 1e6, sampling_frequency=SF, label=c, physical_dimension="uV", physical_range=(-500.0, 500.0)) for i, c in enumerate(CH)]
    edf = Edf(sigs, annotations=[EdfAnnotation(1.0, None, "R128"), EdfAnnotation(3.0, None, "R128")])
    edf.write(tmp_path / "rec.edf")
    raw = read_eeg(tmp_path / "rec.edf")
    assert raw.ch_names == CH and raw.info["sfreq"] == SF and raw.n_times == data.shape[1]
    # 16-bit digital values over +-500 uV: one step is 1000 uV / 65535
    np.testing.assert_allclose(raw.get_data(), data, atol=1000e-6 / 65535)
    got = [(o, d) for o, d in zip(raw.annotations.onset, raw.annotations.description) if d == "R128"]
    np.testing.assert_allclose([o for o, _ in got], [1.0, 3.0])


@pytest.mark.parametrize("fmt", ["BrainVision", "EDF"])
def test_bids_written_by_mne_bids(tmp_path, fmt):
    import mne
    from mne_bids import BIDSPath, write_raw_bids

    data = _signal(len(CH) + 1, seed=3)
    info = mne.create_info(CH + ["ECG"], SF, ["eeg"] * len(CH) + ["ecg"])
    raw0 = mne.io.RawArray(data, info, verbose=False)
    raw0.set_annotations(mne.Annotations([0.5, 2.5], [0.0, 0.0], ["R128", "R128"]))
    bp = BIDSPath(subject="01", task="rest", run="1", datatype="eeg", root=tmp_path / "bids")
    write_raw_bids(raw0, bp, format=fmt, allow_preload=True, verbose=False)
    path = next((tmp_path / "bids/sub-01/eeg").glob("sub-01_task-rest_run-1_eeg.[ve][hd][df]*"))
    raw = read_eeg(path)
    assert raw.ch_names == CH + ["ECG"] and raw.info["sfreq"] == SF
    assert raw.get_channel_types()[-1] == "ecg"  # from channels.tsv
    atol = 1e-9 if fmt == "BrainVision" else 2 * np.abs(data).max() / 65535
    np.testing.assert_allclose(raw.get_data(), data, atol=atol)
    np.testing.assert_allclose([o for o, d in zip(raw.annotations.onset, raw.annotations.description) if d.endswith("R128")], [0.5, 2.5], atol=1.0 / SF)
