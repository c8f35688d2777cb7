"""Atomic output: write to a temporary sibling, then rename into place.

Nothing a user made is ever overwritten without ``overwrite=True`` and an
interrupted run never leaves a half-written file or directory.

Two things the temporary path must not leak into what the user gets:

* **permissions**: :func:`tempfile.mkdtemp` / :func:`tempfile.mkstemp` create
  0700 / 0600 entries; the final folder or file gets the mode a plain
  ``mkdir``/``open`` would have given it under the user's umask;
* **provenance**: a file written inside an :func:`atomic_dir` that records a
  path (a sidecar's ``ModelDir``, a prepared dataset's ``bids_root``) records
  :func:`final_path` of it, the place it will have after the rename.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from eeg2fmri.utils.validation import Eeg2fmriInputError

#: Temporary folder -> final folder of every :func:`atomic_dir` still open in this process.
_PENDING: dict[Path, Path] = {}

#: This machine in temporary names (a process killed outright, e.g. by the out-of-memory killer, cannot remove its
#: temporaries: a later run on the same machine that finds the process gone removes them).
_HOST = "".join(ch for ch in socket.gethostname() if ch.isalnum())[:16] or "host"


def temp_prefix(stem: str, kind: str = "tmp") -> str:
    """Name prefix of a hidden temporary beside an output named ``stem``: ``.STEM.KIND-HOST-PID-``.

    The machine and process in the name let :func:`remove_stale_temporaries` tell a temporary whose writer was killed
    from one still being written.
    """
    return f".{stem}.{kind}-{_HOST}-{os.getpid()}-"


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (this process is; another user's counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike, stem: str) -> list[Path]:
    """Remove the temporaries beside output ``stem`` that a process of this machine left when it was killed.

    Only names made by :func:`temp_prefix` on this machine whose process no longer runs are removed; those of a live
    process, of another machine (a shared file system) or of any other pattern are kept. The one exception is the
    previous output that :func:`atomic_dir` moved aside (kind ``old``) when its run was killed between moving it and
    renaming the new one into place: if ``stem`` does not exist it is put back, not removed.

    Returns
    -------
    removed : list of Path
    """
    folder = Path(folder)
    pattern = re.compile(rf"^\.{re.escape(stem)}\.([a-z]+)-{re.escape(_HOST)}-(\d+)-")
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for p in entries:
        m = pattern.match(p.name)
        if m is None or process_alive(int(m.group(2))):
            continue
        try:
            if m.group(1) == "old" and not (folder / stem).exists() and not (folder / stem).is_symlink():
                os.replace(p, folder / stem)  # the run died between its two renames: the user's output comes back
                from eeg2fmri.utils.logs import logger

                logger.warning("%s: a killed run had moved this output aside (%s); put it back", folder / stem, p.name)
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except OSError:
            continue
        removed.append(p)
    if removed:
        from eeg2fmri.utils.logs import logger

        logger.info("removed %d temporary file(s) left by a killed run: %s", len(removed), ", ".join(p.name for p in removed[:5]))
    return removed


def _umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _user_mode(path: Path, *, directory: bool) -> None:
    """Give ``path`` the mode a plain mkdir/open would have given it under the umask."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _innermost_first() -> list[tuple[Path, Path]]:
    return sorted(_PENDING.items(), key=lambda kv: len(kv[0].parts), reverse=True)


def final_path(path: str | os.PathLike) -> Path:
    """Where ``path`` will be once every enclosing :func:`atomic_dir` has been renamed into place.

    Paths outside any open atomic directory are returned unchanged (absolute).

    Parameters
    ----------
    path : path-like
        A path, possibly inside the temporary folder of an open :func:`atomic_dir`.

    Returns
    -------
    path : Path
        The absolute final path.
    """
    p = Path(path).absolute()
    changed = True
    while changed:  # nested atomic directories: translate from the innermost out
        changed = False
        for tmp, final in _innermost_first():
            if p == tmp or tmp in p.parents:
                p = final / p.relative_to(tmp)
                changed = True
                break
    return p


def _check_target(path: Path, overwrite: bool, what: str) -> None:
    if os.path.lexists(path) and not overwrite:  # (a dangling link counts: it is the user's)
        raise Eeg2fmriInputError(
            f"{path}: {what} already exists; choose another path or pass overwrite=True (--overwrite on the command line)."
        )


def final_paths(obj: Any) -> Any:
    """``obj`` (dicts, lists, tuples of strings and numbers) with every path string under an open
    :func:`atomic_dir` replaced by its :func:`final_path`; anything else unchanged.

    Use on a document (sidecar, provenance, config) just before writing it.
    """
    if isinstance(obj, dict):
        return {k: final_paths(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(final_paths(v) for v in obj)
    if isinstance(obj, os.PathLike):
        return type(obj)(final_path(obj)) if _PENDING else obj
    if isinstance(obj, str) and _PENDING:
        changed = True
        while changed:  # nested atomic directories: an inner final folder may lie in an outer temporary one
            changed = False
            for tmp, final in _innermost_first():
                t = str(tmp)
                if obj == t:
                    obj, changed = str(final), True
                elif t + os.sep in obj:  # a path, or a path inside a message
                    obj, changed = obj.replace(t + os.sep, str(final) + os.sep), True
    return obj


def check_writable(path: str | os.PathLike, *, flag: str = "--out") -> None:
    """Refuse, before any work, an output whose folder cannot be written (user test 29: evaluate, explain and report
    computed everything and then failed at the write). The nearest existing folder above ``path`` must take a file."""
    import tempfile

    from eeg2fmri.utils.validation import Eeg2fmriInputError

    folder = Path(path).absolute().parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise Eeg2fmriInputError(f"{folder}: expected a folder, found a file; choose another {flag}.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".eeg2fmri-write-check-"):
            pass
    except OSError as err:
        raise Eeg2fmriInputError(f"{folder}: cannot write there ({err.strerror or err}); expected a folder this process can write "
                                 f"the output {Path(path).name} in: choose another {flag}.") from None


def check_replaceable(path: Path, marker: str | None, what: str = "output directory") -> None:
    """Refuse to replace (``overwrite``) a folder that is not one of this package's outputs of the same kind.

    Never the working directory or a folder above it (they would vanish under the running command); never a non-empty
    folder without ``marker`` (the file every output of that kind holds, e.g. ``manifest.json``): ``--overwrite`` is for
    a previous run's output, not for a folder of the user's files.
    """
    if not path.is_dir():
        return
    cwd = Path.cwd().absolute()
    if path == cwd or path in cwd.parents:
        raise Eeg2fmriInputError(f"{path}: expected a new or previous output folder to replace, found the working directory (or a folder "
                                 "above it); --overwrite would delete it under the running command. Choose a subfolder (--out NAME).")
    if marker is not None and any(path.iterdir()) and not (path / marker).exists():
        shown = sorted(p.name for p in path.iterdir())[:5]
        raise Eeg2fmriInputError(f"{path}: expected a previous {what} to replace (it would hold {marker}), found other files {shown}; "
                                 "--overwrite replaces only a previous output of this command. Choose another --out, or empty the folder yourself.")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False, marker: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only on success.

    Parameters
    ----------
    path : path-like
        Final directory.
    overwrite : bool
        Replace an existing ``path``; otherwise an existing path raises.
    marker : str | None
        A file every output of this kind holds (``manifest.json``): with ``overwrite``, a non-empty ``path`` without it
        is refused (:func:`check_replaceable`), so that a folder of the user's own files is never replaced.
    """
    path = Path(path).absolute()
    _check_target(path, overwrite, "output directory")
    if overwrite:
        check_replaceable(path, marker)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, path.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(path.name), dir=path.parent))
    _PENDING[tmp] = path
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        _PENDING.pop(tmp, None)
    _user_mode(tmp, directory=True)
    if path.exists():
        if not overwrite:  # it did not exist when this run began: another process wrote it meanwhile
            _appeared_meanwhile(path, tmp, "output directory")
        old = path.with_name(f"{temp_prefix(path.name, 'old')}replaced")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        try:
            os.replace(tmp, path)
        except OSError:
            if path.exists():  # created between the check and the rename
                _appeared_meanwhile(path, tmp, "output directory")
            raise


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, overwrite: bool = False, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path in the same folder that is renamed to ``path`` on success.

    ``suffix`` defaults to the full suffix of ``path`` (e.g. ``.nii.gz``) so
    writers that infer the format from the name keep working.
    """
    path = Path(path).absolute()
    _check_target(path, overwrite, "output file")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) if suffix is None else suffix
    remove_stale_temporaries(path.parent, path.name.split(".")[0])
    fd, name = tempfile.mkstemp(prefix=temp_prefix(path.name.split(".")[0]), suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _user_mode(tmp, directory=False)
    if overwrite:
        os.replace(tmp, path)
        return
    try:  # no-clobber: a hard link fails if another process wrote ``path`` while this one ran
        os.link(tmp, path)
    except FileExistsError:
        try:
            ours = os.path.samefile(tmp, path)  # a link call repeated by a network file system: it is this run's file
        except OSError:
            ours = False
        if ours:
            tmp.unlink(missing_ok=True)
            return
        _appeared_meanwhile(path, tmp, "output file")
    except OSError:  # a file system without hard links
        if path.exists():
            _appeared_meanwhile(path, tmp, "output file")
        os.replace(tmp, path)
    else:
        tmp.unlink(missing_ok=True)


def _appeared_meanwhile(path: Path, tmp: Path, what: str) -> None:
    """Raise for an output that did not exist when this run began and does now (two runs writing one output, user
    test 29): neither is replaced; this run's result is kept beside it under a visible name."""
    stem, ext = path.name.split(".")[0], "".join(path.suffixes)
    kept = None
    for k in range(100):  # a free visible name (never over an earlier run's kept result)
        cand = path.with_name(f"{stem}.unsaved-{os.getpid()}{'' if k == 0 else f'-{k}'}{ext}")
        if os.path.lexists(cand):
            continue
        try:
            os.rename(tmp, cand)
        except OSError:
            break
        kept = cand
        break
    where = (f"this run's result is at {kept}" if kept is not None else
             f"this run's result is in the hidden {tmp} (the next run in this folder removes it: move it now)")
    raise Eeg2fmriInputError(f"{path}: expected to create this {what}, found one another process wrote while this run worked (it did not "
                             f"exist when this run began); the other one is kept and {where}. Run one command per output at a time; "
                             "move the one you want into place yourself.")
