"""Mistakes a user makes with configs and output folders: refused by name, nothing of theirs deleted, a failed start retried."""

from __future__ import annotations

import json
import os

import pytest

from eeg2fmri.utils.validation import Eeg2fmriInputError


def test_overwrite_never_replaces_a_folder_of_other_files_or_the_working_directory(tmp_path, monkeypatch):
    from eeg2fmri.utils.atomic import atomic_dir

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(Eeg2fmriInputError, match=r"mine: expected a previous output directory to replace \(it would hold manifest\.json\), found "
                                                 r"other files \['notes\.txt'\]; --overwrite replaces only a previous output"):
        with atomic_dir(mine, overwrite=True, marker="manifest.json"):
            pass
    assert (mine / "notes.txt").read_text() == "keep"
    monkeypatch.chdir(mine)
    for target in (mine, tmp_path):  # the working directory and a folder above it
        with pytest.raises(Eeg2fmriInputError, match=r"found the working directory \(or a folder above it\)"):
            with atomic_dir(target, overwrite=True):
                pass
    # a previous output of the same kind is replaced
    prev = tmp_path / "prev"
    prev.mkdir()
    (prev / "manifest.json").write_text("{}")
    with atomic_dir(prev, overwrite=True, marker="manifest.json") as d:
        (d / "manifest.json").write_text('{"new": 1}')
    assert json.loads((prev / "manifest.json").read_text()) == {"new": 1}


def test_two_runs_writing_one_output_keep_both_results(tmp_path, monkeypatch):
    """User test 29: a second process that writes the same output while this one runs is neither replaced nor blamed
    on the user; this run's result is kept beside it under a visible name."""
    from eeg2fmri.utils.atomic import atomic_dir, atomic_file

    out = tmp_path / "model"
    with pytest.raises(Eeg2fmriInputError, match=r"model: expected to create this output directory, found one another process wrote while "
                                                 r"this run worked \(it did not exist when this run began\).*this run's result is at "
                                                 r".*model\.unsaved-\d+\. Run one command per output at a time"):
        with atomic_dir(out) as d:
            (d / "mine.txt").write_text("this run")
            out.mkdir()
            (out / "theirs.txt").write_text("other run")
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    kept = next(tmp_path.glob("model.unsaved-*"))
    assert (kept / "mine.txt").read_text() == "this run"
    img = tmp_path / "pred.nii.gz"
    with pytest.raises(Eeg2fmriInputError, match=r"pred\.nii\.gz: expected to create this output file, found one another .*pred\.unsaved-\d+\.nii\.gz"):
        with atomic_file(img) as t:
            t.write_text("this run")
            img.write_text("other run")
    assert img.read_text() == "other run"
    assert next(tmp_path.glob("pred.unsaved-*.nii.gz")).read_text() == "this run"
    assert not list(tmp_path.glob(".pred*")) and not list(tmp_path.glob(".model*"))  # no hidden temporaries left
    # again: an earlier kept result is not replaced; a file system without hard links gives the same outcome
    import eeg2fmri.utils.atomic as atomic

    def no_links(src, dst):
        raise PermissionError("operation not permitted")

    for links in (True, False):
        if not links:
            monkeypatch.setattr(atomic.os, "link", no_links)
        img.unlink()
        with pytest.raises(Eeg2fmriInputError, match=r"pred\.unsaved-\d+-\d\.nii\.gz"):
            with atomic_file(img) as t:
                t.write_text(f"run links={links}")
                img.write_text("other run")
        assert img.read_text() == "other run"
    assert sorted(p.read_text() for p in tmp_path.glob("pred.unsaved-*.nii.gz")) == ["run links=False", "run links=True", "this run"]
    monkeypatch.undo()
    # with overwrite the later run replaces, as asked
    with atomic_file(img, overwrite=True) as t:
        t.write_text("third")
    assert img.read_text() == "third"


def test_train_folder_rules(tiny_prepared, tmp_path, capsys):
    """A run that failed before training (bad hyperparameter) is started again in the same folder; --overwrite refuses a
    folder that is not a training run; unknown hyperparameters, YAML errors and split options of the wrong type are
    refused by name."""
    import yaml

    from eeg2fmri.cli import main

    prep = tiny_prepared.save(tmp_path / "prepared")
    cfg = {"seed": 0, "data": {"prepared": str(prep)}, "model": {"name": "ridge_hrf", "hparams": {"alfa": 3}}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    assert main(["train", str(bad), "--out", str(run), "-q"]) == 2
    assert ("bad.yaml: model.hparams.alfa: expected a hyperparameter of model 'ridge_hrf' (alphas, hrf, alpha_per_target, factored, "
            "refit, hrf_select, inputs, event_gain, slow_gain), got 'alfa' (did you mean 'alphas'?); fix the name (nothing was written)") in capsys.readouterr().err
    assert not run.exists()  # refused before the folder was made (user test 11: it held config.yaml)
    cfg["model"]["hparams"] = {}
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(good), "--out", str(run), "-q"]) == 0  # no --overwrite needed: the failed run never trained
    assert (run / "metrics.json").exists()
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("1,2")
    assert main(["train", str(good), "--out", str(other), "--overwrite", "-q"]) == 2
    assert "expected a previous training run folder to replace (it would hold config.yaml), found other files ['data.csv']" in capsys.readouterr().err
    assert (other / "data.csv").exists()
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: 0\ndata:\n  prepared: x\n   subjects: [01]\n")
    assert main(["train", str(broken), "--out", str(tmp_path / "b"), "-q"]) == 2
    assert "broken.yaml: not valid YAML at line 4, column" in capsys.readouterr().err
    for split, msg in ((({"protocol": "within", "n_frames": "nine"}), "split option n_frames: expected a whole number >= 1, got 'nine'"),
                       ({"protocol": "loso", "test_subjects": "02"}, "split option test_subjects: expected a list of subject labels, got the string '02'"),
                       ({"protocol": "within", "fractions": "abc"}, "split option fractions: expected three shares")):
        f = tmp_path / "split.yaml"
        f.write_text(yaml.safe_dump({**cfg, "split": split}))
        assert main(["train", str(f), "--out", str(tmp_path / "s"), "-q"]) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "s").exists() or not os.listdir(tmp_path / "s")


def test_short_test_spans_are_warned(tiny_prepared, caplog):
    """Three minutes per subject leave under 20 test windows each: the evaluation says its scores are very uncertain."""
    import logging

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.protocol import evaluate_split
    from eeg2fmri.training import fit_model

    sp = make_split(tiny_prepared, "within")
    targets = split_targets(tiny_prepared, sp)
    n = min(len(v) for v in sp.selections["test"].values())
    assert n < 20
    fitted = fit_model(tiny_prepared, sp, "ridge_hrf", targets=targets)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        evaluate_split(tiny_prepared, sp, targets, fitted.model, n_boot=0)
    subs = ", ".join(sorted(tiny_prepared.subjects))
    assert any(f"the shortest test span has {n} windows (per subject; subject(s) {subs})" in r.getMessage() and "data.subjects" in r.getMessage()
               for r in caplog.records)  # names the short subjects and how to leave them out (user test 10)
    # ... with each command's own way (user test 11: quickstart users were told to use --protocol, which it does not have)
    assert any("(quickstart and simulate: --minutes)" in r.getMessage() and "prepare/evaluate: --subjects" in r.getMessage() for r in caplog.records)


def test_short_test_span_of_the_only_subject_gets_advice_it_can_take(tiny_prepared, caplog):
    """User test 38: a one-subject dataset was told to hold out whole subjects or leave the short subject out."""
    import logging

    from eeg2fmri.datasets.prepared import select_subjects
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation.protocol import evaluate_split
    from eeg2fmri.training import fit_model

    one = select_subjects(tiny_prepared, ["01"])
    sp = make_split(one, "within")
    targets = split_targets(one, sp)
    fitted = fit_model(one, sp, "ridge_hrf", targets=targets)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        evaluate_split(one, sp, targets, fitted.model, n_boot=0)
    msg = next(r.getMessage() for r in caplog.records if "test span has" in r.getMessage())
    assert "(subject 01, the dataset's only subject)" in msg and "split option fractions" in msg
    assert "protocol loso" not in msg and "data.subjects" not in msg
