"""The registry of EEG representations: one object per representation, looked up by name.

A representation says how a continuous EEG recording becomes the array that windows are
cut from, and how those windows are laid out:

* its name (``PrepareConfig.representation``, ``DataSpec.input_kind``);
* whether rows are frames of ``tr / frames_per_tr`` seconds anchored at the volume onsets
  (``frame_based``: band power, STFT) or samples at ``raw_sfreq`` (raw);
* its window geometry (:meth:`Representation.frame_rate`, :meth:`Representation.rows_per_tr`,
  :meth:`Representation.default_window`) and its highest EEG frequency
  (:meth:`Representation.needed_fmax`);
* the whole-recording computation (:meth:`Representation.compute`: features, the end of
  every volume's window, frame rate, frequencies);
* for frame-based representations, the pieces the chunked (streaming) computation of
  :mod:`eeg2fmri.synthesis.stream` calls: :meth:`Representation.stream_setup` and
  :meth:`Representation.stream_frames`, and the within-recording standardisation
  (:meth:`Representation.normalisation`).

``config`` arguments are :class:`eeg2fmri.datasets.prepared.PrepareConfig` objects (or
anything with its fields): the datasets layer sits above this one, so it is not imported.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["Representation", "get_representation", "list_representations", "register_representation"]

_REGISTRY: dict[str, Representation] = {}


class Representation:
    """Base class of a representation; subclasses are registered with :func:`register_representation`.

    Attributes
    ----------
    name : str
        ``PrepareConfig.representation`` and ``DataSpec.input_kind``.
    frame_based : bool
        Rows are frames of ``tr / frames_per_tr`` s (window ``x`` of shape ``(n_chans,
        n_freqs, n_frames)``), or samples at ``raw_sfreq`` (``(n_chans, n_times)``).
    rate_dependent_freqs : bool
        The frequencies (``DataSpec.freqs``) depend on the work sampling rate (STFT
        bins), so a recording must reproduce them.
    order : int
        Position in :func:`list_representations` (the order of choices in messages).
    """

    name: str = ""
    order: int = 100
    frame_based: bool = True
    rate_dependent_freqs: bool = False

    @property
    def input_kind(self) -> str:
        return self.name

    # ---------------------------------------------------------------- geometry
    def needed_fmax(self, config: Any) -> float:
        """Highest EEG frequency the representation uses (Hz)."""
        raise NotImplementedError

    def frame_rate(self, config: Any, tr: float) -> float:
        """Rows of the representation per second."""
        return float(config.frames_per_tr) / float(tr)

    def rows_per_tr(self, config: Any, tr: float) -> float:
        """Rows of the representation per volume (``frames_per_tr`` for frame-based ones)."""
        return self.frame_rate(config, tr) * float(tr)

    def default_window(self, config: Any, tr: float, seconds: float) -> int:
        """Window length in rows covering ``seconds`` + one TR of EEG up to the volume's end."""
        return int(math.ceil((seconds + tr) * self.frame_rate(config, tr) - 1e-9))

    def input_shape(self, n_chans: int, n_freqs: int | None, n_rows: int) -> tuple[int, ...]:
        """``DataSpec.input_shape`` of windows of ``n_rows`` rows."""
        if not self.frame_based:
            return (int(n_chans), int(n_rows))
        return (int(n_chans), int(n_freqs), int(n_rows))

    # ---------------------------------------------------------------- whole recording
    def compute(self, data: np.ndarray, wsf: float, onsets: np.ndarray, tr: float, config: Any, *, where: str = "EEG") -> dict[str, Any]:
        """The continuous representation of one recording.

        Parameters
        ----------
        data : array, shape (n_chans, n_times)
            EEG at the work rate ``wsf`` (Hz), filtered (``load_eeg_lowrate``).
        onsets : array, shape (n_volumes,)
            Volume onsets in seconds from the first sample.
        tr : float
        config : PrepareConfig (bands resolved)

        Returns
        -------
        rep : dict
            ``features`` (time first), ``freqs`` (list or None), ``window_end`` (exclusive
            end row of every volume's window), ``frame_rate``.
        """
        raise NotImplementedError

    # ---------------------------------------------------------------- streaming (frame-based)
    def stream_setup(self, config: Any, *, wsf: float, n_work: int, tr: float, where: str = "EEG") -> dict[str, Any]:
        """Checks and constants of a chunked computation: ``freqs`` (list) and what :meth:`stream_frames` needs."""
        raise NotImplementedError

    def stream_frames(self, seg: np.ndarray, wsf: float, t_seg: float, starts: np.ndarray, keep: np.ndarray, q: int, flen: float, config: Any,
                      state: dict[str, Any], *, where: str = "EEG") -> np.ndarray:
        """Frames ``keep`` (rows of the frame grid ``starts``, in s) from one padded segment starting at ``t_seg`` s.

        Returns an array of shape ``(len(keep), n_chans, n_freqs)``, float32, before the
        within-recording standardisation.
        """
        raise NotImplementedError

    def stream_frames_torch(self, seg: Any, wsf: float, t_seg: float, starts: np.ndarray, keep: np.ndarray, q: int, flen: float, config: Any,
                            state: dict[str, Any], *, where: str = "EEG") -> np.ndarray:
        """:meth:`stream_frames` of a segment given as a torch tensor (on any device), same result.

        The default copies the segment to the CPU and calls :meth:`stream_frames`;
        a representation overrides it to compute on the tensor's device.
        """
        return self.stream_frames(seg.cpu().numpy(), wsf, t_seg, starts, keep, q, flen, config, state, where=where)

    def feature_freqs(self, freqs: list[float], n_chans: int) -> list[float]:
        """The frequency (Hz) of every entry along the features' axis 2 for ``n_chans`` channels, from the
        ``freqs`` of :meth:`stream_setup` (the same list unless a representation stacks more per channel)."""
        return list(freqs)

    #: The first and last chunks are extended periodically (the one-shot path treats the recording as periodic).
    periodic_edges: bool = False

    def normalisation(self, config: Any) -> tuple[str, bool]:
        """Within-recording standardisation of the streamed rows: ``("standardize", log)`` (per channel and
        frequency, :func:`~eeg2fmri.preprocessing.standardize_features`), ``("median", False)`` (divide by the
        global median), ``("robust", False)`` (per-channel median/IQR) or ``("custom", False)`` (the
        representation's own ``normalise(features, n_chans, config)``, in place)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<representation {self.name!r}>"


def register_representation(rep: Representation) -> Representation:
    """Add ``rep`` to the registry under ``rep.name`` (returns it, so it can decorate an instance's creation)."""
    if not rep.name:
        raise ValueError("a representation needs a name")
    if rep.name in _REGISTRY and type(_REGISTRY[rep.name]) is not type(rep):
        raise ValueError(f"representation {rep.name!r} is already registered ({_REGISTRY[rep.name]!r})")
    _REGISTRY[rep.name] = rep
    return rep


def get_representation(name: str) -> Representation:
    """The registered representation called ``name``; an unknown name raises ``Eeg2fmriInputError``."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise Eeg2fmriInputError(f"representation: expected one of {list(list_representations())}, got {name!r}.") from None


def list_representations() -> tuple[str, ...]:
    """Names of the registered representations, by ``order`` (bandpower, stft, raw, then any others)."""
    return tuple(sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].order, n)))
