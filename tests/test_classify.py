"""``eeg2fmri classify``: subject-wise nested CV, permutation null, subject-bootstrap CI; labels from events/participants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eeg2fmri.evaluation.classify import (
    GroupedLogistic,
    _permute,
    block_samples,
    classify,
    participant_labels,
    volume_labels_from_events,
)
from eeg2fmri.utils.validation import Eeg2fmriInputError

_FAST = GroupedLogistic(Cs=(0.1, 1.0), inner_splits=2)


def _blocks(n_subjects: int = 6, per_subject: int = 14, n_features: int = 9, effect: float = 1.2, seed: int = 0, fingerprint: float = 2.0):
    """Samples of two alternating conditions per subject, a subject fingerprint on every feature, ``effect`` on features 0-2."""
    rng = np.random.default_rng(seed)
    y = np.tile(np.array(["rest", "task"]), n_subjects * per_subject // 2)
    groups = np.repeat([f"s{i}" for i in range(n_subjects)], per_subject)
    x = rng.standard_normal((len(y), n_features)) + fingerprint * rng.standard_normal((n_subjects, n_features))[np.repeat(np.arange(n_subjects), per_subject)]
    x[y == "task", :3] += effect
    return x, y, groups


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_grouped_logistic_is_a_scikit_learn_estimator():
    from sklearn.utils.estimator_checks import check_estimator

    failed = [r for r in check_estimator(GroupedLogistic(Cs=(0.1, 1.0)), on_fail=None, on_skip=None) if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:120]) for r in failed]


def test_above_the_permutation_null_with_an_effect():
    x, y, g = _blocks(effect=1.5, per_subject=10, fingerprint=0.3)
    res = classify(x, y, g, n_permutations=19, n_boot=300, estimator=_FAST, random_state=0, progress_bar=False)
    assert res["cv"] == "leave-one-subject-out" and res["n_subjects"] == 6 and res["permutation"] == "labels permuted within each subject"
    assert res["balanced_accuracy"] > 0.8 and res["balanced_accuracy"] > res["null_95"]
    assert res["p_value"] == pytest.approx(1 / 20)  # no permutation reached it
    assert res["ci95"][0] > 0.6 and abs(res["null_mean"] - 0.5) < 0.1
    assert len(res["chosen_C"]) == 6  # one nested choice per outer fold


def test_at_chance_on_shuffled_labels_and_the_leak_it_guards_against():
    """Subject-level labels unrelated to the features, strong subject fingerprints: subject-wise CV is at chance. The same data
    with sample-wise folds (every sample its own group) is far above chance -- the leak a non-grouped CV would report."""
    x, _, g = _blocks(n_subjects=6, per_subject=8, effect=0.0, seed=1)
    rng = np.random.default_rng(3)
    subject_label = dict(zip(np.unique(g), rng.permutation(np.repeat(["a", "b"], 3))))
    y = np.array([subject_label[s] for s in g])
    res = classify(x, y, g, n_permutations=19, n_boot=300, estimator=_FAST, random_state=0, progress_bar=False)
    assert res["permutation"] == "subjects' labels permuted between subjects"
    assert res["p_value"] > 0.05 and res["balanced_accuracy"] < res["null_95"]  # within the null of 6 subject-level labels
    leaky = classify(x, y, np.arange(len(y)), n_splits=5, n_permutations=0, estimator=_FAST, random_state=0, progress_bar=False)
    assert leaky["balanced_accuracy"] > 0.75  # sample-wise folds learn the subjects, hence their labels


def test_permutations_keep_the_grouping():
    rng = np.random.default_rng(0)
    y = np.array(list("aabbb" "abab"))
    g = np.array([0] * 5 + [1] * 4)
    for _ in range(5):
        p = _permute(y, g, rng)
        for k in (0, 1):
            assert sorted(p[g == k]) == sorted(y[g == k])
    y2 = np.array(list("aaabbb"))
    g2 = np.array([0, 0, 1, 1, 2, 2])
    y2 = np.array(["a", "a", "b", "b", "a", "a"])
    p2 = _permute(y2, g2, rng)
    assert all(len(set(p2[g2 == k])) == 1 for k in range(3)) and sorted(p2) == sorted(y2)


def test_classify_errors():
    x, y, g = _blocks(n_subjects=3, per_subject=4)
    with pytest.raises(Eeg2fmriInputError, match="at least 3 subjects"):
        classify(x[:8], y[:8], g[:8])
    with pytest.raises(Eeg2fmriInputError, match="at least 2 classes"):
        classify(x, np.full(len(y), "task"), g)
    with pytest.raises(Eeg2fmriInputError, match="non-finite"):
        classify(np.where(np.eye(len(x), x.shape[1]) > 0, np.nan, x), y, g)
    with pytest.raises(Eeg2fmriInputError, match=r"expected X \(n_samples, n_features\)"):
        classify(x, y[:-1], g)
    with pytest.raises(Eeg2fmriInputError, match="n_permutations >= 0"):
        classify(x, y, g, n_permutations=-1)


def test_block_samples_hand_computed(tiny_prepared):
    r0, r1 = (r.n_volumes for r in tiny_prepared.runs[:2])
    lab = {0: np.array(["a"] * 10 + ["b"] * (r0 - 10)), 1: np.array(["b"] * r1)}
    series = {0: np.arange(r0, dtype=float)[:, None], 1: np.ones((r1, 1))}
    x, y, g = block_samples(tiny_prepared, lab, series, delay_volumes=2, standardize=False)
    assert y.tolist() == ["a", "b", "b"] and g.tolist() == [tiny_prepared.runs[0].subject, tiny_prepared.runs[0].subject, tiny_prepared.runs[1].subject]
    assert x[0, 0] == pytest.approx(np.arange(2, 12).mean()) and x[1, 0] == pytest.approx(np.arange(12, r0).mean())
    x2, y2, _ = block_samples(tiny_prepared, lab, series, max_block=4, standardize=False)
    assert y2.tolist()[:3] == ["a", "a", "a"] and x2[0, 0] == pytest.approx(1.5)


def test_labels_errors(tiny_prepared, tmp_path, monkeypatch):
    with pytest.raises(Eeg2fmriInputError, match="every volume has the same condition"):
        volume_labels_from_events(tiny_prepared)  # resting-state simulation: events.tsv without events
    # an event-related design (user test 48): instantaneous stimuli (duration 0) label no volume -- said so
    ev = tmp_path / "task-odd_events.tsv"
    ev.write_text("onset\tduration\ttrial_type\n" + "".join(f"{3.0 + 1.7 * k:.2f}\t0\t{'deviant' if k % 5 == 0 else 'standard'}\n"
                                                           for k in range(40)))
    from eeg2fmri.evaluation import classify as cl

    monkeypatch.setattr(cl, "_events_candidates", lambda bold, root: [ev])
    with pytest.raises(Eeg2fmriInputError, match=r"events: all 80 events in the runs' events\.tsv files have duration 0 \(an "
                                                 r"event-related design\), so no volume lies inside an event; .* give the events their "
                                                 r"durations in events\.tsv, or pass labels= per volume"):
        volume_labels_from_events(tiny_prepared)
    monkeypatch.undo()
    with pytest.raises(Eeg2fmriInputError, match="expected a participants.tsv"):
        participant_labels(tiny_prepared, "group", participants=tmp_path / "none.tsv")
    p = tmp_path / "participants.tsv"
    p.write_text("participant_id\tage\nsub-01\t30\nsub-02\t\n")
    with pytest.raises(Eeg2fmriInputError, match="expected a column 'group'"):
        participant_labels(tiny_prepared, "group", participants=p)
    with pytest.raises(Eeg2fmriInputError, match="subject '02' has no value in column 'age'"):
        participant_labels(tiny_prepared, "age", participants=p)


@pytest.fixture(scope="module")
def task_run(tmp_path_factory):
    """4 subjects x 3 min of 20 s task blocks, prepared, and a ridge_hrf model saved as a run with its split."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import save_model
    from eeg2fmri.simulate import simulate_dataset
    from eeg2fmri.training import fit_model

    root = tmp_path_factory.mktemp("task")
    bids = simulate_dataset(root / "bids", n_subjects=4, minutes=3.0, voxel_size=12.0, n_channels=16, n_regions=8, n_networks=3, sfreq=100.0,
                            seed=5, task="blocks", task_block=20.0, progress_bar=False)
    ds = prepare_dataset(bids, progress_bar=False)
    prep = ds.save(root / "prepared")
    sp = make_split(ds, "within")
    fitted = fit_model(ds, sp, "ridge_hrf", {"hrf": "canonical"}, targets=split_targets(ds, sp))
    card = {"training data": {"prepared": str(prep)}, "split": {"protocol": "within", "gap_volumes": sp.gap}}
    save_model(fitted.model, root / "run" / "model", card=card, spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(),
               mask=ds.mask, affine=ds.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=ds.config.to_dict())
    return root


@pytest.mark.slow
def test_classify_cli_on_simulated_task_blocks(task_run, capsys):
    from eeg2fmri.cli import main

    out = task_run / "cls"
    assert main(["classify", str(task_run / "run"), "--n-permutations", "19", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "source" in printed and "wrote" in printed
    doc = json.loads((out / "classify.json").read_text())
    # under the table: the permutation test's floor and the note on the synthesised source (user test 9: only in the JSON)
    assert "p: label permutations (19); the smallest p they can give is 1/(19+1) = 0.050." in printed
    assert f"note (synth): {doc['notes']['synth']}." in printed
    res = doc["results"]
    assert set(res) == {"synth", "eeg", "bold"} and "in-sample for the synthesis" in doc["notes"]["synth"]
    for src in ("eeg", "bold", "synth"):
        assert res[src]["balanced_accuracy"] > res[src]["null_95"], (src, res[src])
        assert res[src]["p_value"] <= 0.05 and res[src]["cv"] == "leave-one-subject-out"
    rows = (out / "classify.tsv").read_text().splitlines()
    assert rows[0].startswith("source\tbalanced_accuracy\tci_low\tci_high") and len(rows) == 4
    assert main(["classify", str(task_run / "run"), "--out", str(out), "-q"]) == 2
    assert "output directory already exists" in capsys.readouterr().err
    assert main(["classify", "--data", str(task_run / "prepared"), "--sources", "synth", "--out", str(task_run / "x"), "-q"]) == 2
    assert "source 'synth' needs a trained model" in capsys.readouterr().err
    assert main(["classify", "--data", str(task_run / "prepared"), "--labels", "age", "--out", str(task_run / "x"), "-q"]) == 2
    assert ("labels: expected 'events', 'participants:COLUMN' or a per-volume label the prepared dataset stores, got 'age'; this "
            "dataset stores none (layouts such as ds003768 give them") in capsys.readouterr().err
    assert not (task_run / "x").exists()


def test_classify_json_is_strict_json_without_permutations(tiny_prepared, tmp_path, monkeypatch):
    """n_permutations=0: no p-value or null (NaN in memory); classify.json says null, not a bare NaN strict parsers refuse."""
    import eeg2fmri.workflows.classify as wf

    x, y, g = _blocks(n_subjects=3, per_subject=8)
    res = classify(x, y, g, n_permutations=0, n_boot=50, estimator=_FAST, random_state=0, progress_bar=False)
    assert np.isnan(res["p_value"]) and res["n_permutations"] == 0
    prep = tiny_prepared.save(tmp_path / "prepared")
    # two subjects are refused before any source is built (user test 17: it took 35 s to say so)
    with pytest.raises(Eeg2fmriInputError, match=r"classify: expected samples from at least 3 subjects .*got 2 \(01, 02\) in "):
        wf.classify_run(data=prep, sources=["eeg"], n_permutations=0, out=tmp_path / "cls", progress_bar=False)
    monkeypatch.setattr(wf, "volume_labels_from_events", lambda ds: {})  # the tiny simulation is resting state
    monkeypatch.setattr(wf, "classify_dataset", lambda *a, **k: {"eeg": res})
    monkeypatch.setattr(type(tiny_prepared), "subjects", property(lambda self: ["01", "02", "03"]))  # (classification itself is mocked)
    out, _ = wf.classify_run(data=prep, sources=["eeg"], n_permutations=0, out=tmp_path / "cls", progress_bar=False)
    text = (out / "classify.json").read_text()
    assert "NaN" not in text and "Infinity" not in text

    def refuse(const):
        raise ValueError(f"not strict JSON: {const}")

    doc = json.loads(text, parse_constant=refuse)
    eeg = doc["results"]["eeg"]
    assert eeg["p_value"] is None and eeg["null_mean"] is None and eeg["null_95"] is None and eeg["n_permutations"] == 0
    assert eeg["balanced_accuracy"] == pytest.approx(res["balanced_accuracy"])


def test_eeg_source_of_tangent_data_is_its_band_power_block(tiny_bids, tiny_prepared):
    """The `eeg` source on a tangent dataset (what quickstart and benchmark prepare for the flagship) reads its band-power
    block: the same features as a band-power preparation of the same recordings (it was refused)."""
    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import PrepareConfig
    from eeg2fmri.workflows.classify import source_series

    tan = prepare_dataset(tiny_bids, PrepareConfig(representation="tangent"), progress_bar=False)
    got, want = source_series(tan, "eeg"), source_series(tiny_prepared, "eeg")
    assert sorted(got) == sorted(want)
    for i in want:
        np.testing.assert_allclose(got[i], want[i], rtol=1e-6, atol=1e-6)
        assert np.isfinite(want[i]).any()
    stft = prepare_dataset(tiny_bids, PrepareConfig(representation="stft"), progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"classify: the EEG source uses band power, got a 'stft' dataset; prepare the data with "
                                                 r"representation='bandpower' \(or 'tangent'"):
        source_series(stft, "eeg")


def test_events_of_fmriprep_derivatives_are_found_in_the_raw_bids_folder(tiny_prepared, tmp_path):
    """A run prepared from fMRIPrep derivatives: its events.tsv is looked up beside the preprocessed BOLD, under the name
    without the spatial entities, and in the raw BIDS folder (user test: only the derivative name was tried); none: the
    error lists what was tried and a fix a command-line user has."""
    from dataclasses import replace

    from eeg2fmri.evaluation.classify import _events_candidates

    bold = tmp_path / "deriv/sub-01/ses-2/func/sub-01_ses-2_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz"
    got = _events_candidates(bold, tmp_path / "raw")
    assert got == [bold.with_name("sub-01_ses-2_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_events.tsv"),
                   bold.with_name("sub-01_ses-2_task-rest_run-1_events.tsv"),
                   tmp_path / "raw/sub-01/ses-2/func/sub-01_ses-2_task-rest_run-1_events.tsv",
                   tmp_path / "raw/task-rest_events.tsv"]  # (BIDS inheritance: the task's events at the dataset root)
    assert _events_candidates(tmp_path / "sub-01_task-rest_bold.nii", None) == [tmp_path / "sub-01_task-rest_events.tsv"]
    # through volume_labels_from_events: a dataset whose recorded BOLD is a derivative, events only in the raw folder
    key = tiny_prepared.runs[0].key
    deriv = tmp_path / "d" / f"{key}_space-MNI_desc-preproc_bold.nii.gz"
    raw_events = tmp_path / "r" / "sub-01" / "func" / f"{key}_events.tsv"
    raw_events.parent.mkdir(parents=True)
    raw_events.write_text("onset\tduration\ttrial_type\n10\t20\ttask\n60\t20\ttask\n")
    inputs = {r.key: {**tiny_prepared.provenance["inputs"][r.key], "bold": str(deriv)} for r in tiny_prepared.runs}
    one = replace(tiny_prepared, runs=tiny_prepared.runs[:1], provenance={**tiny_prepared.provenance, "inputs": inputs, "bids_root": str(tmp_path / "r")})
    labels = volume_labels_from_events(one)
    assert set(labels[0]) == {"rest", "task"}
    # a second run without an events file (a rest run, ordinary BIDS): all its volumes are the baseline (user test 15:
    # refused before)
    own = {r.key: {**tiny_prepared.provenance["inputs"][r.key], "bold": str(tmp_path / "d" / f"{r.key}_space-MNI_desc-preproc_bold.nii.gz")}
           for r in tiny_prepared.runs}
    two = replace(tiny_prepared, runs=tiny_prepared.runs[:2], provenance={**tiny_prepared.provenance, "inputs": own, "bids_root": str(tmp_path / "r")})
    assert tiny_prepared.runs[1].key != key
    labels = volume_labels_from_events(two)
    assert set(labels[0]) == {"rest", "task"} and set(labels[1]) == {"rest"} and len(labels[1]) == tiny_prepared.runs[1].n_volumes
    # BIDS inheritance: one events file at the dataset root for every run of the task (a review: such runs were all rest)
    task = dict(p.split("-", 1) for p in tiny_prepared.runs[1].key.split("_") if "-" in p)["task"]
    root_events = tmp_path / "r" / f"task-{task}_events.tsv"
    root_events.write_text("onset\tduration\ttrial_type\n10\t20\tinherited\n")
    assert set(volume_labels_from_events(two)[1]) == {"rest", "inherited"}
    root_events.unlink()
    raw_events.unlink()
    with pytest.raises(Eeg2fmriInputError, match=r"_desc-preproc_events\.tsv: expected the runs' events files \(onset, duration, trial_type\) beside their BOLD or EEG files, "
                                                 r"found none for any of the 1 run\(s\); add BIDS \*_events\.tsv files for the task runs, or "
                                                 r"classify subjects instead \(--labels participants:COLUMN"):
        volume_labels_from_events(one)


def test_balanced_accuracy_of_classes_a_fold_lacks_is_quiet():
    """Sleep stages decoded subject-wise (a user test of this session): a held-out subject without some stage gave one sklearn
    warning per fold and permutation; the score is the mean recall over the classes present, as sklearn defines it."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    from eeg2fmri.evaluation.classify import _balanced_accuracy

    y, p = np.array(["W", "W", "1", "1"]), np.array(["W", "2", "1", "R"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ref = balanced_accuracy_score(y, p)
    assert any("y_pred contains classes not in y_true" in str(w.message) for w in seen)
    assert _balanced_accuracy(y, p) == ref == 0.5  # (warnings are errors in this suite: none raised)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_many_features_are_fitted_in_the_samples_span_with_the_same_predictions(n_classes):
    """More features than samples: the L2 logistic regression is fitted on the standardised samples' principal-component
    scores, which gives the same solution (it lies in their span) much faster; predictions and probabilities equal those
    of the fit on every feature (liblinear for two classes, lbfgs for more)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from eeg2fmri.evaluation.classify import GroupedLogistic

    rng = np.random.default_rng(0)
    n, p = 40, 600
    y = np.arange(n) % n_classes
    X = rng.standard_normal((n, p)) + 0.8 * y[:, None] * (np.arange(p) < 20)
    Xt = rng.standard_normal((25, p)) + 0.8 * (np.arange(25) % n_classes)[:, None] * (np.arange(p) < 20)
    est = GroupedLogistic(Cs=(0.05,))
    fast = est._pipe(0.05, n_classes, n, p).fit(X, y)
    assert len(fast.steps) == 3  # scaler, PCA, logistic
    full = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, class_weight="balanced", solver="liblinear" if n_classes == 2 else "lbfgs",
                                                              max_iter=5000, tol=1e-10, random_state=0)).fit(X, y)
    fast[-1].set_params(tol=1e-10, max_iter=5000)
    fast.fit(X, y)
    np.testing.assert_array_equal(fast.predict(Xt), full.predict(Xt))
    np.testing.assert_allclose(fast.predict_proba(Xt), full.predict_proba(Xt), atol=2e-3)
    assert len(est._pipe(0.05, n_classes, n, 30).steps) == 2  # fewer features than samples: no projection


def test_per_subject_scores_are_balanced_accuracies():
    """User test 20: classify.json's per_subject held plain accuracies beside the pooled balanced accuracy."""
    from sklearn.metrics import balanced_accuracy_score

    from eeg2fmri.evaluation.classify import _cv_predict, _outer_cv

    x, y, g = _blocks(n_subjects=4, per_subject=12, effect=0.8, seed=3)
    keep = ~((g == "s0") & (y == "task") & (np.arange(len(y)) % 4 == 1))  # subject s0 unbalanced: accuracy != balanced accuracy
    x, y, g = x[keep], y[keep], g[keep]
    res = classify(x, y, g, n_permutations=0, n_boot=10, random_state=0, progress_bar=False)
    assert res["per_subject_measure"].startswith("balanced accuracy")
    pred, _ = _cv_predict(x, y, g, _outer_cv(g, None)[0], GroupedLogistic(random_state=0))  # the same predictions
    for s_ in ("s0", "s1", "s2", "s3"):
        assert res["per_subject"][s_] == pytest.approx(balanced_accuracy_score(y[g == s_], pred[g == s_]))


def test_classify_table_prints_chance():
    """User test 33: chance (1/3 for three classes) was only in classify.json, not in the printed table."""
    from eeg2fmri.workflows.classify import format_table

    row = {"balanced_accuracy": 0.6333, "ci95": [0.583, 0.683], "chance": 1 / 3, "null_mean": 0.334, "null_95": 0.39, "p_value": 0.048,
           "n_samples": 120, "n_subjects": 4, "n_features": 7, "cv": "leave-one-subject-out", "n_permutations": 20}
    text = format_table({"synth": row}, {"synth": "in-sample"})
    head, line = text.splitlines()[:2]
    assert head.split()[5] == "chance" and line.split()[4] == "0.333"
    assert "note (synth): in-sample." in text


def test_events_beside_the_eeg_label_volumes_in_eeg_time(tiny_prepared, tmp_path):
    """User test 48: events kept beside the EEG (where an EEG-fMRI study writes the events it took from the EEG's markers)
    were never found; they are used when the BOLD has none, their onsets compared with the volumes' onsets in the EEG
    (EEG time, not BOLD time), and the scanner's own volume markers listed there are no condition."""
    import shutil
    from dataclasses import replace

    run = tiny_prepared.runs[0]
    eeg = tmp_path / "eeg" / f"{run.key}_eeg.vhdr"
    eeg.parent.mkdir()
    src = Path(tiny_prepared.provenance["inputs"][run.key]["eeg"])
    shutil.copy(src, eeg)
    t_on = float(run.onsets[10])  # volume 10's onset in the EEG: a block from it, 10 volumes long
    rows = [f"{float(run.onsets[k]):.3f}\t0.01\tResponse/R128" for k in range(run.n_volumes)]  # the scanner's markers
    rows.append(f"{t_on - 0.001:.3f}\t{10 * tiny_prepared.tr:.3f}\tmotor")
    eeg.with_name(f"{run.key}_events.tsv").write_text("onset\tduration\ttrial_type\n" + "\n".join(rows) + "\n")
    inputs = {run.key: {**tiny_prepared.provenance["inputs"][run.key], "eeg": str(eeg), "bold": str(tmp_path / "func" / "none_bold.nii.gz")}}
    one = replace(tiny_prepared, runs=[run], provenance={**tiny_prepared.provenance, "inputs": inputs})
    lab = volume_labels_from_events(one)[0]
    assert list(np.flatnonzero(lab == "motor")) == list(range(10, 20)) and set(lab) == {"rest", "motor"}
    eeg.with_name(f"{run.key}_events.tsv").write_text("onset\tduration\ttrial_type\n" + "\n".join(rows[:-1]) + "\n")
    with pytest.raises(Eeg2fmriInputError, match=r"none_events\.tsv: expected the runs' events files \(onset, duration, trial_type\) "
                                                 r"beside their BOLD or EEG files, found none"):
        volume_labels_from_events(one)  # the scanner's markers only: no events file of the task
