"""Workflows: whole runs that orchestrate the layers below (the layer under the commands).

* :func:`train` - a training run from one config file (``eeg2fmri train``; ``train.py``);
* :func:`tune` - an Optuna search on validation data (``eeg2fmri tune``; ``tune.py``);
* :func:`evaluate_run` - evaluate a trained model directory (``eeg2fmri evaluate``; ``evaluate.py``);
* :func:`run_benchmark` - several models on the same folds (``eeg2fmri benchmark``; ``benchmark.py``);
* :func:`explain_run` - attributions, patterns and HRFs of a trained model (``eeg2fmri explain``; ``explain.py``);
* :func:`classify_run` - decode task labels from synthesised BOLD, EEG and BOLD (``eeg2fmri classify``; ``classify.py``);
* :func:`run_quickstart` - simulate, train, evaluate and synthesise (``eeg2fmri quickstart``; ``quickstart.py``).

The functions load on first use (Lightning and Optuna are imported only when asked for).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = ["classify_run", "evaluate_run", "explain_run", "run_benchmark", "run_quickstart", "train", "tune"]

_WHERE = {
    "train": "eeg2fmri.workflows.train",
    "tune": "eeg2fmri.workflows.tune",
    "evaluate_run": "eeg2fmri.workflows.evaluate",
    "run_benchmark": "eeg2fmri.workflows.benchmark",
    "run_quickstart": "eeg2fmri.workflows.quickstart",
    "explain_run": "eeg2fmri.workflows.explain",
    "classify_run": "eeg2fmri.workflows.classify",
}


# ``train`` and ``tune`` are also the names of submodules: importing a submodule sets the package
# attribute to the module, which would shadow the function (``from eeg2fmri.workflows import train``
# then gave a module). Import both once here and bind the names to the functions.
from eeg2fmri.workflows import train as _train_module  # noqa: E402
from eeg2fmri.workflows import tune as _tune_module  # noqa: E402

train = _train_module.train
tune = _tune_module.tune


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'eeg2fmri.workflows' has no attribute {name!r}")
