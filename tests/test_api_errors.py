"""The Python API's entry points refuse wrong arguments with what was expected, what was given and the fix (user test 8:
a path where an object goes, swapped arguments and a misspelt split option gave AttributeError/TypeError)."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from eeg2fmri.datasets import prepare_dataset
from eeg2fmri.datasets.targets import make_split, split_targets
from eeg2fmri.evaluation import evaluate_split
from eeg2fmri.synthesis import synthesize
from eeg2fmri.training import fit_model
from eeg2fmri.utils.validation import Eeg2fmriInputError
from eeg2fmri.workflows.benchmark import run_benchmark


def test_wrong_objects_are_named_with_the_fix(tiny_prepared, split, tmp_path):
    ds = tiny_prepared
    with pytest.raises(Eeg2fmriInputError, match=r"prepare_dataset: expected bids_root as a str or PathLike or list or tuple or Mapping, "
                                                 r"got a int \(123\); pass a BIDS folder, or a list of runs"):
        prepare_dataset(123)
    with pytest.raises(Eeg2fmriInputError, match=r"make_split: expected ds as a PreparedDataset, got a str \('/data/prepared'\); "
                                                 r"prepare_dataset\(\.\.\.\) returns one, load_prepared\(PATH\) reads one"):
        make_split("/data/prepared", "within")
    with pytest.raises(Eeg2fmriInputError, match=r"fit_model: expected split as a Split, got a str \('within'\); make_split\(ds, protocol\) "
                                                 r"returns one; the order is fit_model\(ds, split, name, hparams, targets\)"):
        fit_model(ds, "within", "ridge_hrf")
    with pytest.raises(Eeg2fmriInputError, match=r"fit_model: expected ds as a PreparedDataset, got a Split"):
        fit_model(split, ds, "ridge_hrf")
    targets = split_targets(ds, split)
    with pytest.raises(Eeg2fmriInputError, match=r"evaluate_split: expected split as a Split, got a dict; .*evaluate_split\(ds, split, targets, model\)"):
        evaluate_split(ds, targets, split, None)
    with pytest.raises(Eeg2fmriInputError, match=r"run_benchmark: expected ds as a PreparedDataset, got a str"):
        run_benchmark("/data/prepared", "within", ["ridge_hrf"])
    with pytest.raises(Eeg2fmriInputError, match=r"unknown split option 'fraction' \(did you mean 'fractions'\?\); expected some of \['n_frames', "):
        run_benchmark(ds, "within", ["ridge_hrf"], split_options={"fraction": (0.6, 0.2, 0.2)})
    with pytest.raises(Eeg2fmriInputError, match=r"synthesize: expected eeg as a str or PathLike or BaseRaw, got a ndarray; pass an EEG file "
                                                 r".*the order is synthesize\(eeg, model_dir, out\)"):
        synthesize(np.zeros((3, 10)), tmp_path, tmp_path / "out.nii.gz")
    with pytest.raises(Eeg2fmriInputError, match=r"synthesize: expected model_dir as a str or PathLike, got a SimpleNamespace; pass the "
                                                 r"folder the model was saved to"):
        synthesize(tmp_path / "x.vhdr", SimpleNamespace(model=None), tmp_path / "out.nii.gz")


def test_one_model_by_name_is_one_model(tiny_prepared):
    """run_benchmark(ds, protocol, "ridge_hrf"): one model, not the letters r, i, d, ... (user test 8)."""
    bench = run_benchmark(tiny_prepared, "within", "ridge_hrf", n_boot=10)
    assert {r["name"] for r in bench["leaderboard"]} >= {"ridge_hrf", "mean"} and bench["n_folds"] == 1


def test_a_first_fit_leaves_the_callers_random_streams_alone(tiny_prepared, tmp_path):
    """In a fresh process the first fit_model (closed form: no training loop) imports scikit-learn and others, which
    draw from Python's `random`; the fit leaves `random` and numpy's global state as they were (user test 8)."""
    path = tiny_prepared.save(tmp_path / "prep")
    code = ("import random, numpy as np\nfrom eeg2fmri.datasets import load_prepared\nfrom eeg2fmri.datasets.targets import make_split\n"
            f"from eeg2fmri.training import fit_model\nds = load_prepared({str(path)!r})\nsp = make_split(ds, 'within')\n"
            "random.seed(1); np.random.seed(1)\na, b = random.getstate(), np.random.get_state()[1].copy()\n"
            "fit_model(ds, sp, 'ridge_hrf')\nprint(random.getstate() == a, bool((np.random.get_state()[1] == b).all()))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["True", "True"], out.stderr[-2000:]


def test_fit_model_progress_bar_switch(tiny_prepared, split, capfd, one_torch_thread):
    """fit_model(progress_bar=False) silences the epoch bars of a torch model, as prepare_dataset(progress_bar=False)
    does (user test 8: only train_config's trainer section could); a non-boolean is refused."""
    cfg = {"optimizer": {"max_epochs": 2, "batch_size": 32}}
    fit_model(tiny_prepared, split, "eeg2fmri_net", {"seed": 0}, train_config=cfg, progress_bar=False)
    err = capfd.readouterr()
    assert "Epoch" not in err.out + err.err
    with pytest.raises(Eeg2fmriInputError, match=r"fit_model: expected progress_bar as True, False or None, got 'no'"):
        fit_model(tiny_prepared, split, "eeg2fmri_net", train_config=cfg, progress_bar="no")


def test_fractions_that_do_not_sum_to_one_say_their_sum(tiny_prepared):
    with pytest.raises(Eeg2fmriInputError, match=r"fractions \(0\.7, 0\.2, 0\.2\): expected three shares >= 0 \(train, validation, test\) "
                                                 r"that sum to 1, got a sum of 1\.1; e\.g\. \(0\.6, 0\.2, 0\.2\)"):
        make_split(tiny_prepared, "within", fractions=(0.7, 0.2, 0.2))


def test_a_split_or_targets_made_for_something_else_are_refused(tiny_prepared, split):
    """User test 8: a split of a one-subject dataset used on the whole dataset trained on its run 0 silently; targets of
    the LOSO split with the within split failed with KeyError."""
    from eeg2fmri.datasets.prepared import select_subjects

    one = select_subjects(tiny_prepared, [tiny_prepared.subjects[0]])
    with pytest.raises(Eeg2fmriInputError, match=r"fit_model: the split was made for a dataset of 1 run\(s\) \['sub-01_task-rest_run-1'\], this "
                                                 r"one has 2 \['sub-01_task-rest_run-1', 'sub-02_task-rest_run-1'\]; make the split from this dataset"):
        fit_model(tiny_prepared, make_split(one, "within"), "ridge_hrf")
    loso = make_split(tiny_prepared, "loso")
    with pytest.raises(Eeg2fmriInputError, match=r"evaluate_split: the targets were not made for this split \('train' windows: the split "
                                                 r"selects runs \[0, 1\], the targets hold \[0\]\); compute them from it: split_targets"):
        evaluate_split(tiny_prepared, split, split_targets(tiny_prepared, loso), None)
    with pytest.raises(Eeg2fmriInputError, match=r"fit_model: the targets were not made for this split"):
        fit_model(tiny_prepared, split, "ridge_hrf", targets=split_targets(tiny_prepared, loso))


def test_evaluate_split_takes_a_fit_result_and_refuses_test_windows_it_saw(tiny_prepared):
    """User test 10: evaluate_split scored a model on a subject it was trained on (r 0.28 for an honest 0.09) without a
    word; the CLI's evaluate refuses that. Given what fit_model returned, it checks the split the model was fitted with."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation import evaluate_split
    from eeg2fmri.training import fit_model

    a, b = tiny_prepared.subjects
    trained_on_a = make_split(tiny_prepared, "loso", test_subjects=[b])
    fitted = fit_model(tiny_prepared, trained_on_a, "ridge_hrf", {"hrf": "canonical"})
    ok = evaluate_split(tiny_prepared, trained_on_a, split_targets(tiny_prepared, trained_on_a), fitted, n_boot=0)
    assert ok["model"] == "ridge_hrf" and "model_median_r" in ok["summary"]
    tests_a = make_split(tiny_prepared, "loso", test_subjects=[a])
    with pytest.raises(Eeg2fmriInputError, match=rf"evaluate_split: the model was fitted on subjects \['{a}'\] \(validated on \['{a}'\]\) with "
                                                 rf"protocol 'loso'; \d+ of this split's \d+ test windows lie within \d+ volumes of windows it was "
                                                 r"trained or validated on"):
        evaluate_split(tiny_prepared, tests_a, split_targets(tiny_prepared, tests_a), fitted, n_boot=0)
    # the bare model checked too: fit_model leaves its split on it (user test 16: the README's snippet passed net.model, and a
    # within-subject model scored on a LOSO split reached r 0.32 for an honest 0.007); as the reference or baseline as well
    with pytest.raises(Eeg2fmriInputError, match=rf"evaluate_split: the model was fitted on subjects \['{a}'\]"):
        evaluate_split(tiny_prepared, tests_a, split_targets(tiny_prepared, tests_a), fitted.model, n_boot=0)
    assert fitted.model.fit_split_ is trained_on_a
    fit_b = fit_model(tiny_prepared, tests_a, "ridge_hrf", {"hrf": "canonical"})
    with pytest.raises(Eeg2fmriInputError, match=rf"evaluate_split: the reference was fitted on subjects \['{a}'\]"):
        evaluate_split(tiny_prepared, tests_a, split_targets(tiny_prepared, tests_a), fit_b, reference=fitted.model, n_boot=0)
    import copy

    foreign = copy.copy(fitted.model)
    del foreign.fit_split_  # a model from elsewhere (no record): scored, with an info line
    evaluate_split(tiny_prepared, tests_a, split_targets(tiny_prepared, tests_a), foreign, n_boot=0)
    # the README's snippet (user test 11): a within fit evaluated on its own split -- the test span lies one gap after
    # validation, which is held out (session 22's check also padded by the EEG window and refused it); a split whose
    # test span starts inside that gap is still refused
    from eeg2fmri.evaluation.protocol import seen_test_windows

    within = make_split(tiny_prepared, "within")
    fit_w = fit_model(tiny_prepared, within, "ridge_hrf", {"hrf": "canonical"})
    assert evaluate_split(tiny_prepared, within, split_targets(tiny_prepared, within), fit_w, n_boot=0)["model"] == "ridge_hrf"
    n_test = sum(len(v) for v in within.selections["test"].values())
    assert seen_test_windows(tiny_prepared, within, within) == (0, n_test)
    closer = make_split(tiny_prepared, "within", gap=within.gap // 2)
    seen, total = seen_test_windows(tiny_prepared, closer, within)  # its first test windows lie within the recorded gap
    assert 0 < seen < total
    with pytest.raises(Eeg2fmriInputError, match=r"test windows lie within \d+ volumes of windows it was trained or validated on"):
        evaluate_split(tiny_prepared, closer, split_targets(tiny_prepared, closer), fit_w, n_boot=0)


def test_a_run_without_a_complete_window_says_how_to_go_on(tiny_prepared):
    """User test 10: a subject too short for one window was refused with 'use a shorter window' only."""
    run = tiny_prepared.runs[0]
    with pytest.raises(Eeg2fmriInputError, match=rf"{run.key}: no volume has a complete 10000-sample EEG window \(the run has {len(run.onsets)} "
                                                 r"volumes\); use a shorter window \(split option n_frames\), or leave the subject out \(data.subjects\)"):
        make_split(tiny_prepared, "within", n_frames=10000)


def test_a_run_too_short_to_split_is_named_with_the_ways_on(tiny_prepared):
    """User test 10: 'cannot split 20 volumes ... into fractions (0.8, 0.2, 0.0)' named neither the run nor the subject."""
    run = tiny_prepared.runs[0]
    with pytest.raises(Eeg2fmriInputError, match=rf"{run.key} \(subject {run.subject}\): its training/validation spans: cannot split "
                                                 r"\d+ volumes .*Or validate on a held-out subject instead \(val_subjects: next, with >= 3 "
                                                 r"subjects\), leave the subject out \(data.subjects\)"):
        make_split(tiny_prepared, "loso", gap=len(run.onsets))


def test_mean_fit_refuses_mismatched_rows_and_torch_predictor_clones():
    """User test 41: mean.fit(x, y[:-3]) was accepted in silence; TorchPredictor.get_params() lacked scikit-learn's deep
    argument (scikit-learn's helpers call get_params(deep=...))."""
    from torch import nn

    from eeg2fmri.models import DataSpec, build_model
    from eeg2fmri.models.predictor import TorchPredictor

    spec = DataSpec(input_kind="bandpower", input_shape=(3, 2, 4), output_shape=(5,), sfreq=250.0, tr=2.0)
    x, y = np.zeros((7, 3, 2, 4), np.float32), np.zeros((7, 5), np.float32)
    with pytest.raises(Eeg2fmriInputError, match=r"mean.fit: expected as many targets as windows, got 7 windows and 4 targets"):
        build_model("mean", spec).fit(x, y[:4])
    pred = TorchPredictor(nn.Linear(24, 5), spec, {"width": 3})
    assert pred.get_params(deep=False) == pred.get_params() == {"width": 3}
    assert pred.get_params(deep=True) == {"width": 3}
