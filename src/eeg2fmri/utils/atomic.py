"""Atomic output: write to a temporary sibling, then rename into place.

Nothing a user made is ever overwritten without ``overwrite=True`` and an
interrupted run never leaves a half-written file or directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from eeg2fmri.utils.validation import Eeg2fmriInputError


def _check_target(path: Path, overwrite: bool, what: str) -> None:
    if path.exists() and not overwrite:
        raise Eeg2fmriInputError(
            f"{path}: {what} already exists; choose another path or pass overwrite=True (--overwrite on the command line)."
        )


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` only on success.

    Parameters
    ----------
    path : path-like
        Final directory.
    overwrite : bool
        Replace an existing ``path``; otherwise an existing path raises.
    """
    path = Path(path).absolute()
    _check_target(path, overwrite, "output directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


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
    fd, name = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.tmp-", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
