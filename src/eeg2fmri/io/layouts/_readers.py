"""EEG readers for published layouts, registered by name (``LayoutRun.eeg_reader``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from eeg2fmri.io.layouts._base import LayoutRun, header_field
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = [
    "DS000116_NOGA_CHANNELS",
    "DS000116_REREF_CHANNELS",
    "brainvision_files",
    "get_reader",
    "list_readers",
    "register_reader",
]

Reader = Callable[[LayoutRun, bool], "object"]
_READERS: dict[str, Reader] = {}


def register_reader(name: str) -> Callable[[Reader], Reader]:
    """Decorator: register ``fn(run, preload) -> mne.io.Raw`` as the EEG reader ``name``."""

    def deco(fn: Reader) -> Reader:
        _READERS[name] = fn
        return fn

    return deco


def list_readers() -> list[str]:
    """Names of the registered EEG readers."""
    return sorted(_READERS)


def get_reader(name: str) -> Reader:
    """The EEG reader registered as ``name``."""
    if name not in _READERS:
        raise Eeg2fmriInputError(f"EEG reader {name!r}: expected one of {list_readers()}; set LayoutRun.eeg_reader to one of them (or None for eeg2fmri.io.read_eeg).")
    return _READERS[name]


@register_reader("mne")
def _read_mne(run: LayoutRun, preload: bool):
    from eeg2fmri.io.eeg import read_eeg

    return read_eeg(run.eeg_path, preload=preload)


# ---------------------------------------------------------------------------------------------
# BrainVision with stale DataFile= / MarkerFile= lines
# ---------------------------------------------------------------------------------------------
def brainvision_files(vhdr: str | Path) -> tuple[Path, Path | None, list[str]]:
    """The data and marker files of a BrainVision header, repairing stale names.

    Published exports often keep the acquisition names in ``DataFile=`` /
    ``MarkerFile=`` (ds002158: ``s2_run1_08062017.eeg``) or use ``.dat`` for
    the binary (Analyzer exports, NODDI). When the named file does not exist,
    the file with the header's own stem and ``.eeg``/``.dat`` (``.vmrk``) is used.

    Parameters
    ----------
    vhdr : path-like
        The ``.vhdr`` header.

    Returns
    -------
    data : Path
        Binary data file.
    markers : Path | None
        Marker file (``None`` when there is none).
    notes : list of str
        What was repaired.
    """
    vhdr = Path(vhdr)
    if not vhdr.is_file():
        raise Eeg2fmriInputError(f"{vhdr}: BrainVision header not found; check the path.")
    notes: list[str] = []
    named = header_field(vhdr, "DataFile")
    data = vhdr.parent / named if named else None
    if data is None or not data.is_file():
        cands = [vhdr.with_suffix(ext) for ext in (".eeg", ".dat") if vhdr.with_suffix(ext).is_file()]
        if len(cands) != 1:
            found = "both .eeg and .dat" if cands else "neither"
            raise Eeg2fmriInputError(
                f"{vhdr}: the header names DataFile={named!r}, which is not beside it, and expected exactly one of "
                f"{vhdr.stem}.eeg / {vhdr.stem}.dat instead, found {found}; copy the binary data file next to the header "
                "(with git-annex/datalad: `datalad get` it, an annex pointer is not the data)."
            )
        notes.append(f"DataFile={named!r} not found; using {cands[0].name}")
        data = cands[0]
    named_m = header_field(vhdr, "MarkerFile")
    markers = vhdr.parent / named_m if named_m else None
    if markers is None or not markers.is_file():
        sib = vhdr.with_suffix(".vmrk")
        if sib.is_file():
            notes.append(f"MarkerFile={named_m!r} not found; using {sib.name}")
            markers = sib
        else:
            notes.append(f"no marker file (MarkerFile={named_m!r}, no {sib.name}): no annotations")
            markers = None
    return data, markers, notes


def read_brainvision(vhdr: str | Path, *, preload: bool = True):
    """Read a BrainVision recording, tolerating stale ``DataFile=``/``MarkerFile=`` and ``.dat`` data.

    Parameters
    ----------
    vhdr : path-like
        ``.vhdr`` header.
    preload : bool
        Load the data.

    Returns
    -------
    raw : mne.io.Raw
        Markers as annotations ``Type/Description`` (``Scanner/Scan Start``,
        ``Response/R128``).
    """
    import mne

    vhdr = Path(vhdr)
    data, markers, notes = brainvision_files(vhdr)
    overrides = {}
    if data != vhdr.parent / (header_field(vhdr, "DataFile") or ""):
        overrides["data_fname"] = str(data)
    if markers is None:
        overrides["marker_fname"] = False
    elif markers != vhdr.parent / (header_field(vhdr, "MarkerFile") or ""):
        overrides["marker_fname"] = str(markers)
    for n in notes:
        logger.info("%s: %s", vhdr.name, n)
    kwargs = {"overrides": overrides} if overrides else {}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = mne.io.read_raw_brainvision(vhdr, preload=preload, verbose=False, **kwargs)
    except TypeError as err:
        if "overrides" in str(err):
            raise Eeg2fmriInputError(f"{vhdr}: {'; '.join(notes)}; reading it needs MNE >= 1.13 (read_raw_brainvision(overrides=...)); upgrade mne or fix DataFile=/MarkerFile= in the header.") from err
        raise
    except (ValueError, OSError, RuntimeError, KeyError) as err:
        raise Eeg2fmriInputError(f"{vhdr}: could not read BrainVision EEG ({type(err).__name__}: {err}); is the data file complete (not a git-annex pointer)?") from err
    for w in caught:
        logger.debug("%s: reader warning: %s", vhdr.name, w.message)
    return raw


@register_reader("brainvision")
def _read_bv(run: LayoutRun, preload: bool):
    return read_brainvision(run.eeg_path, preload=preload)


# ---------------------------------------------------------------------------------------------
# ds000116 legacy MATLAB files
# ---------------------------------------------------------------------------------------------
#: 34 electrodes of ``EEG_rereferenced.mat`` (CAL's older ``channels_02``, in 10-20 case).
DS000116_REREF_CHANNELS = (
    "Fp1", "Fp2", "AF3", "AF4", "F7", "F3", "Fz", "F4", "F8", "FC5", "FC1", "FC2", "FC6", "T7", "C3", "Cz", "C4",
    "T8", "CP5", "CP1", "CP2", "CP6", "P7", "P3", "Pz", "P4", "P8", "PO7", "PO3", "PO4", "PO8", "O1", "Oz", "O2",
)  # fmt: skip
#: 43 bipolar derivations of ``EEG_noGA.mat`` / ``EEG_raw.mat`` rows 1-43 (CAL ``channels_02``).
DS000116_NOGA_CHANNELS = (
    "C3-T7", "T7-LM", "LM-CP5", "CP5-P7", "P7-PO7", "PO7-PO3", "PO3-O1", "O1-Oz", "PO3-P3", "P3-CP1", "Pz-CP1",
    "CP1-C3", "Cz-C3", "Fp2-Fp1", "Fp1-AF3", "AF4-Fp2", "AF3-F3", "F4-AF4", "F3-F7", "F8-F4", "FC1-F3", "F4-FC2",
    "F7-FC5", "FC6-F8", "FC5-T7", "T8-FC6", "Cz-Fz", "Fz-FC1", "FC2-Fz", "T8-C4", "RM-T8", "CP6-RM", "P8-CP6",
    "PO8-P8", "PO4-PO8", "O2-PO4", "Oz-O2", "P4-PO4", "CP2-P4", "CP2-Pz", "C4-CP2", "C4-Cz", "Pz-Oz",
)  # fmt: skip

#: file name -> (variable, channel names, channel types, scale of the non-stim rows to volts)
DS000116_FILES = {
    "EEG_rereferenced.mat": ("data_reref", DS000116_REREF_CHANNELS + ("ECG", "STI stim", "STI behav"), ("eeg",) * 34 + ("ecg", "stim", "stim"), 1e-6),
    "EEG_noGA.mat": ("data_noGA", DS000116_NOGA_CHANNELS + ("hEOG", "vEOG", "ECG1", "ECG2", "STI stim", "STI behav"), ("eeg",) * 43 + ("eog", "eog", "ecg", "ecg", "stim", "stim"), 1e-6),
    "EEG_raw.mat": ("data", DS000116_NOGA_CHANNELS + ("hEOG", "vEOG", "ECG1", "ECG2", "STI stim", "STI behav"), ("eeg",) * 43 + ("eog", "eog", "ecg", "ecg", "stim", "stim"), 100e-6),
}
DS000116_SFREQ = 1000.0


def _code_events(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples where a code channel steps to a non-zero value, and those values."""
    x = np.round(np.asarray(x, dtype=float)).astype(np.int64)
    idx = np.flatnonzero((x[1:] != x[:-1]) & (x[1:] != 0)) + 1
    if len(x) and x[0] != 0:
        idx = np.concatenate([[0], idx])
    return idx, x[idx]


def read_ds000116_mat(path: str | Path, *, sfreq: float = DS000116_SFREQ):
    """Read one ds000116 legacy ``EEG_*.mat`` file into an MNE ``RawArray``.

    Parameters
    ----------
    path : path-like
        ``EEG_rereferenced.mat`` (variable ``data_reref``, 37 x samples: 34
        electrodes, ECG, stimulus code, response code; the code channels are
        named ``STI stim`` and ``STI behav``), ``EEG_noGA.mat``
        (``data_noGA``, 49 x samples: 43 bipolar derivations, hEOG, vEOG, 2 ECG,
        stimulus, response) or ``EEG_raw.mat`` (``data``, same 49 rows, scaled
        by 100 to microvolts as the published script does).
    sfreq : float
        Sampling rate; the files do not store it (1000 Hz per the README).

    Returns
    -------
    raw : mne.io.RawArray
        EEG in volts; ECG/EOG/stim channels typed; stimulus codes become
        ``Stimulus/S<code>`` and response codes ``Response/R<code>`` annotations
        (every step of the code channel to a non-zero value).
    """
    import mne
    from scipy.io import loadmat

    path = Path(path)
    if path.name not in DS000116_FILES:
        raise Eeg2fmriInputError(f"{path}: expected one of {sorted(DS000116_FILES)} (ds000116 legacy EEG), got {path.name!r}; pass the file itself, not a renamed copy.")
    if not path.is_file():
        raise Eeg2fmriInputError(f"{path}: EEG file not found; extract ds116_subNNN.tgz so that subNNN/EEG/taskXXX_runYYY/{path.name} exists.")
    key, names, types, scale = DS000116_FILES[path.name]
    try:
        mat = loadmat(path)
    except (ValueError, OSError, NotImplementedError, TypeError) as err:
        raise Eeg2fmriInputError(f"{path}: could not read the MATLAB file ({type(err).__name__}: {err}); expected a MATLAB v5 .mat readable by scipy.io.loadmat (v7.3/HDF5 files need converting).") from err
    if key not in mat:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise Eeg2fmriInputError(f"{path}: expected the variable {key!r}, found {present}; is this the original {path.name} from ds116_subNNN.tgz?")
    arr = np.asarray(mat[key])
    n = len(names)
    if arr.ndim != 2 or n not in arr.shape:
        raise Eeg2fmriInputError(f"{path}: expected {key} shaped ({n} channels, n_samples), got {arr.shape}; the file does not match the documented layout.")
    if arr.shape[0] != n:
        logger.info("%s: %s is stored samples x channels; transposing", path.name, key)
        arr = arr.T
    data = arr.astype(np.float64)
    stim_rows = [i for i, t in enumerate(types) if t == "stim"]
    codes = {i: data[i].copy() for i in stim_rows}
    nonstim = [i for i in range(n) if i not in stim_rows]
    data[nonstim] *= scale
    info = mne.create_info(list(names), float(sfreq), list(types))
    raw = mne.io.RawArray(data, info, verbose=False)
    onsets, descs = [], []
    for i in stim_rows:
        idx, vals = _code_events(codes[i])
        prefix = "Stimulus/S" if names[i] == "STI stim" else "Response/R"
        onsets += list(idx / sfreq)
        descs += [f"{prefix}{v}" for v in vals]
    if onsets:
        order = np.argsort(onsets, kind="stable")
        raw.set_annotations(mne.Annotations(np.asarray(onsets)[order], np.zeros(len(order)), np.asarray(descs, dtype=object)[order]))
    return raw


@register_reader("ds000116_mat")
def _read_ds000116(run: LayoutRun, preload: bool):
    return read_ds000116_mat(run.eeg_path, sfreq=float(run.meta.get("sfreq", DS000116_SFREQ)))
