"""The data specification every model is built from (sizes and rates derived from the prepared data).

==============  ===========================================  =================================
input_kind      one window ``x`` (batch axis first)          meaning of the axes
==============  ===========================================  =================================
``"raw"``       ``(batch, n_chans, n_times)``                EEG samples at ``sfreq``
``"stft"``      ``(batch, n_chans, n_freqs, n_frames)``      STFT magnitude, ``freqs`` in Hz,
                                                             ``frame_rate`` frames per second
``"bandpower"`` ``(batch, n_chans, n_bands, n_frames)``      band-power envelopes
``"tangent"``   ``(batch, n_chans, n_bands * (1 + n_chans),  band power, then band covariances
                n_frames)``                                  in the tangent space (rows ``c``)
==============  ===========================================  =================================

The target ``y`` has shape ``(batch, *output_shape)``: a volume ``(X, Y, Z)``
or a vector ``(n_outputs,)`` (masked voxels or ROIs).

:class:`DataSpec` lives with the datasets (which derive it, see
:func:`eeg2fmri.datasets.windows.dataset_spec`) so that the layers below the
models do not import them; :mod:`eeg2fmri.models.base` re-exports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from eeg2fmri.preprocessing.representations import get_representation, list_representations
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice

__all__ = ["INPUT_KINDS", "OUTPUT_KINDS", "DataSpec"]

#: What a model's outputs can be (``DataSpec.output_kind``).
OUTPUT_KINDS = ("voxels", "regions")

#: Every registered representation (eeg2fmri.preprocessing.representations): the three built-in ones in
#: their historical order, then any other.
INPUT_KINDS = ("raw", "stft", "bandpower") + tuple(n for n in list_representations() if n not in ("raw", "stft", "bandpower"))


@dataclass(frozen=True)
class DataSpec:
    """Sizes and rates a model is built from (all derived from the prepared data).

    Parameters
    ----------
    input_kind : {"raw", "stft", "bandpower"}
        EEG representation of one window.
    input_shape : tuple of int
        Shape of one window without the batch axis (see module docstring).
    output_shape : tuple of int
        Shape of one target without the batch axis: ``(X, Y, Z)`` or ``(n_outputs,)``.
    sfreq : float
        EEG sampling frequency in Hz (of the raw samples the window came from).
    tr : float
        Repetition time of the BOLD series in seconds.
    ch_names : tuple of str
        EEG channel names, in input order.
    freqs : tuple of float | None
        Centre frequencies (Hz) of the ``stft`` bins or ``bandpower`` bands.
    frame_rate : float | None
        Frames per second along the last axis of ``stft``/``bandpower`` inputs.
    n_subjects : int
        Number of training subjects (for subject embeddings); ``subject``
        indices passed to ``forward`` are in ``range(n_subjects)``.
    event_names : tuple of str
        Conditions of the event regressors (prepare option ``events``): the last ``len(event_names)``
        entries of axis 1 of frame-based windows, the same on every channel (``n_eeg_features`` entries
        of EEG features come first). Empty (default): windows hold EEG features only.
    band_names : tuple of str
        Names of the band-power entries per channel (``bandpower`` windows; the leading band block of ``tangent``
        windows), e.g. ``("delta", ..., "slow_potential")``; empty where unknown or not band power. Models that treat
        an entry apart read it here (``ridge_hrf``'s ``slow_gain``).
    output_kind : {"voxels", "regions"}
        What the outputs are: the voxels of a mask, or the time series of an atlas's regions (prepared with an atlas).
    """

    input_kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    sfreq: float
    tr: float
    ch_names: tuple[str, ...] = ()
    freqs: tuple[float, ...] | None = None
    frame_rate: float | None = None
    n_subjects: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    event_names: tuple[str, ...] = ()
    band_names: tuple[str, ...] = ()
    output_kind: str = "voxels"

    def __post_init__(self) -> None:
        check_choice(self.input_kind, "input_kind", INPUT_KINDS)
        check_choice(self.output_kind, "output_kind", OUTPUT_KINDS)
        expected = 3 if get_representation(self.input_kind).frame_based else 2  # (chans, freqs, frames) or (chans, samples)
        if len(self.input_shape) != expected:
            raise Eeg2fmriInputError(
                f"expected a {expected}-axis input_shape for input_kind={self.input_kind!r}, "
                f"got {self.input_shape}; see eeg2fmri.models.base for the axis order."
            )
        if self.ch_names and len(self.ch_names) != self.input_shape[0]:
            raise Eeg2fmriInputError(
                f"expected {self.input_shape[0]} channel names (input_shape[0]), got {len(self.ch_names)}."
            )
        if self.event_names:
            if not get_representation(self.input_kind).frame_based or int(self.input_shape[1]) <= len(self.event_names):
                raise Eeg2fmriInputError(f"DataSpec: expected event regressors after at least one EEG feature on axis 1 of frame-based windows, "
                                         f"got {len(self.event_names)} event name(s) for input_kind={self.input_kind!r}, input_shape={self.input_shape}; "
                                         "build it with event_names=() or from data prepared with the prepare option events (dataset_spec).")
        if not self.output_shape or any(int(s) < 1 for s in self.output_shape):
            raise Eeg2fmriInputError(f"expected a non-empty output_shape of positive sizes, got {self.output_shape}.")

    @property
    def n_chans(self) -> int:
        return int(self.input_shape[0])

    @property
    def n_events(self) -> int:
        """Event regressors: the last ``n_events`` entries of axis 1 (the same on every channel)."""
        return len(self.event_names)

    @property
    def n_eeg_features(self) -> int:
        """Entries of axis 1 computed from the EEG (before the event regressors)."""
        return int(self.input_shape[1]) - self.n_events

    @property
    def n_outputs(self) -> int:
        n = 1
        for s in self.output_shape:
            n *= int(s)
        return n

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        d = dict(d)
        for key in ("input_shape", "output_shape", "ch_names", "event_names", "band_names"):
            if key in d and d[key] is not None:
                d[key] = tuple(d[key])
        if d.get("freqs") is not None:
            d["freqs"] = tuple(float(f) for f in d["freqs"])
        return cls(**d)
