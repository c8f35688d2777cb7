"""The CLI's one-line errors: unwritable output paths, a report written onto a folder, a run folder as --model, montage names."""

from __future__ import annotations

import errno
import json
import os
import shutil

import mne
import pytest

from eeg2fmri.cli import main, path_error_message
from eeg2fmri.preprocessing.channels import _standard_montage
from eeg2fmri.synthesis import synthesize
from eeg2fmri.synthesis.synthesize import resolve_model_dir
from eeg2fmri.utils.jsonable import to_jsonable
from eeg2fmri.utils.validation import Eeg2fmriInputError

from .test_synthesis import EEG_NAME, ridge_dir  # noqa: F401  (module fixture: a ridge model trained on the tiny dataset)


def _board(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leaderboard.json").write_text(json.dumps({"protocol": "within", "n_folds": 3, "leaderboard": [{"name": "a", "median_r": 0.1}]}))
    return folder


def _writes_blocked(folder) -> bool:
    """Whether a 0o500 folder really refuses writes here (root ignores permissions)."""
    try:
        (folder / ".probe").write_text("x")
    except PermissionError:
        return True
    (folder / ".probe").unlink()
    return False


def _temporaries(folder) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_path_error_messages():
    tmp = OSError(errno.EROFS, "Read-only file system", "/data/ro/.x.synth-host-123-abcd")
    assert path_error_message(tmp) == "/data/ro: cannot write in this folder (read-only file system); choose another --out."
    assert path_error_message(PermissionError(errno.EACCES, "Permission denied", "/data/x.nii.gz")) == (
        "/data/x.nii.gz: permission denied; fix the permissions or choose another --out.")
    assert path_error_message(OSError(errno.ENOSPC, "No space left on device", "/data/x.nii.gz"), has_out=False) == (
        "/data/x.nii.gz: cannot write (no space left on the device); free some space or choose another path.")
    assert "is a folder, expected a file" in path_error_message(IsADirectoryError(errno.EISDIR, "Is a directory", "/data"))
    # not about a path the user chose, or no path at all: not turned into a message (a bug keeps its traceback)
    assert path_error_message(OSError(errno.EIO, "Input/output error", "/data/x")) is None
    assert path_error_message(OSError(errno.EROFS, "Read-only file system")) is None


def test_report_into_unwritable_places(tmp_path, capsys, monkeypatch):
    bench = _board(tmp_path / "bench")
    # a read-only file system (simulated: it refuses the hidden temporary the page is written through) names the folder
    import eeg2fmri.utils.atomic as atomic

    def read_only(suffix=None, prefix=None, dir=None, text=False):
        raise OSError(errno.EROFS, "Read-only file system", os.path.join(dir, f"{prefix}x1y2{suffix}"))

    with monkeypatch.context() as m:
        m.setattr(atomic.tempfile, "mkstemp", read_only)
        assert main(["report", str(bench), "--out", str(tmp_path / "ro_fs" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err == f"eeg2fmri report: error: {tmp_path / 'ro_fs'}: cannot write in this folder (read-only file system); choose another --out.\n"

    blocker = tmp_path / "plain.html"
    blocker.write_text("a file")
    assert main(["report", str(bench), "--out", str(blocker / "sub" / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("eeg2fmri report: error: ") and "Traceback" not in err
    assert f"{blocker}: expected a folder, found a file; choose another --out." in err

    ro = tmp_path / "ro"
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if not _writes_blocked(ro):
            pytest.skip("running as root: a 0o500 folder does not block writes (the file-in-the-way case above still ran)")
        assert main(["report", str(bench), "--out", str(ro / "r.html")]) == 2
        err = capsys.readouterr().err
        assert f"eeg2fmri report: error: {ro}: cannot write in this folder (permission denied); fix the permissions or choose another --out." in err
        assert list(ro.iterdir()) == []
    finally:
        os.chmod(ro, 0o700)


def test_other_os_errors_keep_their_traceback(tmp_path, monkeypatch):
    import eeg2fmri.workflows.report as report

    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", "/dev/sda")

    monkeypatch.setattr(report, "build_report", broken)
    with pytest.raises(OSError, match="Input/output error"):
        main(["report", str(_board(tmp_path / "bench"))])


def test_report_onto_a_directory(tmp_path, capsys):
    from eeg2fmri.workflows.report import build_report

    bench = _board(tmp_path / "bench")
    outdir = tmp_path / "outdir"
    outdir.mkdir()
    (outdir / "keep.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(Eeg2fmriInputError, match=r"outdir: expected an HTML file path, found a directory; pass --out .*outdir/report\.html"):
            build_report(bench, outdir, overwrite=overwrite)
    assert main(["report", str(bench), "--out", str(outdir), "--overwrite"]) == 2
    assert "expected an HTML file path, found a directory" in capsys.readouterr().err
    assert sorted(p.name for p in outdir.iterdir()) == ["keep.txt"] and _temporaries(tmp_path) == []
    assert main(["report", str(bench), "--out", str(outdir / "report.html")]) == 0
    assert (outdir / "report.html").is_file()


def test_synthesize_into_unwritable_places_and_from_a_run_folder(tiny_bids, ridge_dir, tmp_path, capsys):  # noqa: F811
    eeg = str(tiny_bids / EEG_NAME)
    blocker = tmp_path / "plain.nii"
    blocker.write_text("a file")
    assert main(["synthesize", eeg, "--model", str(ridge_dir), "--out", str(blocker / "x.nii.gz"), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"eeg2fmri synthesize: error: {blocker}: expected a folder, found a file; choose another --out." in err and "Traceback" not in err

    # a training run folder (RUN/model/model.json) is taken for its model directory
    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(ridge_dir, run / "model")
    assert resolve_model_dir(run) == run / "model" and resolve_model_dir(run / "model") == run / "model"
    out = synthesize(eeg, run, tmp_path / "from_run.nii.gz", progress_bar=False)
    side = json.loads((tmp_path / "from_run.json").read_text())
    assert out.is_file() and side["ModelDir"] == str((run / "model").absolute())
    with pytest.raises(Eeg2fmriInputError, match=r"expected a model directory with model.json, found a folder without it .*pass RUN/model"):
        resolve_model_dir(tmp_path)
    with pytest.raises(Eeg2fmriInputError, match=r"nowhere: expected a model directory with model.json, found no such folder; check the path"):
        resolve_model_dir(tmp_path / "nowhere")


def test_classify_json_is_strict_without_permutations():
    doc = {"p_value": float("nan"), "ci95": [float("nan"), float("inf")], "n": 3}
    strict = to_jsonable(doc, finite=True)
    assert strict == {"p_value": None, "ci95": [None, None], "n": 3}
    json.dumps(strict, allow_nan=False)


def test_montage_names():
    # an older name this MNE still accepts (with a deprecation warning) is used, the warning logged rather than raised
    if "standard_1020" not in mne.channels.get_builtin_montages():
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mne.channels.make_standard_montage("standard_1020")
        except ValueError:
            pytest.skip("this MNE no longer accepts standard_1020")
    assert "Cz" in _standard_montage("standard_1020").ch_names
    assert len(_standard_montage("biosemi64").ch_names) == 64
    with pytest.raises(Eeg2fmriInputError, match=r"channel_positions='biosemi65': expected 'file' or an MNE standard montage, found no montage "
                                                 r"named 'biosemi65'; similar names: 'biosemi64'"):
        _standard_montage("biosemi65")
    with pytest.raises(Eeg2fmriInputError, match=r"similar names: 'biosemi64'"):
        _standard_montage("BIOSEMI64")
    with pytest.raises(Eeg2fmriInputError, match=r"found no montage named 'zzz'; pick the one that matches the cap from: .*biosemi64"):
        _standard_montage("zzz")


@pytest.mark.parametrize("command", ["train", "tune", "simulate"])
def test_ctrl_c_says_what_was_left_and_how_to_go_on(tmp_path, capsys, monkeypatch, command):
    """User test 9: after Ctrl-C, train and tune said 'no partial output was left behind' next to their checkpoints and
    study. The resumable commands now say what they kept and how to resume; the others still write nothing."""
    import importlib

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    target = {"train": ("eeg2fmri.workflows.train", "train"), "tune": ("eeg2fmri.workflows.tune", "tune"),
              "simulate": ("eeg2fmri.simulate", "simulate_dataset")}[command]
    monkeypatch.setattr(importlib.import_module(target[0]), target[1], stop)
    argv = {"train": ["train", "cfg.yaml", "--out", str(tmp_path / "run")], "tune": ["tune", "cfg.yaml", "--trials", "3"],
            "simulate": ["simulate", str(tmp_path / "sim")]}[command]
    if command == "train":  # a torch run that wrote its checkpoint
        (tmp_path / "run" / "checkpoints").mkdir(parents=True)
        (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert main(argv) == 130
    err = capsys.readouterr().err
    want = {"train": f"interrupted; the run so far is kept in {tmp_path / 'run'} (checkpoints, logs): continue it with eeg2fmri train cfg.yaml "
                     f"--resume --out {tmp_path / 'run'}, or start again with --overwrite.",
            "tune": "interrupted; the study is kept (OUT/tune/study.db): run the same command again to resume it (the interrupted trial "
                    "runs again and does not count towards --trials).",
            "simulate": "interrupted; no partial output was left behind."}[command]
    assert want in err
    if command == "train":  # user test 29: a closed-form model (or a torch run before its first epoch) has no checkpoint to resume
        (tmp_path / "run" / "checkpoints" / "last.ckpt").unlink()
        assert main(argv) == 130
        assert (f"interrupted; no checkpoint was written in {tmp_path / 'run'} (a closed-form model is fitted in one step; a torch model "
                f"had not finished an epoch): nothing to resume; run eeg2fmri train cfg.yaml --out {tmp_path / 'run'} again to start over"
                in capsys.readouterr().err)


def test_run_folder_errors_suggest_the_commands_own_options_and_resume(tmp_path, capsys):
    """User test 9: explain/classify suggested `--protocol`, which they do not take; an interrupted train folder was called
    'neither' instead of an unfinished run to resume; config keys with typos got no suggestion."""
    assert main(["explain", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "or --model DIR (and --data PREPARED)." in err and "--protocol" not in err
    assert main(["evaluate", str(tmp_path / "nowhere")]) == 2
    assert "or --model DIR --data PREPARED --protocol within." in capsys.readouterr().err
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    assert main(["classify", str(run)]) == 2
    assert (f"{run}: expected a run folder with model/model.json, found a training run that did not finish (config.yaml and checkpoints, "
            f"no model); finish it with eeg2fmri train {run / 'config.yaml'} --resume --out {run}, then run classify again.") in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {prepared: x}\nmodel: {name: ridge_hrf}\nsplit: {protcol: loso}\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "split.protcol: expected protocol or an option of make_split: [" in (err := capsys.readouterr().err) and "did you mean 'protocol'" in err
    cfg.write_text("data: {prepared: x}\nmodel: {name: ridge_hrf}\noptimiser: {lr: 0.1}\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "found 'optimiser'; did you mean 'optimizer' (see docs/training.md)." in capsys.readouterr().err
    bids = tmp_path / "bids"
    (bids / "sub-01").mkdir(parents=True)
    cfg.write_text(f"data: {{prepared: {bids}}}\nmodel: {{name: ridge_hrf}}\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert f"config data.prepared: {bids}: expected a prepared dataset with manifest.json" in (err := capsys.readouterr().err)
    assert f"looks like a BIDS dataset: give it as data.bids: {bids}" in err
    cfg.write_text(f"data: {{bids: {tmp_path / 'dta'}}}\nmodel: {{name: ridge_hrf}}\n")
    assert main(["train", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert f"config data.bids: {tmp_path / 'dta'}: expected" in capsys.readouterr().err


def test_cli_error_lines_have_one_command_prefix_and_no_question_full_stop():
    """User test 9: 'eeg2fmri explain: error: explain: ...' and "did you mean 'eeg2fmri_net'?." on the command line."""
    from eeg2fmri.cli import _tidy

    assert _tidy("explain: expected a voxel index, got 9", "explain") == "expected a voxel index, got 9"
    assert _tidy("model 'eeg2fmri_nett': unknown; did you mean 'eeg2fmri_net'?.", "train") == "model 'eeg2fmri_nett': unknown; did you mean 'eeg2fmri_net'?"
    assert _tidy("synthesize: x", "explain") == "synthesize: x"
    # a keyword offered with its flag reads as the flag on the command line (user test 9: "pass overwrite=True (--overwrite)")
    assert _tidy("o: exists; choose another --out or pass overwrite=True (--overwrite).", "x") == "o: exists; choose another --out or pass --overwrite."
    assert _tidy("o: holds a folder. Or pass overwrite=True (--overwrite on the command line) to replace it.", "x") == (
        "o: holds a folder. Or pass --overwrite to replace it.")
    assert _tidy("f: no participants.tsv; pass participants= (--participants FILE).", "x") == "f: no participants.tsv; pass --participants FILE."
    assert _tidy("r: several layouts; pass layout=<one of them> (--layout) explicitly.", "x") == "r: several layouts; pass --layout <one of them> explicitly."
    assert _tidy("w: none; pass marker=<the name> (--marker on the command line) or volume_onsets=<s>.", "x") == (
        "w: none; pass --marker <the name> or volume_onsets=<s>.")
    assert _tidy("pass strict=False to skip them.", "x") == "pass strict=False to skip them."  # no flag offered: unchanged


def test_warnings_on_the_command_line_are_one_line_without_source():
    """User test 20: prepare's warnings echoed `art = check_gradient_artifacts(...)`, a line of the package's source."""
    import warnings

    from eeg2fmri.cli import cli_warning_format

    text = cli_warning_format("prepare")(UserWarning("run.vhdr: strong periodic power"), UserWarning, "/x/prepared.py", 1061,
                                         "art = check_gradient_artifacts(raw)")
    assert text == "eeg2fmri prepare: warning: run.vhdr: strong periodic power\n"
    before = warnings.formatwarning
    from eeg2fmri.cli import main

    assert main(["models"]) == 0  # the default formatter is back after a command
    assert warnings.formatwarning is before


def test_arguments_in_another_order_are_refused_with_the_calls_order(tiny_prepared):
    """README: a path, or arguments in another order, are refused with the call's order (user test 22: the order was not
    in the message)."""
    from eeg2fmri.datasets.targets import make_split
    from eeg2fmri.evaluation.protocol import evaluate_split
    from eeg2fmri.training import fit_model
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    split = make_split(tiny_prepared, "within")
    with pytest.raises(Eeg2fmriInputError, match=r"the order is fit_model\(ds, split, name, hparams, targets\)"):
        fit_model(split, tiny_prepared, "ridge_hrf")
    with pytest.raises(Eeg2fmriInputError, match=r"the order is make_split\(ds, protocol, \.\.\.\)"):
        make_split("within", tiny_prepared)
    with pytest.raises(Eeg2fmriInputError, match=r"the order is evaluate_split\(ds, split, targets, model\)"):
        evaluate_split(split, tiny_prepared, {}, None)


def test_a_full_disk_and_home_paths(tmp_path, monkeypatch, capsys):
    """User test 29: a full disk met inside a library's write (no file name) gave a raw traceback, and a quoted '~/x' made a
    folder named '~'."""
    import errno

    from eeg2fmri.cli import path_error_message

    assert path_error_message(OSError("90450 requested and 14304 written")) == (
        "a write was cut short (90450 requested and 14304 written): the disk is full or over quota; free some space or choose "
        "another --out.")
    assert path_error_message(OSError(errno.ENOSPC, "No space left on device"), has_out=False).endswith(
        "free some space or choose another path.")
    assert path_error_message(OSError("something else")) is None
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["simulate", "~/sim", "--subjects", "2", "--minutes", "1", "--channels", "16", "--voxel-size", "16", "-q"]) == 0
    assert (tmp_path / "home" / "sim" / "participants.tsv").is_file() and not (tmp_path / "~").exists()


def test_outputs_are_checked_writable_before_any_work(tmp_path, monkeypatch):
    """User test 29: evaluate, explain and report computed everything, then failed at the write."""
    import tempfile

    from eeg2fmri.utils.atomic import check_writable
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    check_writable(tmp_path / "new" / "deeper" / "out")  # (the nearest existing folder takes a file)
    (tmp_path / "file").write_text("x")
    with pytest.raises(Eeg2fmriInputError, match=r"file: expected a folder, found a file; choose another --out"):
        check_writable(tmp_path / "file" / "out")

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(Eeg2fmriInputError, match=r"cannot write there \(Read-only file system\); expected a folder this process can write "
                                                 r"the output out in: choose another --out"):
        check_writable(tmp_path / "out")
