"""``eeg2fmri benchmark``: models trained and scored under one protocol, leaderboard with the fixed rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.evaluation.benchmark import count_parameters, format_leaderboard, run_benchmark
from eeg2fmri.utils.validation import Eeg2fmriInputError


def test_ridge_beats_mean_on_tiny_fixture(tiny_prepared):
    bench = run_benchmark(tiny_prepared, "loso", ["ridge_hrf"], n_boot=100)
    assert bench["n_folds"] == 2 and sorted(bench["results"]["per_subject"]) == ["01", "02"]  # every subject held out once
    rows = {r["name"]: r for r in bench["leaderboard"]}
    assert set(rows) == {"ridge_hrf", "mean", "time-shifted null (ridge_hrf)"}
    ridge, mean, null = rows["ridge_hrf"], rows["mean"], rows["time-shifted null (ridge_hrf)"]
    assert (ridge["role"], mean["role"], null["role"]) == ("reference", "baseline", "null")
    # the trained ridge beats the subject-mean baseline on held-out subjects (R², RMSE) and its own shifted null (r)
    assert ridge["r2"] > mean["r2"] and ridge["rmse"] < mean["rmse"]
    assert ridge["median_r"] > null["median_r"] + 0.05 and ridge["median_r_ci"][0] > 0
    assert mean["median_r"] != mean["median_r"]  # NaN: a constant has no r
    assert bench["leaderboard"][0]["name"] == "ridge_hrf" and bench["leaderboard"][-1]["name"] == "mean"
    # parameter counts: ridge coefficients + intercepts (80 features x n_vox voxels + n_vox); mean: one subject mean + the grand mean
    n_vox = int(tiny_prepared.mask.sum())
    assert ridge["n_params"] == 80 * n_vox + n_vox and mean["n_params"] == 2 * n_vox and ridge["fit_seconds"] > 0
    table = format_leaderboard(bench["leaderboard"])
    assert table.splitlines()[0].startswith("| model | median r | 95% CI | Δr vs ridge_hrf") and "| mean (baseline) | — |" in table


def test_benchmark_models_and_errors(tiny_prepared):
    bench = run_benchmark(tiny_prepared, "within", ["mean"], hparams={"ridge_hrf": {"hrf": "lags"}}, n_boot=0)
    assert bench["models"] == ["mean", "ridge_hrf"]
    n_vox = int(tiny_prepared.mask.sum())
    assert bench["fits"]["ridge_hrf"]["n_params"] == 16 * 5 * 9 * n_vox + n_vox  # lags: every frame of every band and channel
    with pytest.raises(Eeg2fmriInputError, match="unknown model 'nope'"):
        run_benchmark(tiny_prepared, "within", ["nope"])
    with pytest.raises(Eeg2fmriInputError, match="unknown protocol 'bogus'"):
        run_benchmark(tiny_prepared, "bogus", ["ridge_hrf"])
    with pytest.raises(Eeg2fmriInputError, match=r"hparams given for model\(s\) \['calhas2022'\] that are not benchmarked"):
        run_benchmark(tiny_prepared, "within", ["ridge_hrf"], hparams={"calhas2022": {}})
    with pytest.raises(Eeg2fmriInputError, match="protocol 'cross': expected a test dataset"):
        run_benchmark(tiny_prepared, "cross", ["ridge_hrf"])
    # a model that cannot be trained on these windows gets an error row, the others are still ranked
    bench = run_benchmark(tiny_prepared, "within", ["bricman_fc"], n_boot=0)
    row = next(r for r in bench["leaderboard"] if r["name"] == "bricman_fc")
    assert "expected input_kind 'raw'" in row["error"] and "not trained: " in format_leaderboard(bench["leaderboard"])


def test_count_parameters():
    import torch

    lin = torch.nn.Linear(3, 4)
    assert count_parameters(lin) == 16

    class Wrapped:
        module = lin

    assert count_parameters(Wrapped()) == 16
    assert count_parameters(object()) is None


def test_benchmark_cli(tiny_bids, tiny_prepared, tmp_path, capsys):
    out = tmp_path / "bench"
    prep = tiny_prepared.save(tmp_path / "prepared")
    assert main(["benchmark", str(prep), "--protocol", "loso", "--out", str(out), "--n-boot", "30", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "eeg2fmri benchmark:" in printed and "time-shifted null (ridge_hrf)" in printed and "mean (baseline)" in printed
    board = json.loads((out / "leaderboard.json").read_text())
    assert [r["name"] for r in board["leaderboard"]] == ["ridge_hrf", "time-shifted null (ridge_hrf)", "mean"]
    assert board["leaderboard"][2]["median_r"] is None  # strict JSON
    assert (out / "leaderboard.md").read_text().startswith("# eeg2fmri benchmark:")
    assert json.loads((out / "metrics.json").read_text())["protocol"] == "loso"
    assert main(["benchmark", str(prep), "--protocol", "loso", "--out", str(out), "-q"]) == 2
    assert "leaderboard.md: output file already exists; choose another --out or pass --overwrite" in capsys.readouterr().err
    assert main(["benchmark", str(tiny_bids), "-q"]) == 2
    assert "a BIDS folder is prepared on the fly into OUT/prepared; pass --out DIR" in capsys.readouterr().err
    assert main(["benchmark", str(tmp_path / "nothing"), "-q"]) == 2
    assert "expected a prepared dataset folder (manifest.json) or a BIDS root, found no such folder" in capsys.readouterr().err
    assert main(["benchmark", str(prep), "--protocol", "cross", "-q"]) == 2
    assert "--protocol cross: expected --test DATASET" in capsys.readouterr().err
    assert main(["benchmark", str(prep), "--hparams", "{not json", "-q"]) == 2
    assert "--hparams: expected a JSON object or a config file, got invalid JSON" in capsys.readouterr().err
    # BIDS input is prepared into OUT/prepared, then benchmarked
    assert main(["benchmark", str(tiny_bids), "--out", str(tmp_path / "b2"), "--n-boot", "0", "-q"]) == 0
    assert (tmp_path / "b2" / "prepared" / "manifest.json").exists()
    capsys.readouterr()
    assert np.isfinite(json.loads((tmp_path / "b2" / "leaderboard.json").read_text())["leaderboard"][0]["median_r"])


def test_quiet_benchmark_prints_no_training_bars(tiny_prepared, capfd, one_torch_thread):
    """progress_bar=False (``benchmark -q``) silences Lightning's epoch bars; progress_bar=True shows them."""
    cfg = {"optimizer": {"max_epochs": 1, "batch_size": 64}, "trainer": {"accelerator": "cpu"}}
    hp = {"eeg2fmri_net": {"n_members": 2, "seed": 0}}
    run_benchmark(tiny_prepared, "within", ["eeg2fmri_net"], hparams=hp, train_config=cfg, n_boot=0, progress_bar=False)
    quiet = capfd.readouterr()
    assert "Epoch" not in quiet.out + quiet.err
    run_benchmark(tiny_prepared, "within", ["eeg2fmri_net"], hparams=hp, train_config=cfg, n_boot=0, progress_bar=True)
    loud = capfd.readouterr()
    assert "Epoch" in loud.out + loud.err
