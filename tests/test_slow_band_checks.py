"""Bands and high-pass settings that cannot work are refused in house style (user test 59)."""

from __future__ import annotations

import mne
import numpy as np
import pytest

from eeg2fmri.datasets.prepared import PrepareConfig, _validate_config
from eeg2fmri.utils.validation import Eeg2fmriInputError


def test_a_band_below_the_high_pass_is_refused():
    with pytest.raises(Eeg2fmriInputError, match=r"bands\['infraslow'\]=\[0.01, 0.1\] Hz lies below l_freq=0.5 Hz: the high-pass removes "
                       r"it.*lower l_freq below the band \(null: no high-pass\) or drop the band"):
        _validate_config(PrepareConfig(bands={"infraslow": [0.01, 0.1], "alpha": [8, 13]}))
    with pytest.raises(Eeg2fmriInputError, match=r"bands\['x'\]=\[4.0, 1.0\]: expected 0 < low < high"):
        _validate_config(PrepareConfig(bands={"x": [4, 1]}))
    _validate_config(PrepareConfig(bands={"infraslow": [0.01, 0.1]}, l_freq=None))  # no high-pass: accepted
    _validate_config(PrepareConfig(bands={"delta": [0.5, 4]}))  # from the high-pass up: accepted


def test_a_high_pass_longer_than_the_run_is_refused_with_the_lowest_usable_cutoff(tiny_prepared):
    """MNE's high-pass FIR spans 3.3 / transition seconds (its own filter length, checked here); on a 3-min run l_freq 0.01 Hz
    (a 330-s filter) is refused naming the run and the lowest cut-off that fits, instead of MNE's bare warning."""
    from eeg2fmri.datasets import prepare_dataset

    for l_freq in (0.01, 0.5, 4.0):
        want = 3.3 / min(max(0.25 * l_freq, 2.0), l_freq)
        got = mne.filter.create_filter(None, 100.0, l_freq, None, verbose=False).shape[0] / 100.0
        assert abs(got - want) < 0.02
    root = tiny_prepared.provenance["bids_root"]
    with pytest.raises(Eeg2fmriInputError, match=r"prepare option l_freq=0.01 Hz needs a 330-s high-pass filter, the run lasts \d+ s "
                       r"\(the filter would distort it\); use l_freq >= 0.0\d+ Hz, or null for no high-pass"):
        prepare_dataset(root, {"l_freq": 0.01}, progress_bar=False, subjects=["01"])


def test_datasets_check_says_when_l_freq_removes_a_band_the_recordings_keep(tiny_bids, capsys):
    """The tiny recordings declare no hardware high-pass (MNE: info['highpass'] 0, as for a DC-coupled amplifier): the check
    says that l_freq removes the slow band (user test 59); not where l_freq is off."""
    from eeg2fmri.cli import main

    assert main(["datasets", "--check", str(tiny_bids)]) == 0
    out = capsys.readouterr().out
    assert ("2 recording(s) declare a hardware high-pass of 0 Hz (a DC-coupled amplifier, or a header that gives no high-pass), and "
            "prepare's l_freq 0.5 Hz removes everything below 0.5 Hz: slow potentials below it reach no model") in out
    assert main(["datasets", "--check", str(tiny_bids), "--config", '{"l_freq": null}']) == 0
    assert "declare a hardware high-pass" not in capsys.readouterr().out


def test_synthesis_chunks_skip_the_filter_length_check():
    """A 5-s clip at the default l_freq 0.5 (a 6.6-s filter) is refused by prepare's check, and read when synthesis's
    padded chunks ask without it (a review: synthesis of short chunks on the CPU path was refused)."""
    from eeg2fmri.datasets.prepared import load_eeg_lowrate

    info = mne.create_info([f"E{i}" for i in range(3)], 100.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).standard_normal((3, 500)) * 1e-5, info, verbose=False)
    with pytest.raises(Eeg2fmriInputError, match=r"l_freq=0.5 Hz needs a 7-s high-pass filter, the run lasts 5 s"):
        load_eeg_lowrate(raw, PrepareConfig(bands={"alpha": (8.0, 13.0)}))
    with pytest.warns(RuntimeWarning, match="filter_length"):  # (MNE's own warning: as before the check)
        data, wsf, ch = load_eeg_lowrate(raw, PrepareConfig(bands={"alpha": (8.0, 13.0)}), check_filter_length=False)
    assert data.shape[0] == 3 and np.isfinite(data).all()


def test_new_prepare_options_leave_earlier_fingerprints_alone(tiny_prepared):
    """physio_incomplete and slow_potential at their defaults are not part of the data fingerprint (the datasets and runs
    prepared before they existed keep theirs); set, they change it."""
    import dataclasses
    import hashlib
    import json

    from eeg2fmri.datasets.prepared import data_fingerprint

    ds = tiny_prepared
    inputs = ds.provenance["inputs"]
    keys = [r.key for r in ds.runs]
    cfg = {k: v for k, v in ds.config.to_dict().items() if k not in ("physio_incomplete", "slow_potential")}
    doc = {"runs": keys, "inputs": {k: [inputs.get(k, {}).get("eeg_sha1"), inputs.get(k, {}).get("bold_sha1"), inputs.get(k, {}).get("volumes")]
                                    + [inputs[k][x] for x in ("eeg_span_s", "given") if inputs.get(k, {}).get(x)] for k in keys},
           "prepare": cfg}
    assert data_fingerprint(ds) == hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    from copy import copy

    other = copy(ds)  # (a shallow copy with another config)
    other.config = dataclasses.replace(ds.config, slow_potential=(0.01, 0.1))
    assert data_fingerprint(other) != data_fingerprint(ds)
