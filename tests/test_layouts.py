"""Published dataset layouts: tiny fixtures that reproduce each layout on disk (names, folders, quirks)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.io import RunRecord, volume_onsets
from eeg2fmri.io.layouts import (
    LayoutRun,
    check_layout,
    detect_layout,
    find_runs_layout,
    get_layout,
    layout_volume_onsets,
    list_layouts,
    read_layout_bold,
    read_layout_eeg,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError

# BrainCap MR order shared by NODDI, XP1/XP2 raw and ds002158 (ECG is channel 32).
BRAINCAP = (
    "Fp1 Fp2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T7 T8 P7 P8 Fz Cz Pz Oz FC1 FC2 CP1 CP2 FC5 FC6 CP5 CP6 TP9 TP10 POz ECG "
    "F1 F2 C1 C2 P1 P2 AF3 AF4 FC3 FC4 CP3 CP4 PO3 PO4 F5 F6 C5 C6 P5 P6 AF7 AF8 FT7 FT8 TP7 TP8 PO7 PO8 FT9 FT10 Fpz CPz"
).split()


# ---------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------
def write_bv(folder: Path, stem: str, data_uv: np.ndarray, sfreq: float, ch_names, markers, *, data_ext=".eeg", datafile=None,
             markerfile=None, fmt="IEEE_FLOAT_32", orientation="MULTIPLEXED", resolution=1.0, write_data=True) -> Path:
    """A BrainVision triplet as Recorder/Analyzer write it; markers = [(type, description, sample0), ...]."""
    folder.mkdir(parents=True, exist_ok=True)
    n_ch, n = data_uv.shape
    assert n_ch == len(ch_names)
    if fmt == "INT_16":
        arr = np.round(data_uv / resolution).astype("<i2")
    else:
        arr = (data_uv / resolution).astype("<f4")
    if write_data:
        (folder / f"{stem}{data_ext}").write_bytes((arr.T if orientation == "MULTIPLEXED" else arr).tobytes())
    datafile = datafile or f"{stem}{data_ext}"
    markerfile = markerfile or f"{stem}.vmrk"
    chans = "\n".join(f"Ch{i + 1}={c},,{resolution},µV" for i, c in enumerate(ch_names))
    points = f"DataPoints={n}\n" if orientation == "VECTORIZED" else ""
    (folder / f"{stem}.vhdr").write_text(
        "Brain Vision Data Exchange Header File Version 1.0\n; Data created by the Vision Recorder\n\n"
        f"[Common Infos]\nCodepage=UTF-8\nDataFile={datafile}\nMarkerFile={markerfile}\nDataFormat=BINARY\n"
        f"DataOrientation={orientation}\nNumberOfChannels={n_ch}\n{points}SamplingInterval={1e6 / sfreq:g}\n\n"
        f"[Binary Infos]\nBinaryFormat={fmt}\n\n[Channel Infos]\n{chans}\n",
        encoding="utf-8",
    )
    mk = ["Mk1=New Segment,,1,1,0,20130410120000000000"] + [f"Mk{i + 2}={t},{d},{s + 1},1,0" for i, (t, d, s) in enumerate(markers)]
    (folder / f"{stem}.vmrk").write_text(
        f"Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\nDataFile={datafile}\n\n[Marker Infos]\n" + "\n".join(mk) + "\n",
        encoding="utf-8",
    )
    return folder / f"{stem}.vhdr"


def write_bold(path: Path, shape, tr: float, seed: int = 0, sidecar: dict | None = None) -> Path:
    import nibabel as nib

    rng = np.random.default_rng(seed)
    img = nib.Nifti1Image((100 + rng.normal(size=shape)).astype(np.float32), np.diag([3.0, 3.0, 4.0, 1.0]))
    img.header.set_zooms((3.0, 3.0, 4.0, tr))
    img.header.set_xyzt_units("mm", "sec")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, path)
    if sidecar is not None:
        path.with_name(path.name.split(".nii")[0] + ".json").write_text(json.dumps(sidecar))
    return path


def eeg_uv(n_ch: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(scale=20.0, size=(n_ch, n))


# ---------------------------------------------------------------------------------------------
# NODDI
# ---------------------------------------------------------------------------------------------
NODDI_SF, NODDI_TR, NODDI_NVOL, NODDI_FIRST = 250.0, 2.16, 7, 0.144


def noddi_markers(n_samples: int) -> list:
    sf = NODDI_SF
    mk = [("Scanner", "Scanner Start", 0), ("SyncStatus", "Sync On", 3)]
    for k in range(NODDI_NVOL):
        s0 = int(round((NODDI_FIRST + k * NODDI_TR) * sf))
        mk.append(("Scanner", "Scan Start", s0))
        mk += [("Scanner", "s ", s0 + 18 * j) for j in range(3)]
    mk += [("Pulse Artifact", "R", s) for s in range(100, n_samples, 260)]
    return sorted(mk, key=lambda m: m[2])


def build_noddi(root: Path, subjects=("32", "35", "40", "50")) -> Path:
    n = 3900  # 15.6 s > 0.144 + 7 * 2.16
    names = {
        "32": ("EEG1", "20130410320002_Segmentation_bin"),
        "35": ("EEG1", "20130417350002_Pulse_Artifact_Correction_bin"),
        "40": ("EEG2", "20130522400002_Pulse_Artifact_Correction_bin"),
        "50": ("EEG2", "20131003_500002_Pulse_Artifact_Correction_bin"),
    }
    for i, sid in enumerate(subjects):
        folder, stem = names[sid]
        # Analyzer export: .dat binary, vectorized float32; subject 32's header still names the pre-export file
        stale = f"{stem.replace('_bin', '')}.eeg" if sid == "32" else None
        write_bv(root / folder / sid / "export", stem, eeg_uv(64, n, i), NODDI_SF, BRAINCAP, noddi_markers(n), data_ext=".dat",
                 datafile=stale, orientation="VECTORIZED")
        raw_stem = stem.split("_")[0] if sid != "50" else "20131003_500002"
        write_bv(root / folder / sid / "raw", raw_stem, eeg_uv(64, 500, 9), 5000.0 / 10, BRAINCAP, [], fmt="INT_16", resolution=0.5)
        if sid == "50":
            continue  # subject 50: EEG but no fMRI in this fixture
        prefix = ("04", "05") if sid == "40" else ("2", "3")
        write_bold(root / "fMRI" / sid / f"{prefix[0]}_fl3D_t1_sag_fun_defaced.nii.gz", (7, 6, 5, 2), 1.0, seed=i)
        write_bold(root / "fMRI" / sid / f"{prefix[1]}_nw_mepi_rest_with_cross.nii.gz", (5, 6, 4, NODDI_NVOL), NODDI_TR, seed=i)
    return root


@pytest.fixture(scope="module")
def noddi_root(tmp_path_factory):
    return build_noddi(tmp_path_factory.mktemp("noddi") / "NODDI")


def test_noddi_pairing(noddi_root):
    assert detect_layout(noddi_root) == "noddi"
    runs = find_runs_layout(noddi_root, layout="auto")
    assert [r.subject for r in runs] == ["32", "40"]  # 35 excluded (broken), 50 has no fMRI
    r32, r40 = runs
    assert r32.eeg_path.name == "20130410320002_Segmentation_bin.vhdr" and r32.eeg_path.parent.name == "export"
    assert r40.bold_path.name == "05_nw_mepi_rest_with_cross.nii.gz"
    assert r40.meta["eeg_folder"] == "EEG2"
    assert (r32.layout, r32.marker, r32.tr, r32.task, r32.key) == ("noddi", ("Scanner/Scan Start",), 2.16, "rest", "sub-32_task-rest")
    with_35 = find_runs_layout(noddi_root, layout="noddi", include_broken=True)
    assert [r.subject for r in with_35] == ["32", "35", "40"]
    assert [r.subject for r in find_runs_layout(noddi_root, layout="noddi", subjects=["sub-40"])] == ["40"]
    with pytest.raises(Eeg2fmriInputError, match=r"strict pairing failed.*subject 50: EEG but no fMRI"):
        find_runs_layout(noddi_root, layout="noddi", strict=True)


def test_noddi_read_eeg_bold_and_sync(noddi_root):
    run = find_runs_layout(noddi_root, layout="noddi", subjects=["32"])[0]
    raw = read_layout_eeg(run)  # stale DataFile= repaired: the .dat beside the header is read
    assert raw.info["sfreq"] == NODDI_SF and raw.n_times == 3900
    assert raw.ch_names == BRAINCAP
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    assert types["ECG"] == "ecg" and sum(t == "eeg" for t in types.values()) == 63
    img, tr = read_layout_bold(run)
    assert tr == pytest.approx(2.16) and img.shape == (5, 6, 4, NODDI_NVOL)
    rep = volume_onsets(raw, img.shape[3], tr, marker=run.marker)
    assert rep.n_markers == NODDI_NVOL and rep.onsets[0] == pytest.approx(NODDI_FIRST)
    sync = layout_volume_onsets(run, raw, img.shape[3], tr)
    np.testing.assert_allclose(sync.onsets, NODDI_FIRST + NODDI_TR * np.arange(NODDI_NVOL), atol=1 / NODDI_SF)
    assert sync.volumes == slice(0, NODDI_NVOL)
    # "Scanner/Scanner Start" and "Scanner/s " are not volume markers
    assert "Scanner/Scanner Start" in set(raw.annotations.description)


def test_noddi_errors(tmp_path):
    root = build_noddi(tmp_path / "NODDI", subjects=("32",))
    (root / "EEG1/32/export/20130410320002_Segmentation_bin.dat").unlink()
    run = find_runs_layout(root, layout="noddi")[0]
    with pytest.raises(Eeg2fmriInputError, match=r"names DataFile='20130410320002_Segmentation.eeg'.*found neither"):
        read_layout_eeg(run)
    chk = check_layout(root)
    assert chk.layout == "noddi" and not chk.ok and "found neither" in chk.problems[0]
    shutil.rmtree(root / "fMRI")
    with pytest.raises(Eeg2fmriInputError, match=r"expected fMRI/<id>/\*rest_with_cross.nii.gz, found no fMRI/ folder"):
        find_runs_layout(root, layout="noddi")


# ---------------------------------------------------------------------------------------------
# ds000116 (legacy .mat)
# ---------------------------------------------------------------------------------------------
DS116_NVOL, DS116_SF = 4, 1000


def ds116_arrays(n_rows_eeg: int, extra: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    arr = np.zeros((n_rows_eeg + extra, n))
    arr[: n_rows_eeg + extra - 2] = rng.normal(scale=15.0, size=(n_rows_eeg + extra - 2, n))  # microvolts
    stim, behav = arr[-2], arr[-1]
    stim[500:505], stim[3000:3005] = 125, 150  # stimulus pulses
    behav[3400:3410] = 100  # button press
    return arr


def build_ds116(root: Path) -> Path:
    from scipy.io import savemat

    n = DS116_NVOL * 2 * DS116_SF  # exactly n_volumes x TR: sample 0 is volume 0
    for s, (sub, tasks) in enumerate({"sub001": ("task001_run001", "task002_run002"), "sub002": ("task001_run001",)}.items()):
        for t, tr_dir in enumerate(tasks):
            d = root / sub / "EEG" / tr_dir
            d.mkdir(parents=True)
            savemat(d / "EEG_rereferenced.mat", {"data_reref": ds116_arrays(35, 2, n, 10 * s + t)})
            savemat(d / "EEG_noGA.mat", {"data_noGA": ds116_arrays(47, 2, n, 10 * s + t + 5)})
            (root / sub / "behav" / tr_dir).mkdir(parents=True)
            (root / sub / "behav" / tr_dir / "behavdata.txt").write_text("TrialOnset Behavior RT\n0.5 1 0.4\n")
            (root / sub / "model/model001/onsets" / tr_dir).mkdir(parents=True)
            (root / sub / "model/model001/onsets" / tr_dir / "cond001.txt").write_text("0.5 0 1\n")
            if sub == "sub002":
                continue  # EEG without BOLD
            write_bold(root / sub / "BOLD" / tr_dir / "bold.nii.gz", (6, 5, 3, DS116_NVOL), 2.0, seed=t)
            write_bold(root / sub / "BOLD" / tr_dir / "bold_mcf_brain.nii.gz", (6, 5, 3, DS116_NVOL), 2.0, seed=t + 1)
    return root


@pytest.fixture(scope="module")
def ds116_root(tmp_path_factory):
    return build_ds116(tmp_path_factory.mktemp("ds116") / "ds116")


def test_ds000116_pairing_and_reading(ds116_root):
    assert detect_layout(ds116_root) == "ds000116"
    runs = find_runs_layout(ds116_root, layout="auto")
    assert [(r.subject, r.task, r.run) for r in runs] == [("001", "auditory", "1"), ("001", "visual", "2")]
    run = runs[0]
    assert run.bold_path.name == "bold.nii.gz" and run.eeg_path.name == "EEG_rereferenced.mat"
    assert (run.marker, run.first_onset, run.tr, run.meta["legacy_task"]) == (None, 0.0, 2.0, "task001")
    raw = read_layout_eeg(run)
    assert raw.info["sfreq"] == DS116_SF and len(raw.ch_names) == 37 and raw.n_times == 8000
    assert raw.ch_names[:3] == ["Fp1", "Fp2", "AF3"] and raw.ch_names[-3:] == ["ECG", "STI stim", "STI behav"]
    types = raw.get_channel_types()
    assert types.count("eeg") == 34 and types[-3:] == ["ecg", "stim", "stim"]
    # microvolts -> volts; codes untouched
    src = ds116_arrays(35, 2, 8000, 0)
    np.testing.assert_allclose(raw.get_data(picks=[0])[0], src[0] * 1e-6)
    assert raw.get_data(picks=["STI stim"])[0, 500] == 125
    ann = list(zip(np.round(raw.annotations.onset, 3), raw.annotations.description))
    assert ann == [(0.5, "Stimulus/S125"), (3.0, "Stimulus/S150"), (3.4, "Response/R100")]
    img, tr = read_layout_bold(run)
    assert tr == 2.0
    sync = layout_volume_onsets(run, raw, img.shape[3], tr)  # EEG exactly as long as the scan
    np.testing.assert_allclose(sync.onsets, [0.0, 2.0, 4.0, 6.0])
    assert sync.report.method == "regular" and sync.volumes == slice(0, DS116_NVOL)


def test_ds000116_variants_and_errors(ds116_root, tmp_path):
    runs = find_runs_layout(ds116_root, layout="ds000116", variant="noGA", bold="bold_mcf_brain")
    raw = read_layout_eeg(runs[0])
    assert len(raw.ch_names) == 49 and raw.ch_names[0] == "C3-T7" and raw.ch_names[42] == "Pz-Oz"
    assert raw.get_channel_types()[43:] == ["eog", "eog", "ecg", "ecg", "stim", "stim"]
    assert runs[0].bold_path.name == "bold_mcf_brain.nii.gz"
    with pytest.raises(Eeg2fmriInputError, match=r"variant='clean'; expected one of"):
        find_runs_layout(ds116_root, layout="ds000116", variant="clean")
    with pytest.raises(Eeg2fmriInputError, match=r"unknown option\(s\) \['eeg'\]"):
        find_runs_layout(ds116_root, layout="ds000116", eeg="raw")
    from scipy.io import savemat

    bad = tmp_path / "sub003/EEG/task001_run001"
    bad.mkdir(parents=True)
    savemat(bad / "EEG_rereferenced.mat", {"EEG": np.zeros((37, 10))})
    run = dataclasses.replace(runs[0], eeg_path=bad / "EEG_rereferenced.mat")
    with pytest.raises(Eeg2fmriInputError, match=r"expected the variable 'data_reref', found \['EEG'\]"):
        read_layout_eeg(run)
    savemat(bad / "EEG_rereferenced.mat", {"data_reref": np.zeros((12, 10))})
    with pytest.raises(Eeg2fmriInputError, match=r"expected data_reref shaped \(37 channels, n_samples\), got \(12, 10\)"):
        read_layout_eeg(run)
    short = dataclasses.replace(runs[0], eeg_path=ds116_root / "sub001/EEG/task001_run001/EEG_rereferenced.mat")
    raw = read_layout_eeg(short)
    with pytest.raises(Eeg2fmriInputError, match=r"EEG is 8.000 s long but 5 volumes(.|\n)*The EEG covers the first 4 of the 5 volumes \(1 without EEG\)"):
        layout_volume_onsets(short, raw, 5, 2.0)


# ---------------------------------------------------------------------------------------------
# CWL (EEGLAB .set)
# ---------------------------------------------------------------------------------------------
CWL_SF, CWL_TR, CWL_NVOL = 250.0, 1.95, 6
CWL_SCALP = "Fp1 Fp2 F3 F4 C3 C4 P3 P4 O1 O2 F7 F8 T7 T8 P7 P8 Fz Cz Pz Oz FC1 FC2 CP1 CP2 FC5 FC6 CP5 CP6 TP9 TP10".split()
CWL_CH = CWL_SCALP + ["EOG", "ECG"] + [f"CW{i}" for i in range(1, 7)]


def build_cwl(root: Path) -> Path:
    import mne

    data = root / "trio1" / "CWL_Data"
    n = int(13.0 * CWL_SF)
    info = mne.create_info(CWL_CH, CWL_SF, "eeg")
    raw = mne.io.RawArray(eeg_uv(len(CWL_CH), n, 3) * 1e-6, info, verbose=False)
    mri = [0.4 + CWL_TR * k for k in range(CWL_NVOL - 1)]  # one marker fewer than volumes (as trio1: 143 for 146)
    extra = [(0.9, "R"), (1.7, "R"), (2.0, "S  1"), (2.1, "beo"), (9.0, "eeo")]
    on = mri + [e[0] for e in extra]
    desc = ["mri"] * len(mri) + [e[1] for e in extra]
    order = np.argsort(on)
    raw.set_annotations(mne.Annotations(np.asarray(on)[order], np.zeros(len(on)), np.asarray(desc)[order]))
    (data / "eeg" / "in-scan").mkdir(parents=True)
    for pump in ("off", "on"):
        mne.export.export_raw(data / "eeg" / "in-scan" / f"trio1_mrcorrected_eoec_in-scan_hpump-{pump}.set", raw, fmt="eeglab", verbose=False)
    write_bold(data / "mri" / "epi_normalized" / "rwatrio1_eoec_in-scan_hpump-off.nii", (6, 7, 5, CWL_NVOL), 1.0, seed=4)
    (data / "mri" / "epi_motionparams").mkdir(parents=True)
    (data / "mri" / "epi_motionparams" / "rp_atrio1_eoec_in-scan_hpump-off.txt").write_text("  0  0  0  0  0  0\n" * CWL_NVOL)
    return root


@pytest.fixture(scope="module")
def cwl_root(tmp_path_factory):
    return build_cwl(tmp_path_factory.mktemp("cwl") / "CWL")


def test_cwl(cwl_root):
    assert detect_layout(cwl_root) == "cwl" and detect_layout(cwl_root / "trio1" / "CWL_Data") == "cwl"
    runs = find_runs_layout(cwl_root, layout="cwl")
    assert [(r.subject, r.task, r.run) for r in runs] == [("trio1", "eoec", "hpumpoff")]  # hpump-on has no BOLD
    run = runs[0]
    assert run.meta["motion"].endswith("rp_atrio1_eoec_in-scan_hpump-off.txt")
    raw = read_layout_eeg(run)
    types = dict(zip(raw.ch_names, raw.get_channel_types()))
    assert (types["EOG"], types["ECG"], types["CW1"], types["CW6"], types["Fz"]) == ("eog", "ecg", "misc", "misc", "eeg")
    assert raw.info["sfreq"] == CWL_SF
    img, tr = read_layout_bold(run)
    assert tr == CWL_TR  # fixed: the normalised files' header says 1.0
    with pytest.raises(Eeg2fmriInputError, match=r"found 5 'mri' markers but the BOLD run has 6 volumes"):
        volume_onsets(raw, img.shape[3], tr, marker=run.marker)
    sync = layout_volume_onsets(run, raw, img.shape[3], tr)
    assert sync.volumes == slice(0, CWL_NVOL - 1)
    np.testing.assert_allclose(sync.onsets, 0.4 + CWL_TR * np.arange(CWL_NVOL - 1), atol=1 / CWL_SF)
    assert "keeping the first 5 volumes" in sync.report.notes[-1]


# ---------------------------------------------------------------------------------------------
# ds002336 (XP1) and ds002338 (XP2)
# ---------------------------------------------------------------------------------------------
XP_RAW_SF, XP_PP_SF = 500.0, 200.0
XP1_TR, XP1_NVOL, XP1_T0, XP1_S99, XP1_PP_DUR = 2.0, 8, 0.6, 2.3, 13.0


def xp_runs(root: Path, sub: str, label: str, tr: float, nvol: int, *, bold=True, raw=True, pp=True, pp_prefix="", seed=0):
    raw_n = int((XP1_T0 + nvol * tr + 1.4) * XP_RAW_SF)
    vol = [XP1_T0 + k * tr for k in range(nvol)]
    mk = [("Stimulus", "S 99", int(XP1_S99 * XP_RAW_SF)), ("Stimulus", "S  2", int((XP1_S99 + 4) * XP_RAW_SF))]
    mk += [("Response", "R128", int(round(t * XP_RAW_SF))) for t in vol]
    if raw:
        write_bv(root / f"sub-{sub}" / "eeg", f"sub-{sub}_{label}_eeg", eeg_uv(64, raw_n, seed), XP_RAW_SF, BRAINCAP,
                 sorted(mk, key=lambda m: m[2]), fmt="INT_16", resolution=0.5)
    if pp:
        pp_n = int(XP1_PP_DUR * XP_PP_SF)
        pmk = [("Stimulus", "S 99", 0)] + [("Response", "R128", int(round((t - XP1_S99) * XP_PP_SF))) for t in vol if 0 <= t - XP1_S99 < XP1_PP_DUR]
        pmk += [("Pulse Artifact", "R", s) for s in range(40, pp_n, 170)]
        pp_ch = [c for c in BRAINCAP if c != "ECG"] + ["ECG"]  # ECG last in eeg_pp (as the EEG-to-fMRI package lists it)
        write_bv(root / "derivatives" / f"sub-{sub}" / "eeg_pp", f"{pp_prefix}sub-{sub}_{label}_eeg_pp", eeg_uv(64, pp_n, seed + 1),
                 XP_PP_SF, pp_ch, sorted(pmk, key=lambda m: m[2]), data_ext=".dat")
    if bold:
        write_bold(root / f"sub-{sub}" / "func" / f"sub-{sub}_{label}_bold.nii.gz", (5, 4, 3, nvol), tr, seed=seed,
                   sidecar={"RepetitionTime": tr, "TaskName": label.split("_")[0][5:]})


def build_xp1(root: Path) -> Path:
    xp_runs(root, "xp101", "task-motorloc", XP1_TR, XP1_NVOL, seed=1)
    xp_runs(root, "xp101", "task-MIpre", XP1_TR, XP1_NVOL, raw=False, pp=False, seed=2)  # no MIpre EEG (BOLD only)
    xp_runs(root, "xp102", "task-eegNF", XP1_TR, XP1_NVOL, bold=False, seed=3)  # no eegNF BOLD
    xp_runs(root, "xp102", "task-motorloc", XP1_TR, XP1_NVOL, pp=False, seed=4)  # no motorloc eeg_pp
    xp_runs(root, "xp102", "task-fmriNF", XP1_TR, XP1_NVOL, seed=5)
    for t in ("motorloc", "MIpre", "eegNF", "fmriNF"):
        (root / f"task-{t}_bold.json").write_text(json.dumps({"RepetitionTime": XP1_TR, "TaskName": t}))
        (root / f"task-{t}_channels.tsv").write_text("name\ttype\tunits\n" + "".join(f"{c}\t{'ECG' if c == 'ECG' else 'EEG'}\tµV\n" for c in BRAINCAP))
    (root / "participants.tsv").write_text("participant_id\nsub-xp101\nsub-xp102\n")
    return root


@pytest.fixture(scope="module")
def xp1_root(tmp_path_factory):
    return build_xp1(tmp_path_factory.mktemp("xp1") / "ds002336")


def test_xp1_pairing(xp1_root):
    assert detect_layout(xp1_root) == "ds002336"
    runs = find_runs_layout(xp1_root, layout="ds002336")
    assert [(r.subject, r.task) for r in runs] == [("xp101", "motorloc"), ("xp102", "fmriNF")]  # fmriNF never matches eegfmriNF
    assert runs[0].eeg_path.parent.name == "eeg_pp" and runs[0].meta["marker_source"].endswith("sub-xp101_task-motorloc_eeg.vhdr")
    from eeg2fmri.io.layouts import Scan  # noqa: F401  (public)

    sc = get_layout("ds002336").scan(xp1_root)
    text = " | ".join(sc.skipped)
    assert "sub-xp101_task-MIpre: BOLD but no EEG" in text
    assert "sub-xp102_task-eegNF: EEG (sub-xp102_task-eegNF_eeg_pp.vhdr) but no BOLD" in text
    assert "sub-xp102_task-motorloc: BOLD but no EEG derivatives/sub-*/eeg_pp/*_eeg_pp.vhdr (the raw EEG exists: eeg='raw' would use it)" in text
    raw_runs = find_runs_layout(xp1_root, layout="ds002336", eeg="raw", tasks=["motorloc"])
    assert [(r.subject, r.eeg_path.parent.name) for r in raw_runs] == [("xp101", "eeg"), ("xp102", "eeg")]
    # the same options from the command line (user test 17: only the Python API reached them)
    import argparse

    from eeg2fmri.commands._pairing import add_pairing_arguments, pairing_options

    ap = argparse.ArgumentParser()
    add_pairing_arguments(ap)
    opts = pairing_options(ap.parse_args(["--layout-option", "eeg=raw", 'tasks=["motorloc"]']))
    assert opts == {"eeg": "raw", "tasks": ["motorloc"]}
    assert [r.eeg_path for r in find_runs_layout(xp1_root, layout="ds002336", **opts)] == [r.eeg_path for r in raw_runs]
    with pytest.raises(Eeg2fmriInputError, match=r"--layout-option: expected KEY=VALUE, got 'raw'; e\.g\. --layout-option eeg=raw\."):
        pairing_options(ap.parse_args(["--layout-option", "raw"]))
    # the command datasets --check suggests repeats them (review: it dropped them)
    from eeg2fmri.io.layouts._base import _check_flags

    assert _check_flags({"eeg": "raw", "tasks": ["motorloc"], "subjects": ["xp101"]}) == " --layout-option eeg=raw 'tasks=[\"motorloc\"]'"
    assert pairing_options(ap.parse_args(["--layout-option", "eeg=raw", 'tasks=["motorloc"]'])) == {"eeg": "raw", "tasks": ["motorloc"]}
    # given twice: both kept (review: the last one replaced the first); one key twice is refused
    assert pairing_options(ap.parse_args(["--layout-option", "eeg=raw", "--layout-option", 'tasks=["motorloc"]'])) == opts
    with pytest.raises(Eeg2fmriInputError, match=r"--layout-option: 'eeg' given twice \('raw' and 'pp'\); give each option once\."):
        pairing_options(ap.parse_args(["--layout-option", "eeg=raw", "--layout-option", "eeg=pp"]))


def test_xp1_bold_from_fmriprep_derivatives(tmp_path):
    # user test 17 p3: XP1 subjects (each in its native space) could not be pooled through the layout
    root = build_xp1(tmp_path / "ds002336")
    fp = root / "derivatives" / "fmriprep"
    for sub, task in (("xp101", "motorloc"), ("xp102", "fmriNF")):
        for space in ("MNI152NLin2009cAsym", "T1w"):
            write_bold(fp / f"sub-{sub}" / "func" / f"sub-{sub}_task-{task}_space-{space}_desc-preproc_bold.nii.gz", (5, 4, 3, XP1_NVOL),
                       XP1_TR, seed=7, sidecar={"RepetitionTime": XP1_TR})
        (fp / f"sub-{sub}" / "func" / f"sub-{sub}_task-{task}_space-T1w_desc-brain_mask.nii.gz").write_bytes(b"")
    runs = find_runs_layout(root, layout="ds002336", derivatives="derivatives/fmriprep", space="MNI152NLin2009cAsym")
    assert [(r.subject, r.task, r.bold_path.name) for r in runs] == [
        ("xp101", "motorloc", "sub-xp101_task-motorloc_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"),
        ("xp102", "fmriNF", "sub-xp102_task-fmriNF_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz")]
    assert runs[0].eeg_path.parent.name == "eeg_pp"  # the EEG side is unchanged
    with pytest.raises(Eeg2fmriInputError, match=r"preprocessed BOLD in several spaces \['MNI152NLin2009cAsym', 'T1w'\]; choose one with "
                                                 r"space=<label> \(--layout-option space=MNI152NLin2009cAsym\)"):
        find_runs_layout(root, layout="ds002336", derivatives=str(fp))
    with pytest.raises(Eeg2fmriInputError, match=r"no preprocessed BOLD in space 'MNI'; found spaces \['MNI152NLin2009cAsym', 'T1w'\]"):
        find_runs_layout(root, layout="ds002336", derivatives=str(fp), space="MNI")
    with pytest.raises(Eeg2fmriInputError, match=r"ds002336: space='T1w' needs derivatives=<fMRIPrep folder>"):
        find_runs_layout(root, layout="ds002336", space="T1w")
    with pytest.raises(Eeg2fmriInputError, match=r"nowhere: expected fMRIPrep output of ds002336 .* found none \(the folder does not exist\)"):
        find_runs_layout(root, layout="ds002336", derivatives="nowhere")


def test_published_dataset_read_as_plain_bids_gets_a_hint(xp1_root, tmp_path, caplog):
    # user test 17 p9: ds002336 read without --layout took the raw 5 kHz EEG, never mentioning the layout and its eeg_pp
    import logging

    from eeg2fmri.datasets.prepared import _published_layout_hint

    with caplog.at_level(logging.INFO, logger="eeg2fmri"):  # (a warning the first time in a process, then info)
        _published_layout_hint(xp1_root)
    assert (f"{xp1_root}: looks like ds002336 (XP1) motor-imagery neurofeedback (Lioi 2020): 10 subjects, BrainVision 5 kHz / eeg_pp "
            "200 Hz, TR 2 s, read here as plain BIDS (--layout bids); --layout ds002336 (or --layout auto) reads it") in caplog.text
    caplog.clear()
    (tmp_path / "sub-01" / "eeg").mkdir(parents=True)
    # a BIDS dataset that merely has a task 'main' in sessions is not ds002158 (review: its detect matched any)
    (tmp_path / "sub-01" / "ses-1" / "eeg").mkdir(parents=True)
    (tmp_path / "sub-01" / "ses-1" / "eeg" / "sub-01_ses-1_task-main_run-1_eeg.vhdr").write_text("")
    with caplog.at_level(logging.INFO, logger="eeg2fmri"):
        _published_layout_hint(tmp_path)
    assert caplog.text == ""


def test_xp1_pp_is_placed_with_raw_markers(xp1_root):
    run = find_runs_layout(xp1_root, layout="ds002336", subjects=["xp101"])[0]
    raw = read_layout_eeg(run)
    assert raw.info["sfreq"] == XP_PP_SF and raw.ch_names[-1] == "ECG" and raw.get_channel_types()[-1] == "ecg"
    img, tr = read_layout_bold(run)
    assert tr == XP1_TR and run.tr is None  # from the run's sidecar
    sync = layout_volume_onsets(run, raw, img.shape[3], tr)
    # pp starts at S 99 (2.3 s): volume 0 (0.6 s) is before it, volume 7 ends after the 13 s segment
    assert sync.volumes == slice(1, 7)
    np.testing.assert_allclose(sync.onsets, XP1_T0 + XP1_TR * np.arange(1, 7) - XP1_S99, atol=1e-6)
    # synthesis from the same eeg_pp file: its first R128 (0.3 s into the segment) is measured volume 1, not 0 (user test 17)
    from eeg2fmri.io.layouts import segment_marker_volume

    first = XP1_T0 + XP1_TR - XP1_S99
    vol, why = segment_marker_volume(run.eeg_path, raw, first)
    assert vol == 1 and "the ds002336 layout places this segment with the raw recording's markers (sub-xp101_task-motorloc_eeg.vhdr)" in why
    assert segment_marker_volume(run.eeg_path, raw, first + 2 * XP1_TR)[0] == 3  # anchored on a later marker (dummy_scans)
    assert segment_marker_volume(run.eeg_path, raw, first + 0.37) is None  # not on a volume: no claim
    assert segment_marker_volume(run.bold_path, raw, first) is None  # a file the layout does not place as a segment
    plain = xp1_root / "sub-xp101" / "eeg" / "sub-xp101_task-motorloc_eeg.vhdr"
    assert segment_marker_volume(plain, raw, first) is None  # no derivatives/ above it
    assert any("covers volumes 1..6 of 8" in n for n in sync.report.notes)
    # the raw recording, read directly, has one R128 per volume
    rrun = find_runs_layout(xp1_root, layout="ds002336", eeg="raw", subjects=["xp101"])[0]
    rraw = read_layout_eeg(rrun)
    assert rraw.info["sfreq"] == XP_RAW_SF and rraw.get_channel_types()[31] == "ecg"
    rsync = layout_volume_onsets(rrun, rraw, img.shape[3], tr)
    np.testing.assert_allclose(rsync.onsets, XP1_T0 + XP1_TR * np.arange(XP1_NVOL), atol=1 / XP_RAW_SF)
    # without the raw header the segment cannot be placed
    lost = dataclasses.replace(run, meta={**run.meta, "marker_source": str(xp1_root / "missing_eeg.vhdr")})
    with pytest.raises(Eeg2fmriInputError, match=r"expected the raw recording's header .* found nothing"):
        layout_volume_onsets(lost, raw, img.shape[3], tr)


def test_xp1_pp_markers_must_agree(xp1_root, tmp_path):
    run = find_runs_layout(xp1_root, layout="ds002336", subjects=["xp101"])[0]
    raw = read_layout_eeg(run)
    raw.annotations.onset[raw.annotations.description == "Response/R128"] += 0.25  # a segment start 0.25 s off
    with pytest.raises(Eeg2fmriInputError, match=r"markers are up to 0.250 s away from the raw recording's markers"):
        layout_volume_onsets(run, raw, XP1_NVOL, XP1_TR)


def test_xp2_pairing(tmp_path):
    root = tmp_path / "ds002338"
    for r in ("01", "02"):
        xp_runs(root, "xp220", f"task-1dNF_run-{r}", 1.0, 9, pp_prefix="d_", seed=int(r))
    xp_runs(root, "xp220", "task-1dNF_run-04", 1.0, 9, raw=False, pp=False, seed=7)  # extra BOLD
    write_bv(root / "derivatives/sub-xp220/eeg_pp", "d_sub-xp220_NF4_eeg_pp", eeg_uv(64, 50, 8), XP_PP_SF, BRAINCAP, [], data_ext=".dat")
    assert detect_layout(root) == "ds002338"
    sc = get_layout("ds002338").scan(root)
    assert [(r.task, r.run, r.eeg_path.name) for r in sc.runs] == [("1dNF", "01", "d_sub-xp220_task-1dNF_run-01_eeg_pp.vhdr"), ("1dNF", "02", "d_sub-xp220_task-1dNF_run-02_eeg_pp.vhdr")]
    assert sc.skipped == ["sub-xp220_task-1dNF_run-04: BOLD but no EEG derivatives/sub-*/eeg_pp/*_eeg_pp.vhdr"]
    assert sc.notes == ["derivatives/sub-xp220/eeg_pp/d_sub-xp220_NF4_eeg_pp.vhdr: no task- entity in the name; ignored"]
    with pytest.raises(Eeg2fmriInputError, match=r"eeg='clean'; expected one of \['pp', 'raw'\]"):
        find_runs_layout(root, layout="ds002338", eeg="clean")


# ---------------------------------------------------------------------------------------------
# ds002158 (CN-EPFL)
# ---------------------------------------------------------------------------------------------
EPFL_SF, EPFL_TR, EPFL_NVOL = 500.0, 1.28, 5


def epfl_run(root: Path, sub: str, run: str, *, eeg=True, bold=True, sub_dir="", n=None, seed=0):
    base = root / f"sub-{sub}" / "ses-001"
    stem = f"sub-{sub}_ses-001_task-main_run-{run}"
    n = n or int((0.5 + EPFL_NVOL * EPFL_TR + 0.7) * EPFL_SF)
    mk = [("Response", "R128", int(round((0.5 + k * EPFL_TR) * EPFL_SF))) for k in range(EPFL_NVOL) if (0.5 + k * EPFL_TR) * EPFL_SF < n]
    if eeg:  # DataFile=/MarkerFile= still name the acquisition files
        write_bv(base / "eeg" / sub_dir, f"{stem}_eeg", eeg_uv(64, n, seed), EPFL_SF, BRAINCAP, mk, fmt="INT_16", resolution=0.5,
                 datafile=f"s{int(sub)}_run{int(run or 0)}_08062017.eeg", markerfile=f"s{int(sub)}_run{int(run or 0)}_08062017.vmrk")
    if bold:
        write_bold(base / "func" / sub_dir / f"{stem}_bold.nii.gz", (4, 6, 5, EPFL_NVOL), EPFL_TR, seed=seed, sidecar={"RepetitionTime": EPFL_TR, "TaskName": "main"})


def build_epfl(root: Path) -> Path:
    epfl_run(root, "02", "001", seed=1)
    write_bold(root / "sub-02/ses-001/func/sub-02_ses-001_task-rest_run-001_bold.nii.gz", (4, 6, 5, 3), EPFL_TR, sidecar={"RepetitionTime": EPFL_TR})
    (root / "sub-02/ses-001/fmap").mkdir(parents=True)
    (root / "sub-02/ses-001/fmap/._sub-02_ses-001_magnitude1.json").write_bytes(b"\x00\x05\x16\x07")
    small = 300
    epfl_run(root, "12", "001", n=small, seed=2)
    epfl_run(root, "12", "00", bold=False, n=small, seed=3)  # sixth EEG file lost a digit ...
    epfl_run(root, "12", "006", eeg=False, seed=4)  # ... and pairs with run-006
    epfl_run(root, "14", "004", n=small, seed=5)
    epfl_run(root, "14", "005", sub_dir="rejected", n=small, seed=6)  # in rejected/: ignored
    epfl_run(root, "19", "005", n=small, seed=7)
    epfl_run(root, "19", "006", bold=False, n=small, seed=8)  # no BOLD run-006
    epfl_run(root, "20", "006", n=small, seed=9)
    epfl_run(root, "20", "007", eeg=False, seed=10)  # BOLD whose EEG sits in rejected/
    epfl_run(root, "20", "007", bold=False, sub_dir="rejected", n=small, seed=11)
    (root / "task-main_bold.json").write_text(json.dumps({"RepetitionTime": EPFL_TR, "TaskName": "main"}))
    return root


@pytest.fixture(scope="module")
def epfl_root(tmp_path_factory):
    return build_epfl(tmp_path_factory.mktemp("epfl") / "ds002158-download")


def test_ds002158(epfl_root):
    assert detect_layout(epfl_root) == "ds002158"
    sc = get_layout("ds002158").scan(epfl_root)
    got = [(r.subject, r.session, r.run, r.eeg_path.name.split("run-")[1][:3].rstrip("_")) for r in sc.runs]
    assert got == [("02", "001", "001", "001"), ("12", "001", "001", "001"), ("12", "001", "006", "00"), ("14", "001", "004", "004"),
                   ("19", "001", "005", "005"), ("20", "001", "006", "006")]
    assert sorted(sc.skipped) == ["sub-19_ses-001_task-main_run-006: EEG but no BOLD func/sub-19_ses-001_task-main_run-006_bold.nii.gz",
                                  "sub-20_ses-001_task-main_run-007: BOLD but no EEG eeg/sub-20_ses-001_task-main_run-007_eeg.vhdr"]
    assert sc.notes == ["sub-12_ses-001_task-main_run-00: EEG run label '00' paired with the only unpaired BOLD sub-12_ses-001_task-main_run-006"]
    run = sc.runs[0]
    raw = read_layout_eeg(run)  # DataFile=s2_run1_08062017.eeg is stale: the sibling .eeg is read
    assert raw.info["sfreq"] == EPFL_SF and len(raw.ch_names) == 64 and raw.get_channel_types()[31] == "ecg"
    img, tr = read_layout_bold(run)
    assert tr == pytest.approx(EPFL_TR)
    rep = volume_onsets(raw, img.shape[3], tr, marker=run.marker)
    assert rep.n_markers == EPFL_NVOL and rep.marker == "Response/R128"
    chk = check_layout(epfl_root, "ds002158")
    # the files pair and read; the five runs whose EEG is a 0.6 s stub cannot time their 5 volumes (prepare refuses them)
    assert len(chk.runs) == 6 and not chk.ok and len(chk.problems) == 5
    assert all(": volume timing: " in p and "markers but the BOLD run has 5 volumes" in p and not p.startswith("sub-02") for p in chk.problems)
    assert "sub-02_ses-001_task-main_run-001: 5 volume(s) timed by 5 'Response/R128' marker(s)" in chk.notes
    assert any("DataFile='s2_run1_08062017.eeg' not found; using sub-02_ses-001_task-main_run-001_eeg.eeg" in n for n in chk.notes)


def test_marker_spellings_are_renamed(tmp_path):
    """A BrainVision file re-exported with MNE/pybv has 'Comment/R128': renamed to the layout's marker."""
    import mne

    info = mne.create_info(BRAINCAP, 100.0, "eeg")
    raw = mne.io.RawArray(eeg_uv(64, 900, 12) * 1e-6, info, verbose=False)
    raw.set_annotations(mne.Annotations([0.5 + 1.28 * k for k in range(5)] + [0.7], [0] * 6, ["R128"] * 5 + ["S  2"]))
    vhdr = tmp_path / "sub-02_ses-001_task-main_run-001_eeg.vhdr"
    with pytest.warns(RuntimeWarning, match="double"):  # pybv stores float32
        mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    assert "Comment,R128" in vhdr.with_suffix(".vmrk").read_text()
    run = LayoutRun("02", "001", "main", "001", vhdr, None, layout="ds002158", marker=("Response/R128", "R128"), eeg_reader="brainvision", non_eeg_channels=("ECG",))
    back = read_layout_eeg(run)
    desc = list(back.annotations.description)
    assert desc.count("Response/R128") == 5 and not any(d.endswith("/R128") and d != "Response/R128" for d in desc)
    assert volume_onsets(back, 5, 1.28, marker=run.marker).marker == "Response/R128"


# ---------------------------------------------------------------------------------------------
# ds004000 (EEG only)
# ---------------------------------------------------------------------------------------------
DS4K_SF = 128.0
DS4K_EEG = [f"{b}{i}" for b in "ABCD" for i in range(1, 33)]


def build_ds4k(root: Path) -> Path:
    (root).mkdir(parents=True)
    (root / "participants.tsv").write_text("participant_id\tgroup\nsub-000\tHC\nsub-024\tP\n")
    for s, (sub, extra) in enumerate({"000": [], "024": ["EXG3", "Status"], "001": []}.items()):
        ch = DS4K_EEG + ["EXG1", "EXG2", "EXG7", "EXG8"] + extra
        d = root / f"sub-{sub}" / "eeg"
        for t, task in enumerate(("proposer", "responder")):
            write_bv(d, f"sub-{sub}_task-{task}_run-1_eeg", eeg_uv(len(ch), 320, 10 * s + t), DS4K_SF, ch,
                     [("Stimulus", "S  1", 40), ("Stimulus", "S  2", 200)], orientation="VECTORIZED")
            (d / f"sub-{sub}_task-{task}_run-1_eeg.json").write_text(json.dumps({"TaskName": "responder", "SamplingFrequency": 2048}))
        (d / f"sub-{sub}_electrodes.tsv").write_text("name\tx\ty\tz\n" + "".join(f"{c}\t0\t0\t0\n" for c in ch))
    return root


@pytest.fixture(scope="module")
def ds4k_root(tmp_path_factory):
    return build_ds4k(tmp_path_factory.mktemp("ds4k") / "ds004000")


def test_ds004000_eeg_only(ds4k_root):
    assert detect_layout(ds4k_root) == "ds004000"
    runs = find_runs_layout(ds4k_root, layout="auto")
    assert [(r.subject, r.task, r.meta["group"]) for r in runs] == [("000", "proposer", "HC"), ("000", "responder", "HC"), ("024", "proposer", "P"), ("024", "responder", "P")]
    assert all(r.bold_path is None for r in runs)  # sub-001 is not in participants.tsv: skipped
    assert [r.task for r in find_runs_layout(ds4k_root, layout="ds004000", task="responder")] == ["responder", "responder"]
    raw_hc, raw_p = read_layout_eeg(runs[0]), read_layout_eeg(runs[2])
    assert (len(raw_hc.ch_names), len(raw_p.ch_names)) == (132, 134)
    for raw in (raw_hc, raw_p):
        types = dict(zip(raw.ch_names, raw.get_channel_types()))
        assert [c for c, t in types.items() if t == "eeg"] == DS4K_EEG
        assert types["EXG1"] == "eog" and raw.info["sfreq"] == DS4K_SF
    assert dict(zip(raw_p.ch_names, raw_p.get_channel_types()))["Status"] == "stim"
    with pytest.raises(Eeg2fmriInputError, match=r"has no BOLD \(EEG-only data\)"):
        read_layout_bold(runs[0])


def test_ds004000_errors(tmp_path):
    root = build_ds4k(tmp_path / "ds004000")
    with pytest.raises(Eeg2fmriInputError, match=r"task='dictator'; expected one of \['proposer', 'responder'\]"):
        find_runs_layout(root, layout="ds004000", task="dictator")
    (root / "participants.tsv").write_text("participant_id\tsex\nsub-000\tF\n")
    with pytest.raises(Eeg2fmriInputError, match=r"expected columns participant_id and group, found \['participant_id', 'sex'\]"):
        find_runs_layout(root, layout="ds004000")
    (root / "participants.tsv").unlink()
    with pytest.raises(Eeg2fmriInputError, match=r"participants.tsv: expected participants.tsv with columns participant_id and group"):
        find_runs_layout(root, layout="ds004000")


# ---------------------------------------------------------------------------------------------
# plain BIDS, registry, LayoutRun, auto-detection
# ---------------------------------------------------------------------------------------------
def test_bids_layout(tmp_path):
    root = tmp_path / "bids"
    ch = ["Fz", "Cz", "Pz", "ECG"]
    write_bv(root / "sub-01" / "eeg", "sub-01_task-rest_eeg", eeg_uv(4, 700, 1), 100.0, ch, [("Response", "R128", 50 + 200 * k) for k in range(3)])
    write_bold(root / "sub-01" / "func" / "sub-01_task-rest_bold.nii.gz", (3, 4, 2, 3), 2.0, sidecar={"RepetitionTime": 2.0})
    assert detect_layout(root) == "bids"
    runs = find_runs_layout(root)
    assert len(runs) == 1 and isinstance(runs[0], LayoutRun) and runs[0].layout == "bids" and runs[0].marker is None
    raw = read_layout_eeg(runs[0])
    img, tr = read_layout_bold(runs[0])
    sync = layout_volume_onsets(runs[0], raw, img.shape[3], tr)  # markers from the defaults (R128, ...)
    np.testing.assert_allclose(sync.onsets, [0.5, 2.5, 4.5])
    reg = layout_volume_onsets(runs[0], raw, img.shape[3], tr, marker=None, first_onset=0.25)  # the caller's regular timing
    np.testing.assert_allclose(reg.onsets, [0.25, 2.25, 4.25])
    with pytest.raises(Eeg2fmriInputError, match="no markers requested and no first_onset given"):
        layout_volume_onsets(runs[0], raw, img.shape[3], tr, marker=None)
    plain = RunRecord("01", None, "rest", None, runs[0].eeg_path, runs[0].bold_path)
    assert read_layout_eeg(plain).ch_names == ch  # a plain RunRecord is accepted too


def test_registry_and_detection_errors(tmp_path):
    assert set(list_layouts()) == {"bids", "noddi", "ds000116", "cwl", "ds002336", "ds002338", "ds002158", "ds003768", "ds004000", "neurobolt"}
    assert list_layouts()[0] == "bids"
    with pytest.raises(Eeg2fmriInputError, match=r"layout 'ds999': expected one of \['bids'"):
        get_layout("ds999")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Eeg2fmriInputError, match=r"expected a BIDS dataset .* or one of the published layouts"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(Eeg2fmriInputError, match=r"expected a dataset folder, found nothing: the path does not exist"):
        find_runs_layout(tmp_path / "nope", layout="auto")
    with pytest.raises(Eeg2fmriInputError, match=r"expected a noddi dataset folder, found nothing: the path does not exist"):
        find_runs_layout(tmp_path / "nope", layout="noddi")
    with pytest.raises(Eeg2fmriInputError, match=r"found no complete noddi runs for subjects \['99'\]"):
        find_runs_layout(build_noddi(tmp_path / "N", subjects=("32",)), layout="noddi", subjects=["99"])


def test_layout_run_is_frozen_record(tmp_path):
    run = LayoutRun("32", None, "rest", None, tmp_path / "a.vhdr", None, layout="noddi", marker="Scanner/Scan Start", meta={"group": "HC"})
    assert isinstance(run, RunRecord) and run.marker == ("Scanner/Scan Start",) and run.key == "sub-32_task-rest"
    with pytest.raises(TypeError, match="read-only"):
        run.meta["group"] = "P"
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.tr = 2.0
    assert hash(run) == hash(dataclasses.replace(run, meta={"group": "P"}))
    back = pickle.loads(pickle.dumps(run))
    assert back == run and back.meta == {"group": "HC"}


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_datasets(capsys, noddi_root, ds4k_root, tmp_path):
    from eeg2fmri.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for name in list_layouts():
        assert f"\n{name} " in out
    assert "fMRI/<id>/*rest_with_cross.nii.gz" in out and "participants.tsv (participant_id, group)" in out

    assert main(["datasets", "noddi"]) == 0
    out = capsys.readouterr().out
    assert "'Scanner/Scan Start'" in out and "2.16 s (overrides the files)" in out and "ECG" in out and "include_broken" in out

    assert main(["datasets", "--check", str(noddi_root)]) == 0
    out = capsys.readouterr().out
    assert "layout noddi: 2 complete run(s); OK" in out and "skipped: subject 50: EEG but no fMRI" in out
    assert "note: subject 35: excluded (reported broken)" in out and "run sub-40_task-rest" in out

    assert main(["datasets", "ds004000", "--check", str(ds4k_root), "--subjects", "024"]) == 0
    assert "run sub-024_task-proposer_run-1" in capsys.readouterr().out

    assert main(["datasets", "ds002158", "--check", str(noddi_root)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEMS" in out and "does not look like 'ds002158'" in out

    (tmp_path / "empty").mkdir()
    assert main(["datasets", "--check", str(tmp_path / "empty")]) == 1
    assert "one of the published layouts" in capsys.readouterr().out

    assert main(["datasets", "ds999"]) == 2
    assert "layout 'ds999': expected one of" in capsys.readouterr().err


def test_check_files_an_unreadable_eeg_under_its_file_not_the_timing(tiny_bids, tmp_path):
    """An EEG that cannot be read (an EEGLAB .set whose .fdt is missing; here a BrainVision header cut short) is a
    problem of the EEG file in datasets --check, not one of 'volume timing' (user test)."""
    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    vhdr = sorted(root.glob("sub-01/eeg/*_eeg.vhdr"))[0]
    text = vhdr.read_text()
    vhdr.write_text(text[: text.index("[Channel Infos]")])  # data and marker files named, the channels gone
    chk = check_layout(root)
    mine = [p for p in chk.problems if p.startswith("sub-01")]
    assert not chk.ok and mine and "EEG file cannot be read" in mine[0] and "volume timing" not in mine[0]


def test_check_finds_a_truncated_bold_file(tiny_bids, tmp_path):
    """User test 35: a .nii.gz cut short passed datasets --check (only prepare found it)."""
    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    bold = sorted(root.glob("sub-02/func/*_bold.nii*"))[0]
    raw = bold.read_bytes()
    bold.write_bytes(raw[: len(raw) * 3 // 4])
    chk = check_layout(root)
    mine = [p for p in chk.problems if p.startswith("sub-02")]
    assert not chk.ok and mine and bold.name in mine[0] and ("truncated" in mine[0]) and "re-copy or re-export it" in mine[0]
    assert not [p for p in chk.problems if p.startswith("sub-01")]


def test_check_files_an_eeg_that_ends_inside_the_last_volume_as_a_problem(tiny_bids, tmp_path):
    """User test 54: an EEG ending inside the last volume's acquisition was a note of datasets --check, while prepare
    refuses the run; it is a problem with the way out."""
    import mne

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    vhdr = sorted(root.glob("sub-01/eeg/*_eeg.vhdr"))[0]
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)
    last = max(a["onset"] for a in raw.annotations if a["description"].endswith("R128"))
    raw.crop(0.0, last + 1.0)  # half of the last volume (TR 2 s) has EEG
    for f in vhdr.parent.glob(vhdr.name.replace(".vhdr", ".*")):
        f.unlink()
    mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    chk = check_layout(root)
    mine = [p for p in chk.problems if p.startswith("sub-01")]
    assert not chk.ok and len(mine) == 1
    assert re.search(r"volume timing: the EEG \(\d+\.\d s\) ends before the last volume's acquisition does \(\d+\.\d s\), so "
                     r"prepare refuses the run: keep the BOLD volumes the EEG covers", mine[0])
    assert not [p for p in chk.problems if p.startswith("sub-02")]


def test_check_applies_the_prepare_config_as_prepare_will(tiny_bids, tmp_path, capsys):
    """User test 54: datasets --check never passed a two-site dataset that prepare --config accepted (channels mapped onto
    one set, runs resampled onto one grid); --config applies channels, grid and dummy_scans as prepare does."""
    import mne
    import nibabel as nib

    from eeg2fmri.cli import main

    root = tmp_path / "copy"
    shutil.copytree(tiny_bids, root, ignore=shutil.ignore_patterns("derivatives"))
    vhdr = sorted(root.glob("sub-02/eeg/*_eeg.vhdr"))[0]
    raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose=False)
    names = [c for c in raw.ch_names if c not in ("ECG", "EOG")]
    raw.drop_channels(["O1"])  # site B lacks one channel
    for f in vhdr.parent.glob(vhdr.name.replace(".vhdr", ".*")):
        f.unlink()
    mne.export.export_raw(vhdr, raw, fmt="brainvision", verbose=False)
    bold = sorted(root.glob("sub-02/func/*_bold.nii*"))[0]
    img = nib.load(bold)
    aff = img.affine.copy()
    aff[:3, 3] += 3.0  # another grid (same space, shifted by a quarter voxel)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), aff, img.header), bold)
    assert main(["datasets", "--check", str(root)]) == 1
    out = capsys.readouterr().out
    assert "EEG channels differ from the first run's" in out and "BOLD voxel-to-world affine differs" in out
    cfg = json.dumps({"channels": names, "grid": "first", "dummy_scans": "auto", "bands": "auto"})
    assert main(["datasets", "--check", str(root), "--config", cfg]) == 0
    out = capsys.readouterr().out
    assert f"prepare maps every run onto the {len(names)} channels of the option channels" in out and "(sub-02_task-rest_run-1: O1)" in out
    assert "prepare puts every run's BOLD on one grid (option grid 'first')" in out
    # a run holding under half of the channels named is still a problem
    assert main(["datasets", "--check", str(root), "--config", json.dumps({"channels": names + [f"X{i}" for i in range(20)]})]) == 1
    assert re.search(r"sub-0\d\S*: holds \d+ of the 36 channels of the prepare option channels", capsys.readouterr().out)
    assert main(["datasets", "--config", cfg]) == 2
    assert "--config: expected only together with --check ROOT (it sets how the check times the volumes)" in capsys.readouterr().err


def test_check_report_says_a_repeated_problem_once():
    """datasets --check (user test 7): a problem or note that says the same of several runs (their keys and file names
    aside) is printed once, followed by the other runs it holds for; different texts stay apart."""
    from types import SimpleNamespace

    from eeg2fmri.io.layouts import LayoutCheck

    runs = [SimpleNamespace(key=k) for k in ("sub-01_task-rest", "sub-02_task-rest", "sub-10_task-rest")]
    problems = [f"{k}: volume timing: /d/{k.split('_')[0]}/eeg/{k}_eeg.set: expected scanner markers, found none" for k in
                ("sub-01_task-rest", "sub-02_task-rest", "sub-10_task-rest")] + ["sub-02_task-rest: BOLD file /d/x.nii does not exist"]
    notes = ["sub-01_task-rest: 90 volume(s) timed by 90 'R128' marker(s)", "sub-02_task-rest: 88 volume(s) timed by 88 'R128' marker(s)",
             "a note about no run"]
    lines = LayoutCheck("bids", False, runs, problems, [], notes).lines()
    assert lines[1:] == [
        "  problem: sub-01_task-rest: volume timing: /d/sub-01/eeg/sub-01_task-rest_eeg.set: expected scanner markers, found none\n"
        "    (the same for 2 more run(s): sub-02_task-rest, sub-10_task-rest)",
        "  problem: sub-02_task-rest: BOLD file /d/x.nii does not exist",
        "  note: sub-01_task-rest: 90 volume(s) timed by 90 'R128' marker(s)",
        "  note: sub-02_task-rest: 88 volume(s) timed by 88 'R128' marker(s)",
        "  note: a note about no run"]
