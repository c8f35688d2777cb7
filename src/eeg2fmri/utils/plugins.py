"""Models and dataset layouts of your own, outside the package: imported before a registry is read.

Two ways to name them, both read once per process:

* the environment variable ``EEG2FMRI_PLUGINS``: module names or ``.py`` file paths separated by
  commas (or the OS path separator), e.g. ``EEG2FMRI_PLUGINS=mylab.models,./my_layout.py``;
* an installed distribution's entry points in the group ``eeg2fmri.plugins``
  (``[project.entry-points."eeg2fmri.plugins"] mymodels = "mylab.models"``).

Importing a module runs its ``@register_model`` / ``@register_layout`` decorators, so every command
(``eeg2fmri models``, ``train``, ``evaluate``, ``synthesize``, ``prepare --layout``, benchmark's worker
processes) sees them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["ENV_VAR", "ENTRY_POINT_GROUP", "import_plugin", "load_plugins", "named_plugins", "same_definition"]

ENV_VAR = "EEG2FMRI_PLUGINS"
ENTRY_POINT_GROUP = "eeg2fmri.plugins"
_loaded: set[str] = set()
_named: dict[str, str] = {}  # plugins named by the user (EEG2FMRI_PLUGINS, a config's plugins): spec -> its source file
_entry_points_read = False


def import_plugin(spec: str, *, source: str = ENV_VAR) -> None:
    """Import one plugin: a module name (``mylab.models``) or a ``.py`` file path.

    Raises
    ------
    Eeg2fmriInputError
        The module cannot be found or fails to import (naming it and where it was named).
    """
    spec = spec.strip()
    if not spec or spec in _loaded:
        return
    if spec.endswith(".py") or os.sep in spec or "/" in spec:  # a file: recorded by its absolute path (runs again from elsewhere)
        spec = os.path.normpath(str(Path(spec).expanduser().absolute()))
        if spec in _loaded:
            return
    try:
        if spec.endswith(".py") or os.sep in spec or "/" in spec:
            path = Path(spec).expanduser().absolute()
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            name = f"eeg2fmri_plugin_{path.stem}"
            done = _imported_from(path)
            if done is not None:  # the script imported this file by its module name already: not run twice (user test 16)
                _loaded.add(spec)
                if not source.startswith("entry point"):
                    _named[spec] = str(path)
                logger.info("plugin %s: already imported as module %s", spec, done)
                return
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)  # type: ignore[arg-type]
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            try:
                importlib.import_module(spec)
            except ModuleNotFoundError as err:
                # the console script does not put the working directory on sys.path (python -m would): a module of the
                # folder the command runs in (mylab/models.py for mylab.models) is imported from there
                top = spec.split(".")[0]
                cwd = str(Path.cwd())
                if err.name != top or not ((Path(cwd) / top).is_dir() or (Path(cwd) / f"{top}.py").is_file()) or cwd in sys.path:
                    raise
                sys.path.append(cwd)  # after the installed packages: a torch/ of the folder shadows nothing
                logger.info("plugin %s: imported from the working directory %s (added to sys.path)", spec, cwd)
                importlib.import_module(spec)
    except Eeg2fmriInputError:
        raise
    except Exception as err:  # noqa: BLE001  (any failure of user code at import: say which plugin)
        raise Eeg2fmriInputError(f"{source}: expected an importable module or .py file, got {spec!r}, which failed: {type(err).__name__}: {err}; "
                                 "check the name (a module on PYTHONPATH, or a path to a .py file) and that the module imports on its own.") from err
    _loaded.add(spec)
    if not source.startswith("entry point"):  # (an installed package's entry point is loaded wherever it is installed)
        mod = sys.modules.get(spec) if not spec.endswith(".py") else None
        _named[spec] = spec if spec.endswith(".py") else str(getattr(mod, "__file__", "") or "")
    logger.info("plugin %s imported (named in %s)", spec, source)


def named_plugins() -> list[dict[str, str | None]]:
    """The plugins this process imported because a user named them (``EEG2FMRI_PLUGINS``, a train config's ``plugins``):
    ``{"plugin": module name or .py path, "file": its source file, "sha256": of that file}`` each, for provenance -- a
    result computed with a model of your own says which code it ran (user test 25: nothing did). Entry-point plugins
    (installed packages) are not listed."""
    import hashlib

    out = []
    for spec, file in sorted(_named.items()):
        digest = None
        if file and Path(file).is_file():
            digest = hashlib.sha256(Path(file).read_bytes()).hexdigest()
        out.append({"plugin": spec, "file": file or None, "sha256": digest})
    return out


def same_definition(a: type, b: type) -> bool:
    """Whether two classes are one definition imported twice: the same class name in the same source file (a plugin
    named by its .py path in EEG2FMRI_PLUGINS and imported by module name in a script: user test 16). Used by
    ``register_model`` and ``register_layout``."""
    import inspect

    if a.__qualname__ != b.__qualname__:
        return False
    try:
        fa, fb = inspect.getsourcefile(a), inspect.getsourcefile(b)
    except (TypeError, OSError):
        return False
    return fa is not None and fb is not None and Path(fa).resolve() == Path(fb).resolve()


def _imported_from(path: Path) -> str | None:
    """The name of an imported module whose source is the file ``path``, if any."""
    want = path.resolve()
    for name, mod in list(sys.modules.items()):
        f = getattr(mod, "__file__", None)
        if f and f.endswith(path.name):
            try:
                if Path(f).resolve() == want:
                    return name
            except OSError:
                continue
    return None


def load_plugins() -> None:
    """Import every plugin named in ``EEG2FMRI_PLUGINS`` and in the ``eeg2fmri.plugins`` entry points (once each).

    The variable is read on every call (cheap); the installed distributions' entry points once per process.
    """
    global _entry_points_read
    raw = os.environ.get(ENV_VAR, "")
    for part in raw.replace(os.pathsep, ",").split(",") if raw else ():
        import_plugin(part)
    if not _entry_points_read:
        _entry_points_read = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            import_plugin(ep.value.split(":")[0], source=f"entry point {ep.name!r} ({ENTRY_POINT_GROUP})")
