"""NeuroBOLT Hugging Face release (NeurdyLab/NeuroBOLT): EEGLAB EEG paired with DiFuMo-64 ROI time series.

The targets are ROI tables, not BOLD volumes: runs have ``bold_path=None`` and
``run.meta["roi_targets"]`` names the pickle; :func:`read_roi_targets` reads it
without running code from it. ``prepare`` takes the tables as the runs' targets
(:mod:`eeg2fmri.io.roi_tables`: 64 region outputs, no voxel grid).
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.io.layouts._base import Layout, Scan, register_layout
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["GLOBAL_COLUMNS", "NeuroboltLayout", "read_roi_targets"]

#: Columns of the target tables that are not DiFuMo regions (dropped by default).
GLOBAL_COLUMNS = ("global signal clean", "global signal raw")
_NAME = re.compile(r"^sub(\d+)-scan(\d+)_eeg\.set$")

# (module, name) pairs a pandas DataFrame / numpy pickle refers to; anything else is refused.
_SAFE_NAMES = {
    "DataFrame", "Series", "Index", "RangeIndex", "MultiIndex", "BlockManager", "SingleBlockManager", "_new_Index", "new_block",
    "_unpickle_block", "_reconstruct", "ndarray", "dtype", "scalar", "slice", "range", "tuple", "list", "dict", "frozenset", "set",
    "_frombuffer",  # (numpy 2's arrays in pandas' default pickle protocol 5: user test 26)
    "complex", "_reconstructor", "object", "encode", "__pyx_unpickle_NDArrayBacked", "StringArray", "StringDtype", "_restore_array",
}
_SAFE_MODULES = ("pandas", "numpy", "builtins", "__builtin__", "copyreg", "_codecs")  # (__builtin__: pickle protocol 2)


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, f, where: str) -> None:
        super().__init__(f)
        self.where = where

    def find_class(self, module: str, name: str):
        if module.split(".")[0] in _SAFE_MODULES and name in _SAFE_NAMES and not module.startswith(("pandas.io", "numpy.lib.npyio")):
            return super().find_class(module, name)
        raise Eeg2fmriInputError(
            f"{self.where}: expected a pickled pandas DataFrame of ROI time series, found a reference to {module}.{name}, which this "
            "reader does not load (a pickle can run code). If you trust the file, convert it yourself "
            "(pandas.read_pickle(path).to_csv(..., sep='\\t')) and use the table."
        )


def read_roi_targets(run_or_path, *, drop: tuple[str, ...] = GLOBAL_COLUMNS) -> tuple[np.ndarray, list[str]]:
    """The ROI target table of a NeuroBOLT run, without the global-signal columns.

    Parameters
    ----------
    run_or_path : LayoutRun | path-like
        A ``neurobolt`` run (``run.meta["roi_targets"]``) or the ``.pkl`` file.
    drop : tuple of str
        Columns to drop (default: ``global signal clean`` and ``global signal raw``).

    Returns
    -------
    values : array, shape (n_volumes, n_rois), float32
        Row ``i`` belongs to the ``i``-th ``R149`` volume marker.
    names : list of str
        The DiFuMo region names (64 in the release).
    """
    path = Path(run_or_path.meta["roi_targets"]) if hasattr(run_or_path, "meta") else Path(run_or_path)
    if not path.is_file():
        raise Eeg2fmriInputError(f"{path}: expected the ROI target pickle fMRI_difumo64/subNN-scanNN_difumo64_roi.pkl, found nothing; download it with the EEG.")
    obj = _SafeUnpickler(io.BytesIO(path.read_bytes()), str(path)).load()
    cols = getattr(obj, "columns", None)
    if cols is None or not hasattr(obj, "to_numpy"):
        raise Eeg2fmriInputError(f"{path}: expected a pandas DataFrame (volumes x ROIs), found {type(obj).__name__}; is this a NeuroBOLT difumo64 file?")
    names = [str(c) for c in cols]
    keep = [i for i, c in enumerate(names) if c.strip().lower() not in {d.lower() for d in drop}]
    values = np.asarray(obj.to_numpy(), dtype=np.float32)[:, keep]
    if values.ndim != 2 or not np.isfinite(values).all():
        raise Eeg2fmriInputError(f"{path}: expected a finite (volumes x ROIs) table, found shape {values.shape} with non-finite values; re-download the file.")
    return values, [names[i] for i in keep]


@register_layout("neurobolt")
class NeuroboltLayout(Layout):
    """NeuroBOLT: EEGLAB EEG (R149 per volume, TR 2.1 s) with DiFuMo-64 ROI targets (no BOLD volumes)."""

    TITLE = "NeuroBOLT (Hugging Face NeurdyLab/NeuroBOLT): 29 scans of 22 subjects, EEGLAB EEG + DiFuMo-64 ROI tables, R149, TR 2.1 s"
    DESCRIPTION = (
        "The Hugging Face release: EEG_set/subNN-scanNN_eeg.set (+ .fdt; preprocessed EEGLAB, 26 scalp channels incl. TP9' and "
        "TP10' plus EOG1 EOG2 EMG1 EMG2 EMG3 ECG and, on some scans, CWL1-CWL4) and fMRI_difumo64/subNN-scanNN_difumo64_roi.pkl "
        "(a pandas DataFrame, volumes x 66: 64 DiFuMo regions plus 'global signal clean' and 'global signal raw', which "
        "read_roi_targets drops). One 'R149' marker per volume, row i of the table with marker i; TR 2.1 s. The targets are "
        "ROI time series, not BOLD volumes: runs have bold_path None and run.meta['roi_targets']; prepare takes the tables as "
        "the targets (64 region outputs, no voxel grid; synthesis writes region series, NAME_rois.tsv). The pickle is read with a restricted unpickler (pandas/numpy objects only) [I: checked against "
        "pickles written by pandas 3, not the release files]."
    )
    NEEDS = ("EEG_set/subNN-scanNN_eeg.set (+ .fdt)", "fMRI_difumo64/subNN-scanNN_difumo64_roi.pkl")
    MARKER = ("R149",)
    TR = 2.1
    NON_EEG = ("EOG*", "EMG*", "ECG", "CWL*")
    HAS_BOLD = False
    OPTIONS: dict[str, str] = {}

    def _base(self, root: Path) -> Path:
        return root / "Dataset" if (root / "Dataset" / "EEG_set").is_dir() and not (root / "EEG_set").is_dir() else root

    def detect(self, root: Path) -> bool:
        base = self._base(root)
        return (base / "EEG_set").is_dir() and (base / "fMRI_difumo64").is_dir()

    def scan(self, root: Path, subjects: set[str] | None = None, **options: Any) -> Scan:
        base = self._base(root)
        files = sorted((base / "EEG_set").glob("sub*-scan*_eeg.set"))
        if not files:
            raise Eeg2fmriInputError(f"{base}: expected EEG_set/subNN-scanNN_eeg.set, found none; pass the folder that holds EEG_set/ and fMRI_difumo64/.")
        sc = Scan()
        seen = set()
        for p in files:
            m = _NAME.match(p.name)
            if not m:
                sc.notes.append(f"{p.name}: not subNN-scanNN_eeg.set; ignored")
                continue
            sub, scan = m.groups()
            if subjects is not None and sub not in subjects:
                continue
            pkl = base / "fMRI_difumo64" / f"sub{sub}-scan{scan}_difumo64_roi.pkl"
            seen.add(pkl.name)
            if not pkl.is_file():
                sc.skipped.append(f"sub-{sub}_run-{scan}: EEG {p.name} but no ROI targets fMRI_difumo64/{pkl.name}")
                continue
            sc.runs.append(self.make_run(sub, None, None, scan, p, None, meta={"roi_targets": str(pkl)}))
        for pkl in sorted((base / "fMRI_difumo64").glob("sub*-scan*_difumo64_roi.pkl")):
            m = re.match(r"^sub(\d+)-scan(\d+)_", pkl.name)
            if pkl.name not in seen and (subjects is None or (m and m.group(1) in subjects)):
                sc.skipped.append(f"{pkl.name}: ROI targets without EEG EEG_set/{pkl.name.split('_difumo64')[0]}_eeg.set")
        return sc
