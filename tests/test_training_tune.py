"""Hyperparameter search: Optuna on validation data, resumable, writes a complete train config."""

from __future__ import annotations

import json

import pytest

from eeg2fmri.utils.validation import Eeg2fmriInputError
from tests.test_training import MODEL  # noqa: F401  (registers the tiny band-power model)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(prepared_dir, out):
    return {"seed": 5, "out": str(out), "data": {"prepared": str(prepared_dir)}, "model": {"name": MODEL, "hparams": {"hidden": 4}},
            "optimizer": {"batch_size": 8, "max_epochs": 2, "patience": None}, "trainer": {"log": ["csv"], "progress_bar": False, "accelerator": "cpu"},
            "tune": {"lr": {"low": 1e-3, "high": 3e-2, "log": True}, "hidden": {"choices": [4, 8]}, "loss.corr": {"low": 0.0, "high": 0.5}}}


def test_tune_two_trials_resume_to_three(prepared_dir, tmp_path):
    from eeg2fmri.training.config import load_config
    from eeg2fmri.workflows.tune import tune

    cfg = _config(prepared_dir, tmp_path / "search")
    first = tune(cfg, trials=2, pruner="none")
    assert first.n_finished == 2 and (tmp_path / "search" / "tune" / "study.db").exists()
    resumed = tune(cfg, trials=3, pruner="none")
    assert resumed.n_finished == 3
    rows = json.loads((tmp_path / "search" / "tune" / "trials.json").read_text())
    assert [r["number"] for r in rows] == [0, 1, 2] and all(r["state"] == "COMPLETE" for r in rows)
    assert not (tmp_path / "search" / "tune" / "trial_0002" / "checkpoints").exists()
    # an uninterrupted search of three trials proposes the same parameters and finds the same values
    straight = tune(_config(prepared_dir, tmp_path / "straight"), trials=3, pruner="none")
    rows2 = json.loads((tmp_path / "straight" / "tune" / "trials.json").read_text())
    assert [r["params"] for r in rows2] == [r["params"] for r in rows]
    assert [r["value"] for r in rows2] == pytest.approx([r["value"] for r in rows], rel=1e-6)
    assert straight.best_params == resumed.best_params
    # best_config.yaml is a complete train config with the best parameters
    assert resumed.best_config.read_text().startswith("# written by eeg2fmri ")  # the version line config.yaml has (user test 9)
    best = load_config(resumed.best_config)
    assert best["optimizer"]["lr"] == resumed.best_params["lr"] and best["model"]["hparams"]["hidden"] == resumed.best_params["hidden"]
    assert best["loss"]["corr"] == resumed.best_params["loss.corr"] and best["tune"] == {}
    assert best["out"] == str(tmp_path / "search" / "best")
    assert resumed.best_value == min(r["value"] for r in rows)
    # the paths in the file are relative to its folder (user test 9: absolute paths), so the project can be moved;
    # load_config reads them back as the absolute paths above
    import os

    import yaml

    raw = yaml.safe_load(resumed.best_config.read_text())
    assert raw["out"] == "best" and raw["data"]["prepared"] == os.path.relpath(prepared_dir, tmp_path / "search")
    assert best["data"]["prepared"] == str(prepared_dir.resolve()) and "paths are relative to this file's folder" in resumed.best_config.read_text()


def test_tune_errors(prepared_dir, tmp_path):
    from eeg2fmri.workflows.tune import tune

    cfg = _config(prepared_dir, tmp_path / "s")
    with pytest.raises(Eeg2fmriInputError, match=r"config: tune: expected a search space, e\.g\. tune: \{lr: .*found none"):
        tune({**cfg, "tune": {}}, trials=1)
    with pytest.raises(Eeg2fmriInputError, match=r"trainer: expected one device per tuning process, found devices=2, num_nodes=1; run several"):
        tune({**cfg, "trainer": {"devices": 2}}, trials=1)
    with pytest.raises(Eeg2fmriInputError, match=r"config: optimizer\.batch_size, optimizer\.max_epochs, optimizer\.patience, trainer\.accelerator, trainer\.log, lr, "
                                                 r"loss\.corr: expected only model hyperparameters \(and split options\) in the search of the "
                                                 r"closed-form model 'ridge_hrf'"):
        tune({**cfg, "model": {"name": "ridge_hrf"}}, trials=1)
    with pytest.raises(Eeg2fmriInputError, match=r"expected trials to be an integer >= 1, got 0; pass --trials N with N >= 1"):
        tune(cfg, trials=0)
    tune(cfg, trials=1, pruner="none")
    other = {**cfg, "optimizer": {**cfg["optimizer"], "max_epochs": 3}}
    with pytest.raises(Eeg2fmriInputError, match=r"was started from a config that differs in \['optimizer\.max_epochs'\]; resume with the same config"):
        tune(other, trials=2)
    bad = {**cfg, "out": str(tmp_path / "bad"), "tune": {"hidden": {"choices": [0]}}}
    with pytest.raises(Eeg2fmriInputError, match=r"every trial failed; the last one with: .*expected hidden >= 1, got 0"):
        tune(bad, trials=1)


def test_tune_retries_a_trial_whose_process_died_at_once(prepared_dir, tmp_path, caplog):
    """A search resumed right after a kill (before Optuna's 120 s heartbeat grace) reruns the killed trial with its parameters."""
    import os
    import socket
    import subprocess
    import sys

    import optuna

    from eeg2fmri.workflows.tune import tune

    cfg = _config(prepared_dir, tmp_path / "search")
    tune(cfg, trials=1, pruner="none")
    storage = f"sqlite:///{tmp_path / 'search' / 'tune' / 'study.db'}"
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = study.ask()  # RUNNING, as a trial is when its process is killed
    lr = killed.suggest_float("lr", 1e-3, 3e-2, log=True)
    killed.suggest_categorical("hidden", [4, 8])
    killed.suggest_float("loss.corr", 0.0, 0.5)
    killed.set_user_attr("host", socket.gethostname())
    killed.set_user_attr("pid", dead.pid)
    running_elsewhere = study.ask()  # a live process of this machine (this one's parent) or another host: left alone
    running_elsewhere.set_user_attr("host", socket.gethostname())
    running_elsewhere.set_user_attr("pid", os.getppid())
    with caplog.at_level("WARNING", logger="eeg2fmri"):
        res = tune(cfg, trials=2, pruner="none")
    assert f"trial 1 was left running by a process that ended (pid {dead.pid}); running it again" in caplog.text
    rows = {r["number"]: r for r in json.loads((tmp_path / "search" / "tune" / "trials.json").read_text())}
    assert rows[1]["state"] == "FAIL" and "ended before the trial finished; retried" in rows[1]["error"]
    assert rows[2]["state"] == "RUNNING"  # the live one
    assert rows[3]["state"] == "COMPLETE" and rows[3]["params"]["lr"] == lr  # the retry, with the killed trial's parameters
    assert res.n_finished == 2 and len(rows) == 4  # the retried failure is not one of the two


def test_tune_reruns_a_trial_stopped_by_ctrl_c_and_proposes_what_an_uninterrupted_search_would(prepared_dir, tmp_path, monkeypatch, caplog):
    """User test 9: after Ctrl-C the interrupted trial was FAIL for ever (the resumed search finished one trial short), and
    after a kill the trials after the retry were proposed from shifted seeds. Now the interrupted trial is run again with its
    parameters, it does not count, and the completed trials are those of an uninterrupted search, in order."""
    import eeg2fmri.training.trainer as trainer_mod
    from eeg2fmri.workflows.tune import tune

    real = trainer_mod.fit_torch
    calls = []

    def interrupted_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cfg = _config(prepared_dir, tmp_path / "search")
    monkeypatch.setattr(trainer_mod, "fit_torch", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        tune(cfg, trials=3, pruner="none")
    monkeypatch.setattr(trainer_mod, "fit_torch", real)
    with caplog.at_level("WARNING", logger="eeg2fmri"):
        res = tune(cfg, trials=3, pruner="none")
    assert "trial 1 was interrupted; running it again with the same parameters" in caplog.text
    rows = json.loads((tmp_path / "search" / "tune" / "trials.json").read_text())
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"] and "interrupted (Ctrl-C)" in rows[1]["error"]
    assert rows[2]["params"] == rows[1]["params"] and res.n_finished == 3
    tune(_config(prepared_dir, tmp_path / "s2"), trials=3, pruner="none")
    straight = json.loads((tmp_path / "s2" / "tune" / "trials.json").read_text())
    assert [r["params"] for r in rows if r["state"] == "COMPLETE"] == [r["params"] for r in straight]


def test_tune_scores_the_blended_model_and_says_when_the_network_is_never_used(prepared_dir, tmp_path, monkeypatch, caplog, capsys):
    """With monitor val_r, a trial of a model that blends its network with a linear path after training (eeg2fmri_net) is
    scored by the blended validation r (the model that predicts); the network's own best is kept (user test 9: tune chose
    the network's settings by a score the final model did not use)."""
    import eeg2fmri.training.trainer as trainer_mod
    from eeg2fmri.training.result import FitResult
    from eeg2fmri.workflows.tune import tune

    def fake(ds, split, name, hparams, targets, *, train_config, out_dir, **kw):
        lr = float(train_config["optimizer"]["lr"])
        trainer_mod.logger.warning("the model may be under-trained")  # a fit's warning names its trial (user test 9)
        return FitResult(None, None, name, hparams, 0.0, {"best_score": lr, "val_r_blend": 0.5 - lr, "ridge_weight": 1.0, "history": []})

    monkeypatch.setattr(trainer_mod, "fit_torch", fake)
    cfg = {**_config(prepared_dir, tmp_path / "s"), "optimizer": {"batch_size": 8, "max_epochs": 2, "patience": None, "monitor": "val_r"}}
    with caplog.at_level("WARNING", logger="eeg2fmri"):
        res = tune(cfg, trials=3, pruner="none")
    rows = json.loads((tmp_path / "s" / "tune" / "trials.json").read_text())
    assert [r["value"] for r in rows] == pytest.approx([0.5 - r["params"]["lr"] for r in rows])
    assert res.best_params["lr"] == min(r["params"]["lr"] for r in rows)  # the best blend, not the best network
    m = json.loads((tmp_path / "s" / "tune" / "trial_0000" / "metrics.json").read_text())
    assert m["network_value"] == pytest.approx(rows[0]["params"]["lr"]) and m["ridge_weight"] == 1.0
    assert f"in every completed trial {MODEL}'s blend kept its linear path alone (weight 1): the network is not used" in caplog.text
    assert "tune trial 0: the model may be under-trained" in caplog.text and "tune trial 2: the model may be under-trained" in caplog.text
    assert "tune trial" not in caplog.text.split(f"in every completed trial {MODEL}")[1]  # only during a trial
    # the command line says which validation r it printed (user test 9: two unlabelled "validation r" numbers)
    import yaml

    from eeg2fmri.cli import main

    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**cfg, "out": str(tmp_path / "cli")}))
    assert main(["tune", str(tmp_path / "c.yaml"), "--trials", "1", "--pruner", "none", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "(validation val_r: mean voxel r over the validation windows pooled across subjects; train's 'validation mean r' is per subject" in printed
    assert "at noise level" not in printed  # (0.5 - lr: well above it)
    # a best trial at noise level is said (user test 21: -0.0056 reported and written without comment)
    monkeypatch.setattr(trainer_mod, "fit_torch", lambda *a, **k: FitResult(None, None, MODEL, {}, 0.0, {"best_score": 0.0, "val_r_blend": 0.004,
                                                                                                          "history": []}))
    (tmp_path / "c2.yaml").write_text(yaml.safe_dump({**cfg, "out": str(tmp_path / "cli2")}))
    assert main(["tune", str(tmp_path / "c2.yaml"), "--trials", "1", "--pruner", "none", "-q"]) == 0
    assert "the best trial's validation r is at noise level (below 0.02): no configuration tried predicts" in capsys.readouterr().out


def test_tune_storage_errors_and_a_search_that_stopped_before_its_first_trial(prepared_dir, tmp_path):
    """A storage URL SQLAlchemy cannot use is refused before anything is written (user test 9: raw SQLAlchemy tracebacks and
    an empty folder); a search that failed before its first trial (a wrong data path) does not bind the folder to its config."""
    from eeg2fmri.workflows.tune import tune

    cfg = _config(prepared_dir, tmp_path / "s")
    with pytest.raises(Eeg2fmriInputError, match=r"--storage 'study\.db': expected an SQLAlchemy database URL such as sqlite:///runs/study\.db .*"
                                                 r"got one it cannot use \(ArgumentError"):
        tune(cfg, trials=1, storage="study.db")
    with pytest.raises(Eeg2fmriInputError, match=r"--storage 'postgres://nowhere/db': .*got one it cannot use \(NoSuchModuleError"):
        tune(cfg, trials=1, storage="postgres://nowhere/db")
    assert not (tmp_path / "s").exists()
    with pytest.raises(Eeg2fmriInputError, match="manifest.json"):
        tune({**cfg, "data": {"prepared": str(tmp_path / "nowhere")}}, trials=1)
    assert tune(cfg, trials=1, pruner="none").n_finished == 1


def test_tune_searches_a_closed_form_model_as_train_scores_it(prepared_dir, tmp_path):
    """tune searched torch models only; a closed-form model's trial is one fit scored on the validation windows, and the best
    trial's value is the validation r that `train` of best_config.yaml reports."""
    from eeg2fmri.workflows.train import train
    from eeg2fmri.workflows.tune import tune

    cfg = {"seed": 1, "out": str(tmp_path / "ridge"), "data": {"prepared": str(prepared_dir)},
           "model": {"name": "ridge_hrf", "hparams": {}}, "optimizer": {"monitor": "val_r"}, "trainer": {"progress_bar": False},
           "tune": {"hrf": {"choices": ["canonical", "lags"]}, "alpha_per_target": {"choices": [True, False]}}}
    res = tune(cfg, trials=3, pruner="none")
    rows = json.loads((tmp_path / "ridge" / "tune" / "trials.json").read_text())
    assert len(rows) == 3 and all(r["state"] == "COMPLETE" for r in rows)
    assert res.best_value == max(r["value"] for r in rows) and res.monitor == "val_r" and res.closed_form
    trial = json.loads((tmp_path / "ridge" / "tune" / f"trial_{rows[0]['number']:04d}" / "metrics.json").read_text())
    assert trial["value"] == pytest.approx(trial["validation"]["mean_r"]) and trial["fit_seconds"] > 0
    run = train(res.best_config, evaluate_test=False)
    assert run.metrics["validation"]["mean_r"] == pytest.approx(res.best_value, rel=1e-6)
    # a split option in the search: each trial's split of the dataset loaded once, and train of the best config agrees
    nf = tune({**cfg, "out": str(tmp_path / "nf"), "tune": {"split.n_frames": {"choices": [3, 5]}}}, trials=2, pruner="none")
    rows = json.loads((tmp_path / "nf" / "tune" / "trials.json").read_text())
    assert {r["params"]["split.n_frames"] for r in rows} <= {3, 5} and len({r["value"] for r in rows}) == len({r["params"]["split.n_frames"] for r in rows})
    assert train(nf.best_config, evaluate_test=False).metrics["validation"]["mean_r"] == pytest.approx(nf.best_value, rel=1e-6)
    # the default monitor (val_loss): the validation mse, minimised
    low = tune({**cfg, "out": str(tmp_path / "mse"), "optimizer": {}}, trials=2, pruner="none")
    rows = json.loads((tmp_path / "mse" / "tune" / "trials.json").read_text())
    assert low.best_value == min(r["value"] for r in rows) and low.monitor == "val_loss"


def test_best_config_header_counts_trials_that_did_not_complete():
    """User test 34: the log said 4 finished trials, best_config.yaml "best of 3 completed", and nothing named the pruned one."""
    from types import SimpleNamespace

    import optuna

    from eeg2fmri.workflows.tune import _not_completed

    st = optuna.trial.TrialState
    trials = [SimpleNamespace(state=s) for s in (st.COMPLETE, st.PRUNED, st.COMPLETE, st.FAIL, st.PRUNED)]
    assert _not_completed(trials) == "; also 2 pruned, 1 failed"
    assert _not_completed(trials[:1]) == ""


def test_a_trial_whose_model_crashes_fails_and_the_search_goes_on(prepared_dir, tmp_path, monkeypatch, caplog):
    """User test 41: a model that raised (not an Eeg2fmriInputError) at one setting ended the whole search with a raw
    traceback and no trials.json; now that trial fails (its traceback in the trial's error.txt) and the others run."""
    import numpy as np
    from torch import nn

    import eeg2fmri.models.base as base
    from eeg2fmri.models import register_model
    from eeg2fmri.workflows.tune import tune

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register_model("_odd_only")
    class OddOnly(nn.Module):
        input_kinds = ("bandpower",)

        def __init__(self, spec, hidden: int = 3):
            super().__init__()
            self.hidden = hidden
            self.lin = nn.Linear(int(np.prod(spec.input_shape)), spec.n_outputs)

        def forward(self, x, subject=None):
            if self.hidden % 2 == 0:
                raise RuntimeError(f"even hidden {self.hidden} is broken")
            return self.lin(x.flatten(1))

    cfg = {**_config(prepared_dir, tmp_path / "s"), "model": {"name": "_odd_only", "hparams": {}}, "tune": {"hidden": {"choices": [2, 3]}}}
    with caplog.at_level("WARNING", logger="eeg2fmri"):
        res = tune(cfg, trials=4, pruner="none")
    rows = json.loads((tmp_path / "s" / "tune" / "trials.json").read_text())
    bad = [r for r in rows if r["params"]["hidden"] == 2]
    good = [r for r in rows if r["params"]["hidden"] == 3]
    assert bad and good and len(rows) == 4
    assert all(r["state"] == "FAIL" and r["error"] == "RuntimeError: even hidden 2 is broken" for r in bad)
    assert all(r["state"] == "COMPLETE" for r in good) and res.best_params == {"hidden": 3}
    assert "failed with RuntimeError: even hidden 2 is broken (traceback: " in caplog.text
    assert "raise RuntimeError" in (tmp_path / "s" / "tune" / f"trial_{bad[0]['number']:04d}" / "error.txt").read_text()
