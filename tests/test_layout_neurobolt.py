"""NeuroBOLT Hugging Face layout: EEGLAB EEG + DiFuMo-64 ROI tables (tiny fixture reproducing the mirror's listing)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.io.layouts import (
    check_layout,
    detect_layout,
    find_runs_layout,
    layout_volume_onsets,
    read_layout_eeg,
)
from eeg2fmri.io.layouts.neurobolt import read_roi_targets
from eeg2fmri.utils.validation import Eeg2fmriInputError

SF, TR, NVOL = 200.0, 2.1, 9
SCALP = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "TP9'", "TP10'"]
AUX = ["EOG1", "EOG2", "EMG1", "EMG2", "EMG3", "ECG"]
ROIS = [f"DiFuMo {i}" for i in range(1, 65)]


def _table(seed: int):
    import pandas as pd

    vals = np.random.default_rng(seed).standard_normal((NVOL, 66)).astype(np.float32)
    return pd.DataFrame(vals, columns=pd.Index(ROIS + ["global signal clean", "global signal raw"], name="Difumo_names"))


def build_neurobolt(root: Path) -> Path:
    """Dataset/EEG_set + Dataset/fMRI_difumo64 as in the mirror: sub01-scan01, sub07-scan01/02; sub09-scan01 EEG without targets."""
    from eeglabio.raw import export_set

    base = root / "Dataset"
    (base / "EEG_set").mkdir(parents=True)
    (base / "fMRI_difumo64").mkdir()
    for k, (sub, scan) in enumerate([("01", "01"), ("07", "01"), ("07", "02"), ("09", "01")]):
        ch = SCALP + AUX + (["CWL1", "CWL2"] if sub == "07" else [])
        n = int((1.0 + NVOL * TR + 0.5) * SF)
        data = np.random.default_rng(k).normal(scale=20e-6, size=(len(ch), n))
        on = 1.0 + np.arange(NVOL) * TR
        export_set(str(base / "EEG_set" / f"sub{sub}-scan{scan}_eeg.set"), data, SF, ch,
                   annotations=[np.array(["R149"] * NVOL), on, np.zeros(NVOL)])
        if sub != "09":
            (base / "fMRI_difumo64" / f"sub{sub}-scan{scan}_difumo64_roi.pkl").write_bytes(pickle.dumps(_table(k)))
    (base / "fMRI_difumo64" / "sub22-scan01_difumo64_roi.pkl").write_bytes(pickle.dumps(_table(9)))  # targets without EEG
    return root


@pytest.fixture(scope="module")
def nb_root(tmp_path_factory):
    return build_neurobolt(tmp_path_factory.mktemp("nb") / "NeuroBOLT")


def test_neurobolt_pairing_eeg_targets_and_timing(nb_root):
    assert detect_layout(nb_root) == "neurobolt"
    runs = find_runs_layout(nb_root, layout="auto")
    assert [r.key for r in runs] == ["sub-01_run-01", "sub-07_run-01", "sub-07_run-02"]
    assert all(r.bold_path is None and r.tr == 2.1 and r.marker == ("R149",) for r in runs)
    raw = read_layout_eeg(runs[1])
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    assert [c for c, t in types.items() if t == "eeg"] == SCALP  # EOG/EMG/ECG/CWL typed non-EEG
    values, names = read_roi_targets(runs[1])
    assert values.shape == (NVOL, 64) and values.dtype == np.float32 and names == ROIS
    np.testing.assert_allclose(values, _table(1).to_numpy()[:, :64])
    sync = layout_volume_onsets(runs[1], raw, len(values), runs[1].tr)
    np.testing.assert_allclose(sync.onsets, 1.0 + np.arange(NVOL) * TR, atol=1.0 / SF)
    rep = check_layout(nb_root)
    assert rep.ok and sorted(rep.skipped) == ["sub-09_run-01: EEG sub09-scan01_eeg.set but no ROI targets fMRI_difumo64/sub09-scan01_difumo64_roi.pkl",
                                              "sub22-scan01_difumo64_roi.pkl: ROI targets without EEG EEG_set/sub22-scan01_eeg.set"]


def test_neurobolt_prepares_its_region_tables(nb_root):
    """The DiFuMo-64 tables are the targets (one row per R149 marker), the global-signal columns left out."""
    from eeg2fmri.datasets import prepare_dataset

    ds = prepare_dataset(nb_root, {"notch": 60}, layout="neurobolt", progress_bar=False)
    assert not ds.has_grid and ds.rois["names"] == ROIS and ds.n_outputs == 64 and ds.tr == 2.1
    assert [r.key for r in ds.runs] == ["sub-01_run-01", "sub-07_run-01", "sub-07_run-02"]
    for k, run in enumerate(ds.runs):
        kept = slice(*ds.provenance["inputs"][run.key]["volumes"])
        np.testing.assert_allclose(run.bold, _table(k).to_numpy()[:, :64][kept])
        np.testing.assert_allclose(run.onsets, (1.0 + np.arange(NVOL) * TR)[kept], atol=1.0 / SF)


def test_neurobolt_refusals(nb_root, tmp_path):

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(Eeg2fmriInputError, match=r"found a reference to builtins.print, which this reader does not load"):
        read_roi_targets(bad)
    with pytest.raises(Eeg2fmriInputError, match=r"expected the ROI target pickle"):
        read_roi_targets(tmp_path / "none.pkl")
