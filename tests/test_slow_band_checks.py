"""Bands and high-pass settings that cannot work are refused in house style (user test 59)."""

from __future__ import annotations

import mne
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
            "prepare's l_freq 0.5 Hz removes everything below 0.5 Hz: slow and infraslow potentials") in out
    assert main(["datasets", "--check", str(tiny_bids), "--config", '{"l_freq": null}']) == 0
    assert "declare a hardware high-pass" not in capsys.readouterr().out
