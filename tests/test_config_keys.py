"""Every train-config key and CLI flag is used or refused: nothing is recorded and silently ignored (issue 9, item 5).

The tiny simulated fixture holds subjects 01 and 02.
"""

from __future__ import annotations

import json

import pytest

from eeg2fmri.cli import main
from eeg2fmri.utils.validation import Eeg2fmriInputError

SUBJECTS_ERR = r"expected subjects of the dataset \['01', '02'\], got unknown subject\(s\) \['07'\]"


def _train_cfg(prepared_dir, out, **data):
    return {"out": str(out), "data": {"prepared": str(prepared_dir), **data}, "split": {"protocol": "within"},
            "model": {"name": "ridge_hrf", "hparams": {"alphas": [1.0, 100.0]}}, "trainer": {"progress_bar": False}}


@pytest.fixture(scope="module")
def run_01(prepared_dir, tmp_path_factory):
    """`eeg2fmri train` of ridge_hrf with data.prepared + data.subjects: [sub-01]."""
    from eeg2fmri.workflows.train import train

    out = tmp_path_factory.mktemp("run01") / "run"
    return train(_train_cfg(prepared_dir, out, subjects=["sub-01"])), out


# ----------------------------------------------------------------------------- data.subjects
def test_train_prepared_subjects_trains_only_on_them(run_01, tiny_prepared):
    import numpy as np

    from eeg2fmri.datasets import select_subjects
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.models import load_model
    from eeg2fmri.training import fit_model

    res, out = run_01
    split = json.loads((out / "metrics.json").read_text())["split"]
    assert split["subjects"] == {"train": ["01"], "val": ["01"], "test": ["01"]}
    only_01 = select_subjects(tiny_prepared, ["01"])
    sp = make_split(only_01, "within")
    assert (split["n_train"], split["n_val"], split["n_test"]) == (sp.n_samples("train"), sp.n_samples("val"), sp.n_samples("test"))
    assert split["n_train"] < make_split(tiny_prepared, "within").n_samples("train")
    # the saved model is the one fitted on subject 01's training windows alone
    direct = fit_model(only_01, sp, "ridge_hrf", {"alphas": [1.0, 100.0]})
    x = np.random.default_rng(0).standard_normal((4, *direct.spec.input_shape)).astype(np.float32)
    lm = load_model(out / "model")
    assert np.allclose(lm.model.predict(x), direct.model.predict(x), atol=1e-5)
    assert lm.spec.n_subjects == 1 and lm.meta["card"]["training data"]["subjects"] == ["sub-01"]
    assert json.loads((out / "model" / "train_config.json").read_text())["data"]["subjects"] == ["sub-01"]


def test_train_prepared_unknown_subject_refused_before_writing(prepared_dir, tmp_path):
    from eeg2fmri.workflows.train import train

    with pytest.raises(Eeg2fmriInputError, match=r"config: data\.subjects \(.*prepared\): " + SUBJECTS_ERR + r"; use labels from that list"):
        train(_train_cfg(prepared_dir, tmp_path / "r", subjects=["01", "07"]))
    assert not (tmp_path / "r").exists()


def test_select_subjects_and_load_data(tiny_prepared, prepared_dir):
    from eeg2fmri.datasets import select_subjects
    from eeg2fmri.training.config import resolve_config
    from eeg2fmri.workflows.train import load_data

    sub = select_subjects(tiny_prepared, ["02"])
    assert sub.subjects == ["02"] and all(r.subject == "02" for r in sub.runs)
    assert sub.runs[0].features is next(r for r in tiny_prepared.runs if r.subject == "02").features  # no copy
    assert set(sub.provenance["inputs"]) == {r.key for r in sub.runs}
    assert select_subjects(tiny_prepared, None) is tiny_prepared
    ds, split = load_data(resolve_config({"data": {"prepared": str(prepared_dir), "subjects": ["02"]}, "model": {"name": "mean"}}), None)
    assert ds.subjects == ["02"] and {ds.runs[i].subject for i in split.selections["train"]} == {"02"}
    with pytest.raises(Eeg2fmriInputError, match=r"subjects: expected at least one subject label, got an empty list"):
        select_subjects(tiny_prepared, [])


def test_prepare_unknown_subject_refused(tiny_bids, tmp_path, capsys):
    from eeg2fmri.datasets import prepare

    with pytest.raises(Eeg2fmriInputError, match=r"expected subjects with complete runs \['01', '02'\], got subject\(s\) \['09'\] without any"):
        prepare(tiny_bids, tmp_path / "p", subjects=["01", "09"], progress_bar=False)
    assert main(["prepare", str(tiny_bids), "--out", str(tmp_path / "p"), "--subjects", "01", "09", "-q"]) == 2
    assert "got subject(s) ['09'] without any; use labels from that list" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


# ----------------------------------------------------------------------------- evaluate: recorded subjects
def test_evaluate_uses_recorded_subjects(run_01, tmp_path):
    from eeg2fmri.workflows.evaluate import evaluate_run

    _, out = run_01
    _, res = evaluate_run(out, out=tmp_path / "ev", n_boot=0, progress_bar=False)
    assert sorted(res["per_subject"]) == ["01"]  # the split is rebuilt on the training subjects only, as in training
    notes = json.loads((tmp_path / "ev" / "metrics.json").read_text())["notes"]
    assert notes["subjects"] == "01 (recorded with the model, as in training)"
    # --subjects overrides the record
    _, res = evaluate_run(out, out=tmp_path / "ev2", subjects=["01", "02"], n_boot=0, progress_bar=False)
    assert sorted(res["per_subject"]) == ["01", "02"]
    with pytest.raises(Eeg2fmriInputError, match=r"subjects \(--subjects\): " + SUBJECTS_ERR + r".* To evaluate on other subjects, pass --subjects"):
        evaluate_run(out, out=tmp_path / "ev3", subjects=["07"], n_boot=0, progress_bar=False)


def test_evaluate_subjects_keep_training_positions():
    from eeg2fmri.workflows.evaluate import _check_subject_positions

    _check_subject_positions(["02", "03"], ["02", "03", "04"])  # an unseen subject after the training ones
    with pytest.raises(Eeg2fmriInputError, match=r"subjects \(--subjects\): expected a set in which the training subjects \['02', '03'\] keep their "
                                                  r"positions .*got \['01', '02', '03'\], which moves \['02', '03'\]; include every training subject"):
        _check_subject_positions(["03", "02"], ["01", "02", "03"])


def test_evaluate_flags_of_other_protocols_refused(run_01, tmp_path, capsys):
    from eeg2fmri.workflows.evaluate import evaluate_run

    _, out = run_01
    with pytest.raises(Eeg2fmriInputError, match=r"train_data: expected only with protocol 'cross' .*got '.*' with protocol 'within'; drop --train-data"):
        evaluate_run(out, out=tmp_path / "e1", train_data=out, n_boot=0, progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"protocol 'cross': expected no split options .*got \['test_subjects'\]; drop --test-subjects"):
        evaluate_run(out, out=tmp_path / "e2", protocol="cross", split_options={"test_subjects": ["01"]}, n_boot=0, progress_bar=False)
    assert main(["evaluate", str(out), "--out", str(tmp_path / "e3"), "--test-subjects", "01", "-q"]) == 2
    assert "split option test_subjects: expected none with protocol 'within' (it does not use it), got ['01']" in capsys.readouterr().err
    assert main(["evaluate", str(out), "--out", str(tmp_path / "e4"), "--fold", "1", "--protocol", "loso", "-q"]) == 2
    assert "split option fold: expected none with protocol 'loso'" in capsys.readouterr().err
    assert not any((tmp_path / f"e{i}").exists() for i in range(1, 5))


# ----------------------------------------------------------------------------- config keys refused
@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"data": {"prepared": "p", "prepared_out": "q"}}, r"data\.prepared_out: expected a folder only together with data\.bids .*found 'q'; remove it"),
        ({"data": {"prepared": "p", "n_jobs": 4}}, r"data\.n_jobs: expected 1 unless data\.bids is prepared .*found 4; remove it"),
        ({"data": {"prepared": "p", "subjects": []}}, r"data\.subjects: expected a non-empty list of subject labels .*found \[\]"),
        ({"data": {"prepared": "p", "subjects": "01"}}, r"data\.subjects: expected a non-empty list of subject labels .*found '01'"),
        ({"optimizer": {"patience": None, "min_delta": 0.01}},
         r"optimizer\.min_delta: expected 0 while early stopping is off \(patience: null\), found 0\.01; set optimizer\.patience"),
        ({"trainer": {"num_workers": 2, "loader_threads": 4}},
         r"trainer\.num_workers: expected 0 when trainer\.loader_threads is 4 \(threads replace the worker processes\), found 2; keep one"),
    ],
)
def test_config_keys_a_run_would_ignore_are_refused(cfg, match):
    from eeg2fmri.training.config import resolve_config

    with pytest.raises(Eeg2fmriInputError, match=match):
        resolve_config({"model": {"name": "mean"}, **cfg}, source="run.yaml")


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"data": {"subject": ["01"]}}, r"data\.subject: expected one of the keys .*'subjects'"),
        ({"split": {"test_subject": ["01"]}}, r"split\.test_subject: expected protocol or an option of make_split: .*did you mean .test_subjects."),
        ({"model": {"name": "mean", "hparam": {}}}, r"model\.hparam: expected only the keys name and hparams"),
        ({"optimizer": {"epochs": 3}}, r"optimizer\.epochs: expected one of the keys"),
        ({"loss": {"cor": 1.0}}, r"loss\.cor: expected one of the keys"),
        ({"trainer": {"gpus": 2}}, r"trainer\.gpus: expected one of the keys"),
        ({"tune": {"lr": {"low": 1e-4, "high": 1e-2, "logscale": True}}}, r"tune\.lr: expected \{low: \.\., high: \.\., log: false, step: null\}"),
        ({"outdir": "x"}, r"outdir: expected one of the top-level sections"),
    ],
)
def test_unknown_config_keys_are_refused(cfg, match):
    from eeg2fmri.training.config import resolve_config

    with pytest.raises(Eeg2fmriInputError, match=match):
        resolve_config({"model": {"name": "mean"}, **cfg}, source="run.yaml")


def test_training_settings_of_a_closed_form_model_refused(prepared_dir, tmp_path, capsys):
    from eeg2fmri.training.config import closed_form_unused, resolve_config
    from eeg2fmri.workflows.train import train

    cfg = {**_train_cfg(prepared_dir, tmp_path / "r"), "optimizer": {"lr": 0.01}, "loss": {"corr": 1.0}}
    with pytest.raises(Eeg2fmriInputError, match=r"config: optimizer\.lr, loss\.corr: expected the defaults for the closed-form model 'ridge_hrf' "
                                                  r".*found optimizer\.lr=0\.01, loss\.corr=1\.0; remove these settings"):
        train(cfg)
    with pytest.raises(Eeg2fmriInputError, match=r"config: trainer\.devices: expected the defaults for the closed-form model 'ridge_hrf'"):
        train(_train_cfg(prepared_dir, tmp_path / "r"), devices=2)
    assert not (tmp_path / "r").exists()
    path = tmp_path / "ridge.yaml"
    path.write_text(f"out: {tmp_path / 'r'}\ndata: {{prepared: {prepared_dir}}}\nmodel: {{name: ridge_hrf}}\n")
    assert main(["train", str(path), "--num-nodes", "2", "-q"]) == 2
    assert "trainer.num_nodes: expected the defaults for the closed-form model 'ridge_hrf'" in capsys.readouterr().err
    # what a closed-form run does use is accepted
    ok = resolve_config({"model": {"name": "mean"}, "seed": 3, "trainer": {"predict_batch_size": 7, "progress_bar": False}})
    assert closed_form_unused(ok) == []


# ----------------------------------------------------------------------------- split options a protocol does not use
@pytest.mark.parametrize(
    ("protocol", "opts", "match"),
    [
        ("within", {"test_subjects": ["01"]}, r"split option test_subjects: expected none with protocol 'within' .*drop test_subjects or use a subject-wise"),
        ("within", {"val_subjects": ["01"]}, r"split option val_subjects: expected none with protocol 'within'"),
        ("within", {"n_folds": 2}, r"split option n_folds: expected none with protocol 'within' .*use protocol 'kfold'"),
        ("loso", {"fold": 1}, r"split option fold: expected none with protocol 'loso'"),
        ("kfold", {"test_subjects": ["01"], "n_folds": 2}, r"split option test_subjects: expected none with protocol 'kfold' .*chosen with n_folds and fold"),
        ("loso", {"val_subjects": ["01"], "test_subjects": ["02"], "fractions": (0.5, 0.5, 0.0)},
         r"split option fractions: expected none together with val_subjects .*drop fractions or val_subjects"),
        ("subjects", {"val_subjects": ["01"], "test_subjects": ["02"], "gap": 3}, r"split option gap: expected none together with val_subjects"),
    ],
)
def test_split_options_a_protocol_would_ignore_are_refused(tiny_prepared, protocol, opts, match):
    from eeg2fmri.datasets.targets import make_split

    with pytest.raises(Eeg2fmriInputError, match=match):
        make_split(tiny_prepared, protocol, **opts)


def test_split_option_in_train_config_refused(prepared_dir, tmp_path):
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.workflows.train import train

    cfg = _train_cfg(prepared_dir, tmp_path / "r")
    cfg["split"] = {"protocol": "within", "test_subjects": ["02"]}
    with pytest.raises(Eeg2fmriInputError, match=r"split option test_subjects: expected none with protocol 'within'"):
        train(cfg)
    assert not (tmp_path / "r").exists()
    # the defaults and what each protocol uses still work
    ds = load_prepared(prepared_dir)
    assert make_split(ds, "kfold", n_folds=2, fold=1).test_subjects == ["02"]
    sp = make_split(ds, "loso", test_subjects=["01"], gap=20, fractions=(0.5, 0.3, 0.2))
    assert sp.gap == 20 and sp.test_subjects == ["01"]


# ----------------------------------------------------------------------------- benchmark
def test_benchmark_train_config_subjects_and_split(tiny_prepared):
    from eeg2fmri.workflows.benchmark import run_benchmark

    bench = run_benchmark(tiny_prepared, "within", ["mean"], train_config={"data": {"subjects": ["02"]}, "split": {"protocol": "within", "gap": 20}},
                          n_boot=0)
    assert bench["subjects"] == ["02"] and sorted(bench["results"]["per_subject"]) == ["02"]
    bench = run_benchmark(tiny_prepared, "within", ["mean"], subjects=["01"], n_boot=0)
    assert sorted(bench["results"]["per_subject"]) == ["01"]
    with pytest.raises(Eeg2fmriInputError, match=r"train_config: data\.subjects: " + SUBJECTS_ERR):
        run_benchmark(tiny_prepared, "within", ["mean"], train_config={"data": {"subjects": ["07"]}}, n_boot=0)


@pytest.mark.parametrize(
    ("protocol", "kw", "match"),
    [
        ("within", {"n_folds": 3}, r"n_folds: expected only with protocol 'kfold', got n_folds=3 with protocol 'within'; drop --n-folds"),
        ("loso", {"min_channels": 4}, r"min_channels: expected only with protocol 'cross' .*got min_channels=4 with protocol 'loso'; drop --min-channels"),
        ("within", {"train_config": {"model": {"name": "ridge_hrf"}}}, r"train_config: model: expected no model section .*--models .*--hparams"),
        ("within", {"train_config": {"out": "x"}}, r"train_config: out: expected none \(a benchmark writes into --out\), got 'x'"),
        ("within", {"train_config": {"tune": {"lr": {"low": 1e-4, "high": 1e-2}}}}, r"train_config: tune: expected no search space"),
        ("within", {"train_config": {"data": {"prepared": "p"}}}, r"train_config: data\.prepared: expected none .*got 'p'; remove it"),
        ("within", {"train_config": {"split": {"protocol": "loso"}}}, r"train_config: split\.protocol: expected the benchmark's protocol 'within', got 'loso'"),
        ("loso", {"train_config": {"split": {"protocol": "loso", "test_subjects": ["01"]}}},
         r"train_config: split: expected none of \['test_subjects'\] with protocol 'loso' \(every fold sets them\)"),
        ("loso", {"split_options": {"fold": 1}}, r"split_options: expected none of \['fold'\] with protocol 'loso'"),
        ("within", {"train_config": {"optimizer": {"lr": 0.01}, "seed": 2}},
         r"train_config: seed, optimizer\.lr: expected the defaults, since every benchmarked model \(mean, ridge_hrf\) is fitted in closed form"),
        ("within", {"train_config": {"optimizer": {"lrr": 0.01}}}, r"train_config: optimizer\.lrr: expected one of the keys"),
    ],
)
def test_benchmark_options_it_would_ignore_are_refused(tiny_prepared, protocol, kw, match):
    from eeg2fmri.workflows.benchmark import run_benchmark

    with pytest.raises(Eeg2fmriInputError, match=match):
        run_benchmark(tiny_prepared, protocol, ["mean"], n_boot=0, **kw)


def test_benchmark_cli_train_config(prepared_dir, tmp_path, capsys):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(f"data: {{prepared: {prepared_dir}, subjects: ['02']}}\nsplit: {{protocol: within}}\n")
    out = tmp_path / "bench"
    assert main(["benchmark", str(prepared_dir), "--models", "mean", "--train-config", str(cfg), "--out", str(out), "--n-boot", "0", "-q"]) == 0
    capsys.readouterr()
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["subjects"] == ["02"] and sorted(json.loads((out / "metrics.json").read_text())["per_subject"]) == ["02"]
    other = tmp_path / "other.yaml"
    other.write_text("data: {prepared: elsewhere}\n")
    assert main(["benchmark", str(prepared_dir), "--train-config", str(other), "-q"]) == 2
    err = capsys.readouterr().err
    assert "--train-config: data.prepared: expected DATASET (" in err and "got 'elsewhere'; the benchmark reads DATASET" in err
    assert main(["benchmark", str(prepared_dir), "--n-folds", "3", "-q"]) == 2
    assert "n_folds: expected only with protocol 'kfold', got n_folds=3 with protocol 'within'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- other commands
def test_datasets_subjects_needs_check(capsys):
    assert main(["datasets", "--subjects", "01"]) == 2
    assert "--subjects: expected only together with --check ROOT (it restricts the check), got ['01']" in capsys.readouterr().err


def test_simulate_config_values_are_used(tmp_path, monkeypatch):
    import eeg2fmri.simulate as sim
    from eeg2fmri.commands.simulate import _OPTIONS

    got = {}

    def fake(out, config, **kw):
        got["config"] = config
        return out

    monkeypatch.setattr(sim, "simulate_dataset", fake)
    (tmp_path / "sim.yaml").write_text("n_subjects: 3\nminutes: 2.5\nartifacts: false\ntask: blocks\nseed: 4\n")
    assert main(["simulate", str(tmp_path / "s"), "--config", str(tmp_path / "sim.yaml"), "--seed", "9", "-q"]) == 0
    c = got["config"]
    # the file's values are used; options given on the command line win over them; the rest keep their defaults
    assert (c.n_subjects, c.minutes, c.artifacts, c.task, c.seed, c.tr) == (3, 2.5, False, "blocks", 9, 2.0)
    assert main(["simulate", str(tmp_path / "s"), "--minutes", "4", "--no-artifacts", "-q"]) == 0
    assert (got["config"].minutes, got["config"].artifacts, got["config"].n_subjects) == (4.0, False, 4)
    # the defaults --help shows are SimulationConfig's
    defaults = sim.SimulationConfig()
    assert all(getattr(defaults, field) == default for field, default in _OPTIONS.values())


def test_simulate_neural_mass_generator_options(tmp_path, monkeypatch, capsys):
    import eeg2fmri.simulate as sim

    got = {}

    def fake(out, **kw):
        got.update(kw)
        return out

    monkeypatch.setattr(sim, "simulate_neural_mass_dataset", fake)
    (tmp_path / "nm.yaml").write_text("coupling: 0.5\nminutes: 2.0\n")
    argv = ["simulate", str(tmp_path / "s"), "--generator", "neural_mass", "--config", str(tmp_path / "nm.yaml"), "--regions", "12", "-q"]
    assert main(argv) == 0
    assert (got["coupling"], got["minutes"], got["n_regions"], got["progress_bar"]) == (0.5, 2.0, 12, False)
    # options the neural-mass generator has no use for are refused, not ignored
    assert main(["simulate", str(tmp_path / "s"), "--generator", "neural_mass", "--task", "blocks", "--no-artifacts", "-q"]) == 2
    assert "--generator neural_mass does not take --task, --no-artifacts" in capsys.readouterr().err


def test_config_may_be_inline_json(tiny_bids, tmp_path, capsys):
    """--config takes the JSON mapping itself (what the error messages suggest, e.g. '{"tr": 2.0}') as well as a file;
    malformed JSON and a non-mapping get a clear error."""
    from eeg2fmri.utils.config import read_config

    assert read_config('{"tr": 2.0, "dummy_scans": "drop-last"}') == {"tr": 2.0, "dummy_scans": "drop-last"}
    with pytest.raises(Eeg2fmriInputError, match=r"not valid JSON .* double quotes"):
        read_config("{'tr': 2.0}")
    with pytest.raises(Eeg2fmriInputError, match=r"config file not found"):
        read_config(str(tmp_path / "missing.json"))
    capsys.readouterr()
    assert main(["prepare", str(tiny_bids), "--out", str(tmp_path / "p"), "--config", '{"tr": 2.0}', "-q"]) == 0
    man = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert man["config"]["tr"] == 2.0
    # the tiny recordings carry an ECG channel and no confounds were given: the physiological-noise note (user test 57)
    assert "note: the data include physiological recordings (ecg), and no confounds were regressed from the BOLD" in capsys.readouterr().out


def test_train_without_test_span_uses_every_volume_but_validation(prepared_dir, tmp_path, tiny_prepared):
    """A model to deploy: split.fractions [0.8, 0.2, 0] trains on every volume but the validation span (one gap, no
    test span), writes no test score and says so; the README's recipe."""
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.workflows.train import train

    cfg = _train_cfg(prepared_dir, tmp_path / "deploy")
    cfg["split"]["fractions"] = [0.8, 0.2, 0.0]
    train(cfg)
    metrics = json.loads((tmp_path / "deploy" / "metrics.json").read_text())
    assert "test" not in metrics and metrics["split"]["n_test"] == 0
    held = make_split(tiny_prepared, "within")
    assert metrics["split"]["n_train"] + metrics["split"]["n_val"] > held.n_samples("train") + held.n_samples("val") + held.n_samples("test")


def test_load_config_takes_a_grid_reference_from_the_config_folder(tmp_path, monkeypatch):
    """data.prepare.grid as a NIfTI path is read from the config file's folder, as data.bids (a review, session 37)."""
    from eeg2fmri.training.config import load_config

    (tmp_path / "proj" / "cfg").mkdir(parents=True)
    conf = tmp_path / "proj" / "cfg" / "train.yaml"
    conf.write_text("model: {name: ridge_hrf}\ndata:\n  bids: ../bids\n  prepare: {grid: ../ref/site_a_mask.nii.gz}\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(conf)
    assert cfg["data"]["prepare"]["grid"] == str((tmp_path / "proj" / "ref" / "site_a_mask.nii.gz").resolve())
    conf.write_text("model: {name: ridge_hrf}\ndata:\n  bids: ../bids\n  prepare: {grid: first}\n")
    assert load_config(conf)["data"]["prepare"]["grid"] == "first"
