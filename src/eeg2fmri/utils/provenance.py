"""Which software wrote an output: package versions and, for a source checkout, its git commit.

Every file a user may later need to reproduce (a model's ``model.json``, a prepared dataset's
``manifest.json``, the ``metrics.json`` of train/evaluate/quickstart, a benchmark's
``leaderboard.json``, a training ``config.yaml``'s header) records :func:`software`.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["software", "software_line"]

#: the libraries whose versions can change a number eeg2fmri writes
_LIBRARIES = ("numpy", "scipy", "torch", "pytorch-lightning", "scikit-learn", "mne", "nibabel", "nilearn")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.lru_cache(maxsize=1)
def _checkout_commit() -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout eeg2fmri is imported from, ``(None, None)`` for an installed package."""
    import eeg2fmri

    root = Path(eeg2fmri.__file__).resolve().parents[2]  # src/eeg2fmri/__init__.py -> the checkout
    if not (root / ".git").exists() or not (root / "pyproject.toml").is_file():
        return None, None
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        return None, None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


def software() -> dict:
    """Versions of eeg2fmri, Python and the libraries behind its numbers, plus the git commit of a source checkout.

    Returns
    -------
    dict
        ``eeg2fmri`` (version), ``git_commit`` (40 hex digits, or ``None`` when eeg2fmri is not
        imported from a git checkout), ``git_dirty`` (uncommitted changes to tracked files, or
        ``None``), ``python`` and one entry per library (``None`` where not installed); ``plugins``
        (:func:`eeg2fmri.utils.plugins.named_plugins`) where the user named any.
    """
    from eeg2fmri import __version__
    from eeg2fmri.utils.plugins import named_plugins

    commit, dirty = _checkout_commit()
    plugins = named_plugins()  # models/layouts of the user's own code, with its hash (only when there are any)
    return {"eeg2fmri": __version__, "git_commit": commit, "git_dirty": dirty, "python": platform.python_version(),
            **{lib: _version(lib) for lib in _LIBRARIES}, **({"plugins": plugins} if plugins else {})}


def software_line(recorded: dict | None = None) -> str:
    """One line naming the eeg2fmri version and commit (for file headers), e.g. ``eeg2fmri 0.1.0 (git 1a2b3c4d5e6f, uncommitted changes)``.

    ``recorded``: a :func:`software` dict read back from a file (default: this process's).
    """
    s = software() if recorded is None else recorded
    where = ""
    if s["git_commit"]:
        where = f" (git {s['git_commit'][:12]}{', uncommitted changes' if s['git_dirty'] else ''})"
    return f"eeg2fmri {s['eeg2fmri']}{where}"
