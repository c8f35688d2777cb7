"""Reading settings files (JSON, YAML, TOML) into a mapping.

Used by the commands (``--config``) and by :func:`eeg2fmri.training.config.load_config`.
"""

from __future__ import annotations

import json
from pathlib import Path

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["read_config"]


def read_config(path: str | None) -> dict:
    """Read a JSON/YAML/TOML mapping of settings.

    Parameters
    ----------
    path : str | None
        A ``.json``, ``.yaml``/``.yml`` or ``.toml`` file, or the JSON mapping itself (text starting with ``{``,
        e.g. ``--config '{"tr": 2.0}'`` on the command line); ``None`` or ``""`` gives ``{}``.

    Returns
    -------
    dict
        The top-level mapping of the file.

    Raises
    ------
    Eeg2fmriInputError
        The file is missing, has another suffix, or does not hold a mapping.
    """
    if not path:
        return {}
    if str(path).lstrip().startswith("{"):  # inline JSON
        try:
            data = json.loads(str(path))
        except json.JSONDecodeError as err:
            raise Eeg2fmriInputError(f"config {str(path)[:80]!r}: not valid JSON ({err.msg} at character {err.pos}); write it as "
                                     "'{\"key\": value}' with double quotes, or give a .json/.yaml/.toml file.") from err
        if not isinstance(data, dict):
            raise Eeg2fmriInputError(f"config {str(path)[:80]!r}: expected a mapping of settings, got {type(data).__name__}.")
        return data
    p = Path(path)
    if not p.exists():
        raise Eeg2fmriInputError(f"{p}: config file not found; check the path.")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise Eeg2fmriInputError(f"{p}: not valid YAML{where} ({getattr(err, 'problem', None) or err}); check the indentation "
                                     "(spaces, the same for keys of one level) and the colons after keys.") from None
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise Eeg2fmriInputError(f"{p}: not valid JSON at line {err.lineno}, column {err.colno} ({err.msg}).") from None
    elif suffix == ".toml":
        try:
            import tomllib  # Python >= 3.11
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError as err:
                raise Eeg2fmriInputError(f"{p}: reading TOML on Python < 3.11 needs the 'tomli' package; pip install tomli, or use YAML/JSON.") from err

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise Eeg2fmriInputError(f"{p}: not valid TOML ({err}).") from None
    else:
        raise Eeg2fmriInputError(f"{p}: expected a .yaml, .yml, .json or .toml config, got {p.suffix!r}.")
    if not isinstance(data, dict):
        raise Eeg2fmriInputError(f"{p}: expected a mapping of settings at the top level, got {type(data).__name__}.")
    return data
