"""Every remaining user error of evaluation and synthesis: message and fix."""

from __future__ import annotations

from dataclasses import replace

import mne
import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.datasets.prepared import PrepareConfig
from eeg2fmri.evaluation.crossdata import (
    all_test_split,
    check_same_space,
    cross_dataset_split,
    restrict_dataset,
)
from eeg2fmri.evaluation.protocol import evaluate_models, load_labels
from eeg2fmri.synthesis import StreamingNifti, nifti_header, stream_representation
from eeg2fmri.utils.validation import Eeg2fmriInputError


def _raw(seconds: float = 20.0, sfreq: float = 100.0) -> mne.io.RawArray:
    x = np.random.default_rng(0).standard_normal((3, int(seconds * sfreq))) * 1e-5
    return mne.io.RawArray(x, mne.create_info(["A", "B", "C"], sfreq, "eeg"), verbose=False)


def test_stream_errors():
    raw = _raw()
    with pytest.raises(Eeg2fmriInputError, match=r"expected pad_seconds >= 0, got -1\.0"):
        stream_representation(raw, PrepareConfig(), tr=2.0, pad_seconds=-1)
    with pytest.raises(Eeg2fmriInputError, match=r"no EEG channels to use; check channel types or pass picks=\[\.\.\.\]"):
        stream_representation(raw, PrepareConfig(), tr=2.0, picks=[])
    with pytest.raises(Eeg2fmriInputError, match=r"the recording \(1\.0 s\) is shorter than one frame \(2 s\)"):
        stream_representation(_raw(seconds=1.0), PrepareConfig(), tr=2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"band 'gamma'=\(30\.0, 45\.0\) Hz needs a sampling rate above 90 Hz, the EEG is filtered at 80 Hz"):
        stream_representation(_raw(sfreq=80.0), PrepareConfig(), tr=2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected tr > 0, got 0"):
        stream_representation(raw, PrepareConfig(), tr=0)


def test_nifti_name_error(tmp_path):
    hdr = nifti_header((2, 3, 4, 5), np.eye(4), (1.0, 1.0, 1.0), 2.0)
    with pytest.raises(Eeg2fmriInputError, match=r"expected an output name ending in \.nii\.gz or \.nii"):
        StreamingNifti(tmp_path / "x.mgz", hdr)
    assert list(tmp_path.iterdir()) == []


def test_crossdata_errors(tiny_prepared):
    stft = replace(tiny_prepared, config=replace(tiny_prepared.config, representation="stft"), freqs=[1.0, 2.0])
    with pytest.raises(Eeg2fmriInputError, match=r"found differences: representation 'bandpower' vs 'stft'; prepare both with the same options"):
        check_same_space(tiny_prepared, stft)
    with pytest.raises(Eeg2fmriInputError, match=r"found differences: STFT bins \(2 vs 1\)"):
        check_same_space(stft, replace(stft, freqs=[1.0]))
    with pytest.raises(Eeg2fmriInputError, match=r"found differences: TR 2\.0 vs 2\.5 s.*; for the TRs, prepare both with the prepare option "
                                                 r"resample_tr \(benchmark: --train-config '\{\"data\": \{\"prepare\": \{\"resample_tr\": 2\}\}\}'"):
        check_same_space(tiny_prepared, replace(tiny_prepared, tr=2.5))
    with pytest.raises(Eeg2fmriInputError, match=r"expected voxels inside the dataset's mask; intersect the masks first"):
        restrict_dataset(tiny_prepared, tiny_prepared.ch_names, np.ones(tiny_prepared.mask.shape, bool))
    with pytest.raises(Eeg2fmriInputError, match=r"test dataset: no volume has a complete 500-frame EEG window"):
        all_test_split(tiny_prepared, 500)
    other = replace(tiny_prepared, mask=~tiny_prepared.mask, provenance={})
    with pytest.raises(Eeg2fmriInputError, match="the two brain masks share no voxel"):
        cross_dataset_split(tiny_prepared, other)


def test_labels_and_split_errors(tiny_prepared, tmp_path, caplog):
    from eeg2fmri.datasets.targets import make_split, split_targets

    mask, affine = tiny_prepared.mask, tiny_prepared.affine
    with pytest.raises(Eeg2fmriInputError, match=r"nope\.nii\.gz: atlas file not found; pass a NIfTI of integer labels"):
        load_labels(tmp_path / "nope.nii.gz", mask, affine)
    # an atlas on a finer grid of the same space is resampled (nearest neighbour) to the data grid
    fine_aff = affine.copy()
    fine_aff[:3, :3] /= 2
    fine = np.zeros(tuple(2 * s for s in mask.shape), np.int16)
    fine[: mask.shape[0], :, :] = 1
    fine[mask.shape[0] :, :, :] = 2
    nib.save(nib.Nifti1Image(fine, fine_aff), tmp_path / "atlas.nii.gz")
    lab = load_labels(tmp_path / "atlas.nii.gz", mask, affine)
    assert lab.shape == (int(mask.sum()),) and set(np.unique(lab)) <= {0, 1, 2} and (lab > 0).any()
    with pytest.raises(Eeg2fmriInputError, match=r"grid \(34, 40, 32\) differs from the data grid \(17, 20, 16\)"):
        load_labels(nib.Nifti1Image(fine, fine_aff), mask, None)
    # the data's shape with another affine (a user test: a wrong header, ROI r -0.57 without a word) is warned, and labels
    # that end outside the brain mask are named
    import logging

    shifted = affine.copy()
    shifted[:3, 3] += 1000.0  # far away: every label lands outside the data grid
    same = np.zeros(mask.shape, np.int16)
    same[mask] = 1
    same[np.argwhere(mask)[0][0], :, :] = 3
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"), pytest.raises(Eeg2fmriInputError, match="no ROI label inside the brain mask"):
        load_labels(nib.Nifti1Image(same, shifted), mask, affine)
    text = caplog.text
    assert "the atlas has the data's grid shape (17, 20, 16) but another voxel-to-world affine (differences up to 1e+03)" in text
    assert "2 of the atlas's 2 labels have no voxel inside the data's brain mask after resampling (1, 3)" in text
    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    sp.selections["test"] = {}
    with pytest.raises(Eeg2fmriInputError, match=r"split \(within\): expected a test selection, found none; make the split with a test span \(a test share in fractions, e\.g\. \[0\.6, 0\.2, 0\.2\]\) or test subjects"):
        evaluate_models(tiny_prepared, sp, tg, {"x": object()})


def test_roi_names_voxels_and_per_roi_table_in_the_report(tiny_prepared, tmp_path):
    """evaluate --atlas: ROI names from a TSV beside the atlas and each ROI's voxel count are recorded in the settings,
    and the report has a per-ROI r table (a user test found per-ROI r only in metrics.json, keyed by number)."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.plotting.report import evaluation_markdown
    from eeg2fmri.training import fit_model

    mask, affine = tiny_prepared.mask, tiny_prepared.affine
    vol = np.zeros(mask.shape, np.int16)
    xs = np.argwhere(mask)[:, 0]
    vol[mask] = np.where(xs < np.median(xs), 1, 2)
    nib.save(nib.Nifti1Image(vol, affine), tmp_path / "atlas.nii.gz")
    (tmp_path / "atlas.tsv").write_text("index\tname\n1\tleft_half\n2\tright_half\n")
    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", {"hrf": "canonical"}, targets=tg)
    res = evaluate_models(tiny_prepared, sp, tg, {"ridge_hrf": fitted.model}, atlas=tmp_path / "atlas.nii.gz", n_boot=0)
    st = res["settings"]
    assert st["roi_names"] == {"1": "left_half", "2": "right_half"}
    assert st["roi_voxels"] == {"1": int((vol[mask] == 1).sum()), "2": int((vol[mask] == 2).sum())}
    md = evaluation_markdown(res, [], title="t")
    assert "ROI r per ROI" in md and "| 1 left_half | " + str(st["roi_voxels"]["1"]) + " |" in md
    subs = sorted(res["per_subject"])
    expect = np.mean([res["per_subject"][s]["models"]["ridge_hrf"]["roi_r"]["2"] for s in subs])
    assert f"| 2 right_half | {st['roi_voxels']['2']} | {expect:.3f} |" in md
    # an atlas given as an array has no names: numbers only
    res2 = evaluate_models(tiny_prepared, sp, tg, {"ridge_hrf": fitted.model}, atlas=vol, n_boot=0)
    assert res2["settings"]["roi_names"] is None and res2["settings"]["roi_voxels"] == st["roi_voxels"]
    # the null's 95th percentile is in the headline sentence; a median r not above it is called chance level (user test 4)
    gm = res["group"]["models"]["ridge_hrf"]
    assert "95th percentile" not in md or isinstance(gm.get("null_p95_median_r"), float)
    gm["null_p95_median_r"] = gm["median_r"] - 0.01
    md = evaluation_markdown(res, [], title="t")
    assert f"(half a run away; a 5 % test over every circular shift sets the level {gm['median_r'] - 0.01:.3f})" in md and "not distinguishable from chance" not in md
    gm["null_p95_median_r"] = gm["median_r"] + 0.01
    assert "**the model's median r does not exceed that level: over the whole mask it is not distinguishable" in evaluation_markdown(res, [], title="t")
    # test spans too short for a null distribution: the sentence says chance cannot be excluded (user test 9: r 0.066 vs
    # its shifted null 0.065, 16 test volumes per subject, and nothing said so)
    del gm["null_p95_median_r"]
    shortest = min(int(v["n_test"]) for v in res["per_subject"].values())
    gm["null_median_r"] = gm["median_r"] - 0.005
    md = evaluation_markdown(res, [], title="t")
    assert (f"**no null distribution could be formed (the shortest test span has {shortest} volumes: too few for a 5 % test over "
            "circular shifts, which needs 20), so these data cannot tell whether the model exceeds chance -- and its median r "
            "is within 0.01 of its half-run shift's; hold out longer test spans") in md
    gm["null_median_r"] = gm["median_r"] - 0.2
    md = evaluation_markdown(res, [], title="t")
    assert "cannot tell whether the model exceeds chance; hold out longer test spans (split fractions) or more runs**." in md


def test_fit_results_are_taken_as_reference_and_baseline(tiny_prepared):
    """User test 25: evaluate_split took a FitResult as the model but refused one as the reference."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation import evaluate_split
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    tg = split_targets(tiny_prepared, sp)
    ref = fit_model(tiny_prepared, sp, "ridge_hrf", targets=tg)
    base = fit_model(tiny_prepared, sp, "mean", targets=tg)
    got = evaluate_split(tiny_prepared, sp, tg, ref, reference=ref, baseline=base, n_boot=0)
    bare = evaluate_split(tiny_prepared, sp, tg, ref.model, reference=ref.model, baseline=base.model, n_boot=0)
    assert got["summary"]["model_median_r"] == bare["summary"]["model_median_r"]


def test_median_over_few_outputs_is_said_to_be_unreliable():
    """User test 33: over 3 ROIs the paired bootstrap gave +0.109 [-0.246, 0.152], p = 0.985 -- the median of three
    values jumps between them under resampling; the report's sentence says so below 10 outputs, not at 10 or more."""
    import numpy as np

    from eeg2fmri.evaluation.protocol import score_runs
    from eeg2fmri.plotting.report import evaluation_markdown

    rng = np.random.default_rng(1)

    def results(n_out):
        y = rng.standard_normal((60, n_out)).astype(np.float32)
        runs = [{"key": "r1", "subject": "01", "y": y, "preds": {"net": (y + rng.standard_normal(y.shape)).astype(np.float32),
                                                                  "ridge_hrf": (y + 2 * rng.standard_normal(y.shape)).astype(np.float32)}}]
        core = score_runs(runs, ["net", "ridge_hrf"], None, 2.0, reference="ridge_hrf", baseline=None, n_boot=50, block_len=6)
        settings = {"targets": "regions", "n_boot": 50, "block_len": 6, "ci": 0.95, "ssim_window": "-", "ssim_volumes_max": 0, "data_range": "-", "units": "z"}
        return {"protocol": "within", "models": ["net", "ridge_hrf"], "roles": {"reference": "ridge_hrf", "baseline": None, "null": "-"},
                "reference": {"available": True}, "per_subject": core["per_subject"], "group": core["group"], "runs": core["runs"],
                "settings": settings}

    md = evaluation_markdown(results(3), [], title="t")
    assert "over only 3 outputs the median jumps from one output's r to another's under resampling, so this interval and p are unreliable" in md
    assert "outputs the median jumps" not in evaluation_markdown(results(12), [], title="t")
