"""EEG files in unusual but legal encodings, read by eeg2fmri.io.read_eeg and compared with MNE's own readers
(and with the values written, in volts), plus the scanner-marker times against mne.events_from_annotations.

Not covered by tests/test_real_formats.py (which writes float32 BrainVision with pybv, EDF with a symmetric
+-500 uV range with edfio, and an EEGLAB .set with its data inline): here the files are written byte by byte,
so the unusual header fields are exactly what the test says.
"""

from __future__ import annotations

import numpy as np
import pytest

from eeg2fmri.io import read_eeg
from eeg2fmri.io.sync import marker_times, volume_onsets

SF = 500.0
CH = ["Fp1", "Cz", "Oz", "ECG"]


def _int_signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-3000, 3000, size=(len(CH), n)).astype(np.int16)


# --------------------------------------------------------------------------- BrainVision INT_16, resolutions, units
def _write_vhdr(folder, stem, digital, resolutions, units, markers, orientation="MULTIPLEXED", fmt="INT_16"):
    n_ch, n = digital.shape
    lines = ["Brain Vision Data Exchange Header File Version 1.0", "", "[Common Infos]", "Codepage=UTF-8",
             f"DataFile={stem}.eeg", f"MarkerFile={stem}.vmrk", "DataFormat=BINARY", f"DataOrientation={orientation}", f"DataPoints={n}",
             f"NumberOfChannels={n_ch}", f"SamplingInterval={1e6 / SF:g}", "", "[Binary Infos]", f"BinaryFormat={fmt}", "",
             "[Channel Infos]"]
    for i, (c, r, u) in enumerate(zip(CH, resolutions, units)):
        lines.append(f"Ch{i + 1}={c},,{r!r},{u}")
    (folder / f"{stem}.vhdr").write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    vm = ["Brain Vision Data Exchange Marker File, Version 1.0", "", "[Common Infos]", "Codepage=UTF-8", f"DataFile={stem}.eeg", "",
          "[Marker Infos]", "Mk1=New Segment,,1,1,0"]
    for k, (typ, desc, pos) in enumerate(markers, start=2):  # BrainVision positions are 1-based
        vm.append(f"Mk{k}={typ},{desc},{pos},1,0")
    (folder / f"{stem}.vmrk").write_text("\r\n".join(vm) + "\r\n", encoding="utf-8")
    arr = digital.T if orientation == "MULTIPLEXED" else digital
    arr.astype("<i2" if fmt == "INT_16" else "<i4").tofile(folder / f"{stem}.eeg")
    return folder / f"{stem}.vhdr"


UNIT_SCALE = {"µV": 1e-6, "uV": 1e-6, "nV": 1e-9, "mV": 1e-3, "V": 1.0}


@pytest.mark.parametrize("orientation", ["MULTIPLEXED", "VECTORIZED"])
@pytest.mark.parametrize("fmt", ["INT_16", "INT_32"])
def test_brainvision_int_resolution_and_units_equal_mne(tmp_path, orientation, fmt):
    """INT_16/INT_32 data with per-channel resolutions != 1 and units uV / nV / mV: read_eeg == mne.io.read_raw_brainvision
    == digital * resolution * unit, in volts; markers at their 1-based positions (as events_from_annotations gives them)."""
    import mne

    n = 2000
    digital = _int_signal(n)
    resolutions = [0.1, 0.5, 250.0, 0.000488281]
    units = ["µV", "µV", "nV", "mV"]
    vol = [(k * 1000 + 1) for k in range(1, 8)]  # 1-based positions 1001, 2001 ... -> samples 1000, 2000 ... (0-based)
    vol = [p for p in vol if p <= n] + [1500 + 1]
    markers = [("Response", "R128", p) for p in vol[:-1]] + [("Stimulus", "S  5", vol[-1])]
    vhdr = _write_vhdr(tmp_path, "rec", digital, resolutions, units, markers, orientation, fmt)
    raw = read_eeg(vhdr)
    ref = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)
    want = digital.astype(np.float64) * np.array([r * UNIT_SCALE[u] for r, u in zip(resolutions, units)])[:, None]
    assert raw.ch_names == CH and raw.info["sfreq"] == SF and raw.n_times == n
    np.testing.assert_allclose(raw.get_data(), ref.get_data(), rtol=0, atol=0)
    np.testing.assert_allclose(raw.get_data(), want, rtol=1e-12, atol=1e-18)
    # the nV channel is 1000x smaller than a uV channel of the same resolution: a unit mix-up would show here
    assert np.abs(raw.get_data()[2]).max() < 1e-3 * 3000 * 250e-6
    ev, ids = mne.events_from_annotations(ref, event_id={"Response/R128": 1}, verbose=False)
    name, got = marker_times(raw, "R128")
    np.testing.assert_allclose(got, (ev[:, 0] - ref.first_samp) / SF, atol=1e-12)
    np.testing.assert_allclose(got, (np.array(vol[:-1]) - 1) / SF, atol=1e-12)


def test_brainvision_in_bids_with_channels_tsv_equals_mne(tmp_path):
    """The same INT_16 file inside a BIDS folder (read through mne-bids because channels.tsv exists): the data are
    still digital * resolution * unit (volts), the channel typed ECG in channels.tsv is ECG."""
    import mne

    eeg = tmp_path / "sub-01" / "eeg"
    eeg.mkdir(parents=True)
    (tmp_path / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.8.0"}')
    digital = _int_signal(1500, seed=1)
    resolutions, units = [0.1, 0.5, 100.0, 0.5], ["µV", "µV", "nV", "µV"]
    vhdr = _write_vhdr(eeg, "sub-01_task-rest_eeg", digital, resolutions, units, [("Response", "R128", 101), ("Response", "R128", 1101)])
    (eeg / "sub-01_task-rest_channels.tsv").write_text(
        "name\ttype\tunits\n" + "".join(f"{c}\t{'ECG' if c == 'ECG' else 'EEG'}\t{u}\n" for c, u in zip(CH, units)), encoding="utf-8")
    (eeg / "sub-01_task-rest_eeg.json").write_text('{"TaskName": "rest", "SamplingFrequency": 500, "PowerLineFrequency": 50, '
                                                   '"EEGReference": "Cz", "SoftwareFilters": "n/a"}')
    raw = read_eeg(vhdr)
    ref = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)
    want = digital.astype(np.float64) * np.array([r * UNIT_SCALE[u] for r, u in zip(resolutions, units)])[:, None]
    np.testing.assert_allclose(raw.get_data(), ref.get_data(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(raw.get_data(), want, rtol=1e-12, atol=1e-18)
    assert raw.get_channel_types() == ["eeg", "eeg", "eeg", "ecg"]
    assert raw.info["line_freq"] == 50
    _, got = marker_times(raw, "R128")
    np.testing.assert_allclose(got, [0.2, 2.2], atol=1e-12)


# --------------------------------------------------------------------------- EDF with odd physical ranges
def _write_edf(path, digital, phys_min, phys_max, dig_min, dig_max, dims, record_s=1.0):
    """A plain EDF (not EDF+) written byte by byte: int16 little-endian, one data record per ``record_s`` seconds."""
    n_ch, n = digital.shape
    spr = int(SF * record_s)
    assert n % spr == 0
    nrec = n // spr
    def f(v, w):
        s = f"{v:g}" if isinstance(v, float) else str(v)
        assert len(s) <= w, s
        return s.ljust(w).encode("ascii")
    head = f("0", 8) + f("X X X X", 80) + f("Startdate 01-JAN-2020 X X X", 80) + f("01.01.20", 8) + f("10.00.00", 8)
    head += f(256 + 256 * n_ch, 8) + f("", 44) + f(nrec, 8) + f(record_s, 8) + f(n_ch, 4)
    cols = [[f(c, 16) for c in CH], [f("", 80)] * n_ch, [f(d, 8) for d in dims], [f(v, 8) for v in phys_min], [f(v, 8) for v in phys_max],
            [f(v, 8) for v in dig_min], [f(v, 8) for v in dig_max], [f("", 80)] * n_ch, [f(spr, 8)] * n_ch, [f("", 32)] * n_ch]
    for col in cols:
        head += b"".join(col)
    body = digital.reshape(n_ch, nrec, spr).transpose(1, 0, 2).astype("<i2").tobytes()
    path.write_bytes(head + body)


def test_edf_with_odd_physical_ranges_equals_mne(tmp_path):
    """EDF whose channels have an inverted physical range (min > max), an asymmetric one with a non-zero offset, a
    digital range narrower than int16, and units uV / mV / V: read_eeg == mne.io.read_raw_edf == the EDF formula
    phys = (dig - dig_min) * (pmax - pmin) / (dmax - dmin) + pmin, in volts."""
    import mne

    n = 2000
    rng = np.random.default_rng(3)
    dig_min, dig_max = [-32768, -2048, 0, -32768], [32767, 2047, 4095, 32767]
    digital = np.stack([rng.integers(lo, hi + 1, n) for lo, hi in zip(dig_min, dig_max)]).astype(np.int16)
    phys_min, phys_max = [3200, -100.5, -1.5, -0.0008], [-3200, 400.25, 2.5, 0.0008]  # Fp1 inverted
    dims = ["uV", "uV", "mV", "V"]  # (MNE reads any other unit string, "nV" included, as volts: nV is tested below)
    path = tmp_path / "rec.edf"
    _write_edf(path, digital, phys_min, phys_max, dig_min, dig_max, dims)
    raw = read_eeg(path)
    ref = mne.io.read_raw_edf(path, preload=True, verbose=False)
    scale = np.array([UNIT_SCALE[d] for d in dims])
    pmin, pmax, dmin, dmax = (np.array(v, float)[:, None] for v in (phys_min, phys_max, dig_min, dig_max))
    want = ((digital - dmin) * (pmax - pmin) / (dmax - dmin) + pmin) * scale[:, None]
    assert raw.ch_names == CH and raw.info["sfreq"] == SF and raw.n_times == n
    np.testing.assert_allclose(raw.get_data(), ref.get_data(), rtol=0, atol=0)
    np.testing.assert_allclose(raw.get_data(), want, rtol=1e-9, atol=1e-15)
    assert np.corrcoef(raw.get_data()[0], digital[0])[0, 1] < -0.99  # the inverted range really inverts


@pytest.mark.parametrize("preload", [True, False])
@pytest.mark.parametrize("ext", [".edf", ".bdf"])
def test_edf_channels_in_nanovolts_are_scaled_to_volts(tmp_path, preload, ext):
    """MNE's EDF/BDF reader reads a physical dimension of nV as volts (1e9 times too large); read_eeg scales those
    channels (loaded or read on demand) and leaves the others as MNE reads them."""
    import mne

    n = 1000
    rng = np.random.default_rng(4)
    digital = rng.integers(-32768, 32768, size=(len(CH), n)).astype(np.int16)
    phys = ([-3200.0] * 4, [3200.0] * 4)
    dims = ["nV", "uV", "nV", "mV"]
    path = tmp_path / "rec.edf"
    _write_edf(path, digital, *phys, [-32768] * 4, [32767] * 4, dims)
    if ext == ".bdf":  # the same header; 24-bit samples
        head = bytearray(path.read_bytes()[: 256 + 256 * len(CH)])
        head[0:8] = b"\xffBIOSEMI"
        head[192:236] = b"24BIT".ljust(44)
        for i in range(len(CH)):  # digital range of 24 bits, physical kept
            o = 256 + len(CH) * (16 + 80 + 8 + 8 + 8)
            head[o + 8 * i : o + 8 * i + 8] = b"-8388608"
            o += 8 * len(CH)
            head[o + 8 * i : o + 8 * i + 8] = b"8388607".ljust(8)
        d24 = digital.astype(np.int32) * 256
        body = np.stack([(d24 >> s) & 0xFF for s in (0, 8, 16)], -1).astype(np.uint8)  # little-endian 3-byte samples
        spr = int(SF)
        body = body.reshape(len(CH), n // spr, spr, 3).transpose(1, 0, 2, 3).tobytes()
        path = tmp_path / "rec.bdf"
        path.write_bytes(bytes(head) + body)
    raw = read_eeg(path, preload=preload)
    ref = getattr(mne.io, "read_raw_edf" if ext == ".edf" else "read_raw_bdf")(path, preload=True, verbose=False)
    assert ref._orig_units["Fp1"] == "nV"  # MNE keeps the unit's name ...
    scale = np.array([1e-9 if d == "nV" else 1.0 for d in dims])[:, None]
    np.testing.assert_allclose(raw.get_data(), ref.get_data() * scale, rtol=1e-12, atol=0)  # ... but not its size
    uv = raw.get_data()[[0, 1]]  # the same numbers in nV and in uV: 1000 times apart, both in volts
    assert 1e-7 < np.abs(uv[0]).max() < 4e-6 and 1e-4 < np.abs(uv[1]).max() < 4e-3
    np.testing.assert_allclose(raw.get_data(start=100, stop=300), ref.get_data(start=100, stop=300) * scale, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- EEGLAB .set with a separate .fdt
def test_eeglab_set_with_separate_fdt_equals_mne(tmp_path):
    """An EEGLAB .set whose EEG.data names a separate float32 .fdt file (EEGLAB's 'save as two files'): read_eeg ==
    mne.io.read_raw_eeglab == the microvolt values written, in volts; event latencies (1-based samples) -> onsets."""
    import mne
    from eeglabio.raw import export_set
    from scipy.io import loadmat, savemat

    n = 1500
    rng = np.random.default_rng(4)
    uv = (rng.standard_normal((len(CH), n)) * 30).astype(np.float32)
    onsets = np.array([0.5, 1.5, 2.5])
    export_set(str(tmp_path / "inline.set"), uv.astype(np.float64) * 1e-6, SF, CH,
               annotations=[np.array(["R128"] * 3), onsets, np.zeros(3)])
    mat = loadmat(tmp_path / "inline.set", squeeze_me=False, appendmat=False)
    mat["data"] = np.array(["rec.fdt"])
    mat["datfile"] = np.array(["rec.fdt"])
    uv.T.astype("<f4").tofile(tmp_path / "rec.fdt")  # channels fastest: EEGLAB's (nbchan, pnts) in Fortran order
    mat = {k: v for k, v in mat.items() if not k.startswith("__")}
    savemat(tmp_path / "rec.set", mat, appendmat=False)
    raw = read_eeg(tmp_path / "rec.set")
    ref = mne.io.read_raw_eeglab(tmp_path / "rec.set", preload=True, verbose=False)
    assert raw.ch_names == CH and raw.info["sfreq"] == SF and raw.n_times == n
    np.testing.assert_allclose(raw.get_data(), ref.get_data(), rtol=0, atol=0)
    np.testing.assert_allclose(raw.get_data(), uv.astype(np.float64) * 1e-6, rtol=1e-6, atol=1e-13)
    _, got = marker_times(raw, "R128")
    ev, _ = mne.events_from_annotations(ref, event_id={"R128": 1}, verbose=False)
    np.testing.assert_allclose(got, (ev[:, 0] - ref.first_samp) / SF, atol=1e-9)
    np.testing.assert_allclose(got, onsets, atol=1.0 / SF)


# --------------------------------------------------------------------------- volume onsets with jittered markers
@pytest.mark.parametrize("jitter_samples", [0, 1, 2])
def test_volume_onsets_with_jitter_are_the_marker_samples(tmp_path, jitter_samples):
    """Volume markers jittering by up to +-2 samples (and one dummy scan): the onsets are exactly the marker
    samples MNE finds (events_from_annotations), not a regular grid, and the dummy's marker is the one dropped."""
    import mne

    n_vol, tr, sf = 20, 2.0, 250.0
    rng = np.random.default_rng(jitter_samples)
    first = 313
    samples = first + np.round(np.arange(n_vol + 1) * tr * sf).astype(int) + rng.integers(-jitter_samples, jitter_samples + 1, n_vol + 1)
    n = int(samples[-1] + tr * sf + 50)
    info = mne.create_info(["Cz"], sf, "eeg")
    raw = mne.io.RawArray(np.zeros((1, n)), info, first_samp=1000, verbose=False)  # (annotations without orig_time: from the first sample)
    raw.set_annotations(mne.Annotations(samples / sf, np.zeros(len(samples)), ["Response/R128"] * len(samples)))
    rep = volume_onsets(raw, n_vol, tr, marker="R128")
    ev, _ = mne.events_from_annotations(raw, event_id={"Response/R128": 1}, verbose=False)
    want = (ev[:, 0] - raw.first_samp) / sf
    assert rep.dropped == 1 and rep.method == "markers"
    np.testing.assert_allclose(rep.onsets, want[1:], atol=1e-9)
    np.testing.assert_allclose(rep.onsets, samples[1:] / sf, atol=1e-9)
