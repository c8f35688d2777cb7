"""The package's layers hold: import-linter's contracts of pyproject.toml are kept.

The contract (``[tool.importlinter]`` in ``pyproject.toml``, described in
ARCHITECTURE.md) says which package may import which. This test runs
``lint-imports`` on the sources next to the tests (not on an installed copy)
and fails with the linter's report when an import goes upwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

pytest.importorskip("importlinter", reason="the architecture test needs import-linter (pip install 'eeg2fmri[test]')")


def _lint_imports(tmp_path: Path) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports")
    cmd = [exe] if exe else [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["NO_COLOR"] = "1"
    return subprocess.run(
        [*cmd, "--no-cache", "--no-logo", str(ROOT / "pyproject.toml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def _pyproject() -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_layers_contract_is_configured():
    cfg = _pyproject()["tool"]["importlinter"]
    assert cfg["root_package"] == "eeg2fmri"
    layers = [c for c in cfg["contracts"] if c["type"] == "layers"]
    assert layers, "pyproject.toml: expected a 'layers' contract under [tool.importlinter]"
    flat = [m.strip() for layer in layers[0]["layers"] for m in layer.split("|")]
    packages = sorted(p.name for p in (SRC / "eeg2fmri").iterdir() if (p / "__init__.py").exists())
    assert set(packages) <= set(flat), f"packages missing from the layers contract: {sorted(set(packages) - set(flat))}"
    assert flat[0] == "cli" and flat[-1] == "utils"


def test_linter_reads_these_sources(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    out = subprocess.run([sys.executable, "-c", "import eeg2fmri; print(eeg2fmri.__file__)"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120, check=True)
    assert Path(out.stdout.strip()).resolve().is_relative_to(SRC.resolve()), out.stdout


def test_import_contracts_kept(tmp_path):
    res = _lint_imports(tmp_path)
    report = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        pytest.fail(f"import-linter: a contract of pyproject.toml is broken (see ARCHITECTURE.md for the layers):\n{report}", pytrace=False)
    assert "broken" in report and " 0 broken" in report, report
