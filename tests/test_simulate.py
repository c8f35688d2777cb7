"""Simulator: BIDS layout, determinism, ground truth consistency, recoverable coupling."""

from __future__ import annotations

import json
import warnings

import mne
import mne_bids
import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.simulate import SimulationConfig, ceilings, load_groundtruth, simulate_dataset
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .conftest import TINY


def _read_raw(root, sub):
    bp = mne_bids.BIDSPath(subject=sub, task="rest", run=1, datatype="eeg", root=root)
    # mne-bids warns that ECG/EOG have no electrode positions: expected for a real recording too
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(without locations|ecg/eog channels).*", category=RuntimeWarning)
        return mne_bids.read_raw_bids(bp, verbose=False)


def test_bids_layout_reads_back(tiny_bids):
    root = tiny_bids
    assert (root / "dataset_description.json").exists()
    assert (root / "participants.tsv").read_text().count("sub-") == TINY["n_subjects"]
    raw = _read_raw(root, "01")
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    assert types["ECG"] == "ecg" and types["EOG"] == "eog"
    assert sum(t == "eeg" for t in types.values()) == TINY["n_channels"]
    assert raw.info["sfreq"] == TINY["sfreq"]
    sd = raw.get_data(picks="eeg").std(axis=1)
    assert np.all((sd > 3e-6) & (sd < 2e-4))  # physiological microvolt range, stored in volts
    img = nib.load(root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz")
    side = json.loads((root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.json").read_text())
    assert side["RepetitionTime"] == 2.0 and side["TaskName"] == "rest"
    assert img.header.get_zooms()[3] == pytest.approx(2.0)
    assert img.header.get_zooms()[:3] == pytest.approx((12.0, 12.0, 12.0))
    n_vols = img.shape[3]
    assert n_vols == int(TINY["minutes"] * 60 / 2.0)
    markers = [a for a in raw.annotations if a["description"] == "Response/R128"]
    assert len(markers) == n_vols
    onsets = np.array([a["onset"] for a in markers])
    assert np.allclose(np.diff(onsets), 2.0, atol=1.0 / TINY["sfreq"])
    assert onsets[0] > 1.0  # EEG starts before the scan: t=0 is not volume 0
    # the affine maps voxels into MNI space: the grid centre lies near the origin
    centre = img.affine @ np.r_[(np.array(img.shape[:3]) - 1) / 2, 1]
    assert np.all(np.abs(centre[:3]) < 40)
    assert (root / "sub-01" / "eeg" / "sub-01_space-CapTrak_electrodes.tsv").exists()


def test_groundtruth_consistent_with_files(tiny_bids):
    root = tiny_bids
    gt = load_groundtruth(root, "02")
    mask = np.asarray(nib.load(root / "derivatives/groundtruth/mask.nii.gz").dataobj) > 0
    bold = np.asarray(nib.load(root / "sub-02/func/sub-02_task-rest_run-1_bold.nii.gz").dataobj)
    inside = bold[mask].T  # (n_vols, n_vox)
    rebuilt = gt["baseline"][None, :] * (1 + (gt["bold_clean"] + gt["noise"] + gt["drift"]) / 100.0)
    np.testing.assert_allclose(inside, rebuilt, rtol=1e-4)
    assert gt["leadfield"].shape == (TINY["n_channels"], TINY["n_regions"])
    assert gt["envelopes"].shape[1:] == (TINY["n_regions"], 4)
    raw = _read_raw(root, "02")
    onsets = np.array([a["onset"] for a in raw.annotations if a["description"].endswith("R128")])
    np.testing.assert_allclose(onsets, gt["volume_onsets_eeg"], atol=1.0 / TINY["sfreq"])
    meta = json.loads((root / "derivatives/groundtruth/simulation.json").read_text())
    assert meta["config"]["seed"] == TINY["seed"] and len(meta["channels"]) == TINY["n_channels"]
    c = ceilings(gt)
    assert np.nanmedian(c["oracle"]) < np.nanmedian(c["noise"])


def test_deterministic_by_seed(tmp_path, tiny_bids):
    small = {**TINY, "n_subjects": 1}
    a = simulate_dataset(tmp_path / "a", progress_bar=False, **small)
    b = simulate_dataset(tmp_path / "b", progress_bar=False, **{**small, "seed": small["seed"] + 1})
    f = "sub-01/func/sub-01_task-rest_run-1_bold.nii.gz"
    e = "sub-01/eeg/sub-01_task-rest_run-1_eeg.eeg"
    ref = tiny_bids  # same seed, first subject
    np.testing.assert_array_equal(nib.load(a / f).get_fdata(), nib.load(ref / f).get_fdata())
    assert (a / e).read_bytes() == (ref / e).read_bytes()
    assert not np.array_equal(nib.load(a / f).get_fdata(), nib.load(b / f).get_fdata())


def test_noise_ceiling_realistic_by_default():
    """Default noise levels give a median voxel noise ceiling in the range real studies report."""
    cfg = SimulationConfig()
    assert cfg.n_channels >= 32 and cfg.montage == "easycap-M1"
    # checked on the tiny dataset's parameters: clean vs noise variance
    rng = np.random.default_rng(0)
    gain = 0.25 + 0.75 * rng.uniform(0, 1, 5000)
    clean_sd = cfg.psc * gain
    noise_sd = np.sqrt(cfg.physio_noise**2 + (cfg.thermal_noise * 1000 / 1000) ** 2)
    r = clean_sd / np.sqrt(clean_sd**2 + noise_sd**2)
    assert 0.4 <= np.median(r) <= 0.75


def test_ceilings_on_tiny(tiny_bids):
    gt = load_groundtruth(tiny_bids, "01")
    c = ceilings(gt)
    med_noise, med_oracle = np.nanmedian(c["noise"]), np.nanmedian(c["oracle"])
    assert 0.3 < med_noise < 0.8
    assert 0.1 < med_oracle < med_noise


@pytest.mark.slow
def test_default_noise_ceiling_measured(tmp_path):
    root = simulate_dataset(tmp_path / "d", n_subjects=1, minutes=5, progress_bar=False)
    c = ceilings(load_groundtruth(root, "01"))
    assert 0.4 <= np.nanmedian(c["noise"]) <= 0.7


def test_coupling_recoverable_from_true_envelopes(tmp_path):
    """A ridge on the true (HRF-convolved) band envelopes approaches the oracle ceiling."""
    from sklearn.linear_model import RidgeCV

    from eeg2fmri.evaluation.metrics import pearson_r
    from eeg2fmri.simulate.hrf import double_gamma_hrf

    root = simulate_dataset(tmp_path / "long", **{**TINY, "n_subjects": 1, "minutes": 30.0, "artifacts": False}, progress_bar=False)
    gt = load_groundtruth(root, "01")
    env = np.log(gt["envelopes"]).reshape(len(gt["envelopes"]), -1)
    h = double_gamma_hrf(0.1)
    conv = np.stack([np.convolve(e, h)[: len(e)] for e in env.T], 1)
    idx = np.round((gt["acquisition_times"] - gt["t_neural"][0]) * 10).astype(int)
    x = conv[idx]
    y = gt["bold_clean"] + gt["noise"]
    n = len(x)
    cut = int(0.7 * n)
    pred = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x[:cut], y[:cut]).predict(x[cut:])
    r = np.nanmedian(pearson_r(y[cut:], pred))
    oracle = np.nanmedian(ceilings(gt, np.arange(cut, n), detrend=False)["oracle"])
    assert r > 0.75 * oracle
    # and a ridge on shuffled envelopes does not
    perm = np.random.default_rng(0).permutation(len(x))
    pred0 = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(x[perm][:cut], y[:cut]).predict(x[perm][cut:])
    assert np.nanmedian(pearson_r(y[cut:], pred0)) < 0.3 * oracle


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(minutes=0), r"expected minutes > 0, got 0"),
        (dict(minutes=-2), r"expected minutes > 0"),
        (dict(n_subjects=0), r"expected n_subjects to be an integer >= 1, got 0"),
        (dict(montage="nope"), r"unknown montage 'nope'; choose one of"),
        (dict(n_channels=500), r"usable channels, expected at least n_channels=500"),
        (dict(marker="S1"), r"expected marker like 'R128'"),
        (dict(minutes=0.1), r"expected at least 10 volumes per run"),
        (dict(bands={"x": (10.0, 80.0)}, coupling={"x": 1.0}, band_amplitude={"x": 1.0}, sfreq=100.0), r"expected band 'x' within"),
        (dict(hrf_peak_range=(9.0, 4.0)), r"expected hrf_peak_range as \(low, high\) with 2.0 <= low <= high <= 12.0, got \(9.0, 4.0\)"),
        (dict(hrf_undershoot_range=(0.1,)), r"expected hrf_undershoot_range as \(low, high\)"),
        (dict(bold_nonlinearity="cubic"), r"unknown bold_nonlinearity 'cubic'"),
        (dict(subject_variability=-1.0), r"expected subject_variability in \[0, 5\], got -1.0"),
        (dict(driven_regions=0.0), r"expected driven_regions as a fraction in \(0, 1\], got 0.0"),
        (dict(driven_regions=1.5), r"expected driven_regions as a fraction in \(0, 1\], got 1.5"),
        (dict(driven_regions=True), r"expected driven_regions as a fraction in \(0, 1\], got True"),
    ],
)
def test_invalid_settings(tmp_path, kwargs, match):
    with pytest.raises(Eeg2fmriInputError, match=match):
        simulate_dataset(tmp_path / "x", progress_bar=False, **{**TINY, **kwargs})
    assert not (tmp_path / "x").exists()


def test_existing_output_not_overwritten(tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "mine.txt").write_text("user data")
    with pytest.raises(Eeg2fmriInputError, match="already exists; choose another path or pass overwrite=True"):
        simulate_dataset(out, progress_bar=False, **TINY)
    assert (out / "mine.txt").read_text() == "user data"


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch):
    import eeg2fmri.simulate.simulator as sim

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim, "_write_bold", boom)
    with pytest.raises(KeyboardInterrupt):
        simulate_dataset(tmp_path / "half", progress_bar=False, **TINY)
    assert list(tmp_path.iterdir()) == []


def test_other_formats_and_options(tmp_path):
    root = simulate_dataset(tmp_path / "edf", **{**TINY, "n_subjects": 1, "minutes": 1.0, "eeg_format": "EDF", "task": "blocks", "hemodynamics": "balloon"}, progress_bar=False)
    edf = list((root / "sub-01" / "eeg").glob("*_eeg.edf"))
    assert len(edf) == 1
    events = (root / "sub-01/func/sub-01_task-blocks_run-1_events.tsv").read_text().splitlines()
    assert events[0] == "onset\tduration\ttrial_type" and len(events) > 1
    raw = mne.io.read_raw_edf(edf[0], verbose=False)
    assert raw.info["sfreq"] == TINY["sfreq"]


def test_robustness_options(tmp_path, tiny_bids):
    """HRFs far from canonical, saturating coupling and per-subject parcellations do what they say."""
    kw = {**TINY, "hrf_peak_range": (4.0, 9.0), "hrf_undershoot_range": (0.0, 0.5), "bold_nonlinearity": "saturating", "subject_variability": 1.0}
    root = simulate_dataset(tmp_path / "r", progress_bar=False, **kw)
    params = [json.loads((root / "derivatives" / "groundtruth" / f"sub-{s}" / f"sub-{s}_parameters.json").read_text()) for s in ("01", "02")]
    for p in params:
        assert 4.0 <= min(p["hrf"]["delay"]) and max(p["hrf"]["delay"]) <= 9.0 and np.ptp(p["hrf"]["delay"]) > 2.0
        assert 0.0 <= min(p["hrf"]["undershoot"]) and max(p["hrf"]["undershoot"]) <= 0.5
    g = [load_groundtruth(root, s) for s in ("01", "02")]
    # per-subject parcellations: the same brain mask, different region labels
    assert g[0]["labels"].shape == g[1]["labels"].shape and not np.array_equal(g[0]["labels"], g[1]["labels"])
    ref = load_groundtruth(tiny_bids, "01")
    assert not np.array_equal(g[0]["labels"], ref["labels"])
    # saturating: with the same draws, the clean BOLD follows tanh(1.5 d) / 1.5 of the drive, not d
    lin = simulate_dataset(tmp_path / "lin", progress_bar=False, **{**kw, "n_subjects": 1, "bold_nonlinearity": "linear"})
    a, b = g[0]["bold_clean"], load_groundtruth(lin, "01")["bold_clean"]
    r = [np.corrcoef(a[:, v], b[:, v])[0, 1] for v in range(0, a.shape[1], 7)]
    assert 0.5 < np.median(r) < 0.995
    m = nib.load(root / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz").get_fdata().mean(-1) > 0
    m2 = nib.load(tiny_bids / "sub-01" / "func" / "sub-01_task-rest_run-1_bold.nii.gz").get_fdata().mean(-1) > 0
    np.testing.assert_array_equal(m, m2)


def test_driven_regions_focal(tmp_path, tiny_bids):
    """driven_regions < 1: only that fraction of regions carries its drive into the BOLD (recorded in the ground truth);
    the other regions' voxels have no drive and no EEG-visible BOLD; the EEG and the default simulation are unchanged."""
    root = simulate_dataset(tmp_path / "f", progress_bar=False, **{**TINY, "driven_regions": 0.25})
    g = load_groundtruth(root, "01")
    ref = load_groundtruth(tiny_bids, "01")
    driven = g["driven"]
    assert driven.dtype == bool and driven.shape == (TINY["n_regions"],) and driven.sum() == 2  # round(0.25 * 8)
    assert ref["driven"].all()  # the default drives every region
    meta = json.loads((root / "derivatives" / "groundtruth" / "simulation.json").read_text())
    assert meta["config"]["driven_regions"] == 0.25 and np.array_equal(np.asarray(meta["group"]["driven"]), driven)
    lab = g["labels"]
    off = ~driven[lab]
    assert np.abs(g["bold_visible"][:, off]).max() == 0.0 and np.abs(g["bold_visible"][:, ~off]).std() > 0.1
    # undriven voxels: only their voxel-specific part (smaller variance); driven voxels as in the default simulation
    np.testing.assert_allclose(g["bold_clean"][:, ~off], ref["bold_clean"][:, ~off], rtol=1e-5, atol=1e-6)
    assert g["bold_clean"][:, off].std() < 0.8 * ref["bold_clean"][:, off].std()
    np.testing.assert_array_equal(g["drive_visible"], ref["drive_visible"])


@pytest.mark.parametrize("name", ["data", "eeg_test"])
def test_simulate_writes_into_folders_named_like_eeg_file_extensions(tmp_path, name):
    """User test 9: `eeg2fmri simulate data` failed with FileNotFoundError (mne_bids rewrites '.dat' -> '.lay' and
    '.eeg' -> '.vhdr' anywhere in a source path, and the EEG was staged inside the output's temporary '.data.tmp-...'
    folder). Both simulators stage it elsewhere now."""
    from eeg2fmri.simulate import simulate_neural_mass_dataset

    root = simulate_dataset(tmp_path / name, progress_bar=False, **{**TINY, "n_subjects": 1, "minutes": 1.0})
    assert len(list(root.glob("sub-01/eeg/*_eeg.vhdr"))) == 1 and not list(root.glob(".scratch"))
    nm = simulate_neural_mass_dataset(tmp_path / "nm" / name, n_subjects=1, minutes=1.0, voxel_size=12.0, n_channels=8, sfreq=125.0,
                                      seed=3, n_regions=10, progress_bar=False)
    assert len(list(nm.glob("sub-01/eeg/*_eeg.vhdr"))) == 1
