"""Atomic output: final paths in provenance, the user's umask on what is created."""

from __future__ import annotations

import os
import stat

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.synthesis.nifti import StreamingNifti, nifti_header
from eeg2fmri.utils.atomic import atomic_dir, atomic_file, final_path, final_paths
from eeg2fmri.utils.validation import Eeg2fmriInputError


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_atomic_outputs_get_the_umask_mode(tmp_path, umask):
    with atomic_dir(tmp_path / "out") as tmp:
        assert _mode(tmp) == 0o700  # private while being written
        (tmp / "a.txt").write_text("x")
    assert _mode(tmp_path / "out") == 0o777 & ~umask
    with atomic_file(tmp_path / "f.json") as tmp:
        tmp.write_text("{}")
    assert _mode(tmp_path / "f.json") == 0o666 & ~umask


def test_streaming_nifti_gets_the_umask_mode(tmp_path, umask):
    hdr = nifti_header((3, 4, 5, 2), np.eye(4), (2.0, 2.0, 2.0), 2.0)
    for name in ("s.nii", "s.nii.gz"):
        with StreamingNifti(tmp_path / name, hdr) as w:
            w.write(0, np.ones((3, 4, 5, 2), np.float32))
            out = w.finish()
        assert _mode(out) == 0o666 & ~umask
        assert nib.load(out).shape == (3, 4, 5, 2)


def test_final_path_translates_nested_atomic_dirs(tmp_path):
    outside = tmp_path / "elsewhere" / "x.nii.gz"
    assert final_path(outside) == outside.absolute()
    with atomic_dir(tmp_path / "outer") as t_out:
        with atomic_dir(t_out / "inner") as t_in:
            p = t_in / "model" / "weights.bin"
            assert final_path(p) == tmp_path / "outer" / "inner" / "model" / "weights.bin"
            doc = {"ModelDir": str(t_in / "model"), "Source": str(t_out / "bids" / "eeg.vhdr"), "n": 3,
                   "files": [str(t_in), f"{t_out}/run: 2 subjects"], "other": str(outside)}
            got = final_paths(doc)
        # the inner folder is gone from the registry once renamed; the outer one still translates
        assert final_path(t_out / "inner") == tmp_path / "outer" / "inner"
    assert got == {
        "ModelDir": str(tmp_path / "outer" / "inner" / "model"), "Source": str(tmp_path / "outer" / "bids" / "eeg.vhdr"), "n": 3,
        "files": [str(tmp_path / "outer" / "inner"), f"{tmp_path / 'outer'}/run: 2 subjects"], "other": str(outside),
    }
    # nothing pending: unchanged
    assert final_paths({"a": str(tmp_path / "q")}) == {"a": str(tmp_path / "q")}


def test_failed_atomic_dir_leaves_nothing_and_forgets_its_path(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_dir(tmp_path / "out") as tmp:
            raise RuntimeError("boom")
    assert not (tmp_path / "out").exists() and not tmp.exists()
    assert final_path(tmp / "x") == tmp / "x"
    (tmp_path / "out").mkdir()
    with pytest.raises(Eeg2fmriInputError, match="output directory already exists; choose another path or pass overwrite=True"):
        with atomic_dir(tmp_path / "out"):
            pass


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_a_killed_run_are_removed_by_the_next(tmp_path):
    """A process killed outright leaves its hidden temporaries; the next write of the same output on this machine
    removes those whose process is gone, and keeps a live process's, another machine's and anything else."""
    import os

    from eeg2fmri.utils import atomic
    from eeg2fmri.utils.atomic import atomic_dir, atomic_file, remove_stale_temporaries, temp_prefix

    dead = _dead_pid()
    host = atomic._HOST
    stale_file = tmp_path / f".bold.tmp-{host}-{dead}-abc.nii.gz"
    stale_dir = tmp_path / f".bold.synth-{host}-{dead}-xyz"
    live = tmp_path / f"{temp_prefix('bold')}def.nii"
    other_host = tmp_path / f".bold.tmp-{host}x-{dead}-ghi.nii"
    other_stem = tmp_path / f".bold_uncertainty.tmp-{host}-{dead}-jkl.nii"
    old_style = tmp_path / ".bold.tmp-k3j2h1.nii"  # a name without machine and process: never touched
    for p in (stale_file, live, other_host, other_stem, old_style):
        p.write_bytes(b"x")
    stale_dir.mkdir()
    (stale_dir / "features.npy").write_bytes(b"x")
    assert temp_prefix("bold") == f".bold.tmp-{host}-{os.getpid()}-"
    with atomic_file(tmp_path / "bold.nii.gz") as t:
        assert t.name.startswith(temp_prefix("bold"))
        t.write_bytes(b"y")
    assert not stale_file.exists() and not stale_dir.exists()
    assert live.exists() and other_host.exists() and other_stem.exists() and old_style.exists()
    assert (tmp_path / "bold.nii.gz").read_bytes() == b"y"
    # folders made by atomic_dir, the same way
    gone = tmp_path / f".prepared.tmp-{host}-{dead}-q1"
    gone.mkdir()
    with atomic_dir(tmp_path / "prepared") as d:
        assert d.name.startswith(temp_prefix("prepared"))
    assert not gone.exists() and (tmp_path / "prepared").is_dir()
    assert remove_stale_temporaries(tmp_path / "missing", "bold") == []


def test_replaced_output_of_a_killed_run_is_restored_or_removed(tmp_path):
    """atomic_dir moves the previous output aside under a machine-and-process name before renaming the new one in: a
    run killed between the two renames leaves the user's output hidden; the next run puts it back when the output is
    missing, and removes it when a newer output is in place."""
    from eeg2fmri.utils import atomic
    from eeg2fmri.utils.atomic import atomic_dir, remove_stale_temporaries

    dead = _dead_pid()
    host = atomic._HOST
    with atomic_dir(tmp_path / "run") as d:
        (d / "a.txt").write_text("1")
    with atomic_dir(tmp_path / "run", overwrite=True) as d:  # a replacement leaves no aside copy behind
        (d / "a.txt").write_text("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (tmp_path / "run" / "a.txt").read_text() == "2"
    # killed between the renames: the output is missing, the previous one lies aside
    aside = tmp_path / f".run.old-{host}-{dead}-replaced"
    (tmp_path / "run").rename(aside)
    assert remove_stale_temporaries(tmp_path, "run") == []
    assert (tmp_path / "run" / "a.txt").read_text() == "2" and not aside.exists()
    # an aside copy next to a newer output is removed
    aside.mkdir()
    assert remove_stale_temporaries(tmp_path, "run") == [aside] and not aside.exists()
    assert (tmp_path / "run" / "a.txt").read_text() == "2"



def test_software_names_versions_and_the_checkout_commit(tmp_path, tiny_prepared):
    """Versions as importlib.metadata reads them; the commit as git reads it (a source checkout) or None (an installed package)."""
    import json
    import shutil
    import subprocess
    from importlib import metadata
    from pathlib import Path

    import eeg2fmri
    from eeg2fmri.utils.provenance import software, software_line

    sw = software()
    assert sw["eeg2fmri"] == eeg2fmri.__version__
    assert sw["numpy"] == metadata.version("numpy") and sw["torch"] == metadata.version("torch") and sw["mne"] == metadata.version("mne")
    root = Path(eeg2fmri.__file__).resolve().parents[2]
    if (root / ".git").exists() and shutil.which("git"):
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        assert sw["git_commit"] == head and isinstance(sw["git_dirty"], bool)
        assert software_line().startswith(f"eeg2fmri {eeg2fmri.__version__} (git {head[:12]}")
    else:
        assert sw["git_commit"] is None and software_line() == f"eeg2fmri {eeg2fmri.__version__}"
    # a prepared dataset's manifest records it
    out = tiny_prepared.save(tmp_path / "prep")
    assert json.loads((out / "manifest.json").read_text())["software"] == sw
