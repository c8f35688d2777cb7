"""``ridge_hrf``: the field's standard linear encoding model, band power -> lags/HRF -> ridge.

EEG band power per channel (a ``bandpower`` window of the last ``n_frames``
frames, by default 16 s + 1 TR; of a ``tangent`` window, its band-power block,
the same numbers as a band-power preparation, so that ``train`` fits the model
``benchmark`` fits on band-power windows derived from tangent data) goes
through one of three haemodynamic bases, then to every output by ridge
regression:

* ``"canonical"``: convolved with the canonical double-gamma HRF (one
  feature per channel and band; the classical, cheapest variant);
* ``"basis"``: projected on SPM's informed basis set (canonical HRF, its
  time and dispersion derivatives, from nilearn, averaged over each frame):
  three features per channel and band, latency and width free per voxel;
* ``"lags"``: every frame is a feature (finite impulse response over lags
  0..16 s: any HRF shape per voxel, the most parameters);
* ``"auto"`` (default): all three fitted, the one with the lowest validation
  error kept (``hrf_``), so the reference adapts to the data's length and
  haemodynamics instead of assuming either.

The penalty is chosen on a validation split (mean squared error) when one is
given, otherwise by generalised cross-validation (GCV) on the training
windows; one for all outputs, or one per output (``alpha_per_target=True``,
as scikit-learn's ``RidgeCV(alpha_per_target=True)``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models.base import register_model, target_fingerprint
from eeg2fmri.utils.logs import logger
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["RidgeHRF", "informed_basis"]

HRF_CHOICES = ("auto", "canonical", "basis", "lags")
#: The ridge penalties tried when ``alphas`` is None (chosen on validation data; per output with ``alpha_per_target``).
DEFAULT_ALPHAS = tuple(np.logspace(-2, 5, 15))
#: How ``hrf="auto"`` compares the bases on the validation windows: ``"mse"`` (the mean squared error over every output)
#: or ``"r"`` (the mean correlation over the output groups -- supervoxels, or single outputs -- with the most validation
#: signal; see :meth:`RidgeHRF.fit`).
#: What ``ridge_hrf`` reads of windows with event regressors (``inputs``).
INPUTS = ("all", "eeg", "events")

#: ``event_gain="auto"``: the gains of the event columns tried (penalties 1, 1/16, 1/256, 1/4096 times the EEG's).
EVENT_GAINS = (1.0, 4.0, 16.0, 64.0)

#: ``slow_gain="auto"``: the gains of the slow-potential columns tried (penalties 4096, 16, 1, 1/16 times the bands').
SLOW_GAINS = (1.0 / 64.0, 0.25, 1.0, 4.0)
#: ``slow_gain`` as a rule: one gain for every output, or each output its own (see :class:`RidgeHRF`).
SLOW_GAIN_RULES = ("auto", "shared", "per_target")

HRF_SELECT = ("mse", "r")
_BASES = ("canonical", "basis", "lags")
#: Elements (features x outputs) of the float64 coefficient product computed at once in ``fit`` (64 MB; user test 40:
#: 256 MB blocks were a quarter of the whole-brain lags fit's transient memory, for no measurable speed).
_COEF_BLOCK_ELEMS = 1 << 23
#: Outputs whose float32 validation errors ``hrf="auto"``'s margin computes at once (windows x this many).
_SSE_BLOCK_OUTPUTS = 8192
#: Elements (windows x outputs) of float64 targets handled at once in ``fit`` (256 MB).
_Y_BLOCK_ELEMS = 1 << 25


def _shared_alpha_val_error(proj: np.ndarray, uty: np.ndarray, y_c: np.ndarray, s: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """Validation mean squared error over all outputs for each ridge penalty, without forming the predictions.

    With ``P = proj`` (n_val, k), ``U = uty`` (k, n_outputs), ``Y = y_c`` and
    ``d = s / (s**2 + penalty)``, the prediction is ``P diag(d) U`` and
    ``||Y - P diag(d) U||^2 = ||Y||^2 - 2 d.b + d' (G * C) d`` with
    ``b_j = sum_v (P'Y)_jv U_jv``, ``G = P'P`` and ``C = UU'``: one pass over the
    outputs for all penalties instead of one prediction per penalty.

    Returns
    -------
    err : array, shape (n_penalties,)
    """
    b = ((proj.T @ y_c) * uty).sum(1)
    return _shared_error_from_sums(b, proj.T @ proj, uty @ uty.T, float((y_c * y_c).sum()), y_c.size, s, penalties)


def _shared_error_from_sums(b: np.ndarray, g: np.ndarray, c: np.ndarray, yy: float, size: int, s: np.ndarray, penalties: np.ndarray) -> np.ndarray:
    """:func:`_shared_alpha_val_error` from its sums over outputs (``b``, ``G``, ``C``, ``||Y||^2``), which blocks of
    outputs can accumulate."""
    gc = g * c
    out = np.empty(len(penalties))
    for i, pen in enumerate(penalties):
        d = s / (s**2 + pen)
        out[i] = yy - 2.0 * d @ b + d @ gc @ d
    return np.maximum(out, 0.0) / size


def informed_basis(dt: float, n_frames: int, *, oversampling: int = 50) -> np.ndarray:
    """SPM's informed basis set averaged over frames of ``dt`` seconds.

    Parameters
    ----------
    dt : float
        Frame length in seconds.
    n_frames : int
        Number of frames (lags 0 .. ``n_frames * dt``).
    oversampling : int
        Samples per frame at which nilearn evaluates the functions.

    Returns
    -------
    basis : array, shape (3, n_frames)
        Canonical HRF, time derivative, dispersion derivative
        (``nilearn.glm.first_level``'s ``spm_hrf``, ``spm_time_derivative``,
        ``spm_dispersion_derivative``), each averaged within frame ``k``
        (lags ``[k dt, (k + 1) dt)``), oldest lag last; rows scaled to unit norm.
    """
    from nilearn.glm.first_level.hemodynamic_models import (
        spm_dispersion_derivative,
        spm_hrf,
        spm_time_derivative,
    )

    length = n_frames * dt
    rows = []
    for fn in (spm_hrf, spm_time_derivative, spm_dispersion_derivative):
        h = np.asarray(fn(dt, oversampling=oversampling, time_length=length), dtype=np.float64)
        h = np.pad(h, (0, max(0, n_frames * oversampling - len(h))))[: n_frames * oversampling]
        b = h.reshape(n_frames, oversampling).mean(1)
        rows.append(b / np.linalg.norm(b))
    return np.stack(rows)


def _thin_svd(a: np.ndarray, gram: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD ``a = u @ diag(s) @ vt`` of a (standardised) feature matrix, shape (n, p), for ridge solutions.

    With ``gram`` and many more features than windows (``p >= 2 n``, e.g.
    tangent-space features) it comes from the eigendecomposition of the
    ``(n, n)`` Gram matrix (one BLAS product, several times faster than
    LAPACK's SVD of the wide matrix); otherwise LAPACK's SVD. The Gram
    matrix resolves squared singular values only down to ~1e-13 of the
    largest: smaller ones (and the exact zeros of centred data) are set to
    that floor. Ridge solutions are unaffected as long as the penalty is far
    above the floor: a direction enters them as ``vt[i] * s[i] / (s[i]**2 +
    penalty)`` = ``(u[i] @ a) / (s[i]**2 + penalty)``, in which ``s[i]``
    cancels (then ``vt[i]`` need not have unit norm).
    """
    n, p = a.shape
    if not gram or p < 2 * n:
        return np.linalg.svd(a, full_matrices=False)
    w, u = np.linalg.eigh(a @ a.T)
    w, u = w[::-1], np.ascontiguousarray(u[:, ::-1])
    top = max(float(w[0]), 0.0)
    if top == 0.0:  # all-zero features: nothing to fit
        return u[:, :0], np.zeros(0), np.zeros((0, p))
    s = np.sqrt(np.maximum(w, top * 1e-13))
    vt = u.T @ a
    vt /= s[:, None]
    return u, s, vt


@register_model("ridge_hrf")
class RidgeHRF(BaseEstimator):
    """Multi-lag (or HRF-convolved) band-power ridge regression (scikit-learn style).

    Parameters
    ----------
    spec : DataSpec
        ``input_kind="bandpower"``, input ``(n_chans, n_bands, n_frames)``, or
        ``input_kind="tangent"``, input ``(n_chans, n_bands * (1 + n_chans),
        n_frames)``, of which only the band-power block (the first ``n_bands``
        entries of axis 1) is read.
    alphas : sequence of float
        Candidate ridge penalties (relative to the number of features).
    hrf : {"auto", "canonical", "basis", "lags"}
        Haemodynamic basis (see the module docstring); ``"auto"`` chooses on
        validation data.
    alpha_per_target : bool | "guarded" | "auto"
        Choose the penalty per output (voxel/ROI) instead of one for all. ``"auto"`` (default): per output where
        the model reads EEG features and event regressors together (``inputs="all"`` on data with events: one
        penalty for every voxel, chosen mostly on voxels of noise, traded the EEG-driven regions for the
        design's -- user test 51 and its generator's held-out seeds), else one for all (``False``). ``"guarded"`` (validation windows
        needed; without them one penalty): the penalty chosen for all outputs, except where an output's own
        best penalty lowers its validation squared error by more than ``GUARD_SE`` jackknife SEs (over
        contiguous blocks of validation windows) -- per-output penalties where an output has the evidence
        for one (a focal signal's driven voxels), one penalty where the per-output choice would be noise
        (``own_alpha_fraction_``: the share of outputs that kept their own).
    refit : bool
        With validation windows: once the basis and penalties are chosen on
        them, fit again on the training and validation windows together with
        those choices (scikit-learn's ``refit``): more data for the model one
        deploys, at the price of a validation score that no longer describes
        the fitted coefficients. Off by default (every reported number fits on
        the training windows only).
    factored : bool | "auto"
        Keep the coefficients as ``components_.T @ coef_`` (the ridge solution
        lies in the span of the training windows, rank <= n_samples) instead
        of one ``(n_features, n_outputs)`` matrix: the same predictions with
        less memory and time when the features outnumber the windows (then
        the SVD comes from the windows' Gram matrix, see ``_thin_svd``).
        ``"auto"`` (default): factored where that form is the smaller one,
        ``n_components * (n_features + n_outputs) < n_features * n_outputs``
        (lag features of many outputs: whole-brain voxels; user test 47: 46 MB
        instead of 389 MB at 29,446 voxels), else one matrix.
    inputs : {"all", "eeg", "events"}
        What the model reads of windows that carry event regressors (prepare option ``events``;
        ``spec.event_names``): ``"all"`` (default) the EEG features and the events, each convolved with the
        haemodynamic basis; ``"eeg"`` the EEG features only; ``"events"`` the events only -- a stimulus GLM
        (FIR/HRF-basis regression on the conditions), the baseline an event-related design must beat.
        Windows without events: ``"all"`` and ``"eeg"`` are the same; ``"events"`` is refused.
    event_gain : "auto" | float
        With ``inputs="all"`` and event regressors: the standardised event columns are multiplied by this gain,
        i.e. penalised ``gain**2`` times less than the EEG features (a banded ridge of two bands: a few event
        columns beside hundreds of EEG lag features need a smaller penalty -- with one penalty for all, an oddball's
        events were drowned: ROI r 0.09 against 0.30 for the events alone). ``"auto"`` (default): chosen from
        :data:`EVENT_GAINS` with the basis and penalty, on the validation windows (or by GCV).
    slow_gain : "auto" | "shared" | "per_target" | float
        On band power prepared with the option ``slow_potential`` (the entry ``"slow_potential"`` of
        ``spec.band_names``): its standardised columns are multiplied by this gain, i.e. penalised ``1 / gain**2``
        times the bands' (a banded ridge of two bands: a slow potential drives some regions, and with one penalty
        for everything its n_chans noisy columns cost the band-driven regions -- user test 59's generator, region
        targets, LOSO, mean of 4 seeds: beta ROI r 0.335 without the slow entry, 0.290 with it at gain 1). A number:
        that gain.
        ``"shared"``: one gain for every output, from :data:`SLOW_GAINS`, on the validation windows (or by GCV) with
        the basis chosen at gain 1. ``"per_target"`` (validation windows needed; without them ``"shared"``): each
        output the gain of :data:`SLOW_GAINS` with its lowest validation squared error. ``"auto"`` (default):
        ``"per_target"`` where the outputs are regions (``spec.output_kind == "regions"``: an atlas's series have
        the signal to choose on; user test 59's generator, 4 seeds, LOSO: mean ROI r of the three driven regions 0.223
        against 0.170 at gain 1), gain 1 for voxels (a voxel's validation error is mostly noise: chosen per voxel or once
        for the mask, the gain did not beat 1 there -- 0.095 and 0.075 against 0.105). Without the slow entry: ignored.

    Attributes
    ----------
    coef_ : array, shape (n_features, n_outputs)
        With ``factored``: shape (n_components, n_outputs).
    components_ : array, shape (n_components, n_features)
        ``factored`` only: the right singular vectors of the standardised
        training features (``n_components = min(n_samples, n_features)``).
    intercept_ : array, shape (n_outputs,)
    x_mean_, x_scale_ : array, shape (n_features,)
    alpha_ : float | array, shape (n_outputs,)
        Chosen penalty (one per output with ``alpha_per_target``).
    alphas_ : tuple of float
        The penalties it was chosen from (``alphas``, or :data:`DEFAULT_ALPHAS` when None).
    own_alpha_fraction_ : float
        ``alpha_per_target="guarded"``: share of the outputs whose own penalty passed the guard.
    hrf_ : str
        The basis used (the chosen one with ``hrf="auto"``).
    event_gain_ : float
        The gain of the event columns used (1.0 without events).
    slow_gain_ : float | array, shape (n_outputs,)
        The gain of the slow-potential columns used (1.0 without them); one per output with ``"per_target"``.
    hrf_scores_ : dict
        Validation (or GCV) mean squared error of each basis tried.
    n_fit_windows_ : int
        Windows the coefficients were fitted on (training, plus validation with ``refit``).
    val_residuals_ : array, shape (n_val, n_outputs) | None
        With ``refit`` and validation windows: their residuals (target - prediction) under the fit before the
        refit, i.e. held out; conformal calibration (``evaluation.uncertainty``) uses them instead of the
        in-sample residuals of the refitted coefficients (``val_target_check_``, a fingerprint of those windows'
        targets, tells it that it is given the same windows). Not saved with the model.
    """

    kind = "sklearn"
    input_kinds = ("bandpower", "tangent")

    #: ``alpha_per_target="guarded"``: an output keeps its own penalty where it lowers its validation squared error by
    #: more than this many jackknife SEs (the flagship's other per-output and rank checks use 2 as well).
    GUARD_SE = 2.0

    def __init__(self, spec: DataSpec, *, alphas: tuple[float, ...] | None = None, hrf: str = "auto", alpha_per_target: bool | str = "auto",
                 factored: bool | str = "auto", refit: bool = False, hrf_select: str = "mse", inputs: str = "all",
                 event_gain: float | str = "auto", slow_gain: float | str = "auto") -> None:
        # every parameter stored as given (scikit-learn's get_params/set_params/clone round-trip them; user test 31), and
        # checked here and again at fit (set_params changes them without __init__)
        self.spec = spec
        self.alphas = alphas
        self.hrf = hrf
        self.alpha_per_target = alpha_per_target
        self.factored = factored
        self.refit = refit
        self.hrf_select = hrf_select
        self.inputs = inputs
        self.event_gain = event_gain
        self.slow_gain = slow_gain
        self._check_params()

    def _check_params(self) -> None:
        spec = self.spec
        if self.hrf_select not in HRF_SELECT:
            raise Eeg2fmriInputError(f"ridge_hrf: expected hrf_select one of {list(HRF_SELECT)}, got {self.hrf_select!r}.")
        fac = self.factored
        if not (isinstance(fac, (bool, np.bool_)) or (isinstance(fac, str) and fac == "auto")):
            raise Eeg2fmriInputError(f"ridge_hrf: expected factored as true, false or \"auto\", got {fac!r}.")
        apt = self.alpha_per_target
        if not (isinstance(apt, (bool, np.bool_)) or (isinstance(apt, str) and apt in ("guarded", "auto"))):
            raise Eeg2fmriInputError(f"ridge_hrf: expected alpha_per_target as true, false, \"guarded\" or \"auto\", got {apt!r}.")
        a = DEFAULT_ALPHAS if self.alphas is None else self.alphas
        try:
            arr = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.zeros(0)
        if arr.ndim != 1 or not arr.size or not (np.isfinite(arr) & (arr > 0)).all():
            raise Eeg2fmriInputError(f"ridge_hrf: expected alphas as a non-empty list of positive numbers, or null for the default grid, "
                                     f"got {a!r}; e.g. alphas: [0.1, 1, 10].")
        if spec.input_kind not in self.input_kinds:
            raise Eeg2fmriInputError(
                f"ridge_hrf: expected input_kind 'bandpower' (n_chans, n_bands, n_frames) or 'tangent' (it reads the band-power block), "
                f"got {spec.input_kind!r}; prepare the data with representation='bandpower' or 'tangent' (eeg2fmri prepare "
                "--representation bandpower, or data.prepare.representation in a config). benchmark and evaluate score it on "
                f"{spec.input_kind!r} data through band-power windows derived from the same volumes.")
        if self.inputs not in INPUTS:
            raise Eeg2fmriInputError(f"ridge_hrf: expected inputs one of {list(INPUTS)}, got {self.inputs!r}; choose one of them, e.g. "
                                     "inputs='all' (the default: EEG features and event regressors).")
        g = self.event_gain
        if not ((isinstance(g, str) and g == "auto") or (isinstance(g, (int, float, np.number)) and not isinstance(g, bool) and np.isfinite(g) and g > 0)):
            raise Eeg2fmriInputError(f"ridge_hrf: expected event_gain \"auto\" or a positive number, got {g!r}; pass e.g. event_gain=16 "
                                     "(the event columns penalised 256 x less than the EEG's) or leave it \"auto\".")
        g = getattr(self, "slow_gain", "auto")
        if not ((isinstance(g, str) and g in SLOW_GAIN_RULES) or (isinstance(g, (int, float, np.number)) and not isinstance(g, bool) and np.isfinite(g) and g > 0)):
            raise Eeg2fmriInputError(f"ridge_hrf: expected slow_gain one of {list(SLOW_GAIN_RULES)} or a positive number, got {g!r}; pass e.g. "
                                     "slow_gain=0.25 (the slow-potential columns penalised 16 x more than the bands') or leave it \"auto\".")
        n_ev = len(getattr(spec, "event_names", ()) or ())
        if self.inputs == "events" and not n_ev:
            raise Eeg2fmriInputError("ridge_hrf: inputs='events' (a stimulus GLM) needs windows with event regressors, got windows without; "
                                     "prepare the data with the prepare option events (e.g. --config '{\"events\": \"auto\"}').")
        n_ch, n_feat = int(spec.input_shape[0]), int(spec.input_shape[1]) - n_ev
        if spec.input_kind == "tangent" and n_feat % (1 + n_ch):
            raise Eeg2fmriInputError(f"ridge_hrf: tangent windows: expected axis 1 of size n_bands * (1 + n_chans) = k * {1 + n_ch}, got {n_feat}; "
                                     "prepare the data with representation='tangent'.")
        if self.hrf not in HRF_CHOICES:
            raise Eeg2fmriInputError(f"unknown hrf {self.hrf!r}; choose one of {', '.join(map(repr, HRF_CHOICES))}.")

    @property
    def n_events(self) -> int:
        """Event regressors at the end of axis 1 of the windows (``spec.event_names``)."""
        return len(getattr(self.spec, "event_names", ()) or ())

    @property
    def n_bands(self) -> int:
        """Band-power entries per channel that the model reads (the leading block of ``tangent`` windows)."""
        n_ch, n_feat = int(self.spec.input_shape[0]), int(self.spec.input_shape[1]) - self.n_events
        return n_feat // (1 + n_ch) if self.spec.input_kind == "tangent" else n_feat

    @property
    def _slow_index(self) -> int | None:
        """Index of the ``"slow_potential"`` entry among the bands the model reads (``spec.band_names``), or None."""
        names = tuple(getattr(self.spec, "band_names", ()) or ())
        if not self._reads[0] or len(names) != self.n_bands or "slow_potential" not in names:
            return None
        return names.index("slow_potential")

    def _slow_rule(self) -> str | float:
        """``slow_gain`` in effect: a rule (``"shared"``/``"per_target"``) or a fixed gain (``"auto"`` on voxels: 1)."""
        g = getattr(self, "slow_gain", "auto")
        if not isinstance(g, str):
            return float(g)
        if g == "auto":
            return "per_target" if getattr(self.spec, "output_kind", "voxels") == "regions" else 1.0
        return g

    def _slow_columns(self, n_cols: int) -> np.ndarray:
        """Feature columns of the slow-potential entry among ``n_cols`` columns of :meth:`_features` (empty without it)."""
        j = self._slow_index
        if j is None:
            return np.zeros(0, dtype=np.int64)
        n_ch, n_b = self.spec.n_chans, self.n_bands
        per = n_ch * n_b + (self.n_events if self._reads[1] else 0)  # features before the basis/lag axis
        k = n_cols // per  # basis functions (or lags) per feature
        return ((np.arange(n_ch)[:, None] * n_b + j) * k + np.arange(k)[None, :]).reshape(-1)

    @property
    def _alpha_per_target(self) -> bool | str:
        """``alpha_per_target`` in effect: ``"auto"`` is a penalty per output where the model reads the EEG features and
        event regressors together (a design's focal regions beside EEG-driven ones: one penalty for all traded one for
        the other -- user test 51 and its generator's held-out seeds), else one penalty."""
        apt = self.alpha_per_target
        if isinstance(apt, str) and apt == "auto":
            return all(self._reads)
        return apt

    @property
    def _reads(self) -> tuple[bool, bool]:
        """(reads the EEG block, reads the event block)."""
        ev = self.n_events > 0 and getattr(self, "inputs", "all") in ("all", "events")
        return getattr(self, "inputs", "all") != "events", ev

    def _features(self, x: np.ndarray, hrf: str | None = None) -> np.ndarray:
        x = np.asarray(x)
        n_ch, n_in, n_t = (int(v) for v in self.spec.input_shape)
        n_b, n_ev = self.n_bands, self.n_events
        if self.spec.input_kind == "bandpower" and not n_ev and x.ndim == 4 and x.shape[1:] == (n_ch, n_b * (1 + n_ch), n_t):
            x = x[:, :, :n_b]  # tangent windows of the same EEG: their band-power block is this model's input (user test 16)
        if x.ndim != 4 or x.shape[1:] != tuple(self.spec.input_shape):
            raise Eeg2fmriInputError(f"ridge_hrf: expected windows of shape (n, {', '.join(map(str, self.spec.input_shape))}), got {x.shape}; "
                                     f"pass {self.spec.input_kind} windows of the EEG prepared like the training data"
                                     f"{' (with the same event regressors)' if n_ev else ''}.")
        eeg, ev = self._reads
        parts = []
        if eeg:
            parts.append(np.asarray(x[:, :, :n_b], dtype=np.float64))  # tangent windows: their band-power block
        if ev:
            parts.append(np.asarray(x[:, :1, n_in - n_ev :], dtype=np.float64))  # the event block (the same on every channel)
        hrf = hrf or getattr(self, "hrf_", self.hrf)
        n = n_t
        dt = 1.0 / (self.spec.frame_rate or 1.0 / self.spec.tr)
        out = []
        for p in parts:
            if hrf == "canonical":
                from eeg2fmri.preprocessing.hrf import double_gamma_hrf

                h = double_gamma_hrf(dt, length=n * dt)[:n][::-1]  # newest frame last
                out.append((p * h).sum(-1).reshape(len(p), -1))
            elif hrf == "basis":
                b = informed_basis(dt, n)[:, ::-1]  # (3, n_frames), newest frame last
                out.append(np.einsum("ncbt,kt->ncbk", p, b).reshape(len(p), -1))
            else:
                out.append(p.reshape(len(p), -1))
        return out[0] if len(out) == 1 else np.concatenate(out, axis=1)

    def fit(self, x: np.ndarray, y: np.ndarray, x_val: np.ndarray | None = None, y_val: np.ndarray | None = None,
            output_groups: np.ndarray | None = None) -> RidgeHRF:
        """Fit on training windows; choose the basis and ``alpha_`` on the validation windows if given.

        Parameters
        ----------
        x : array, shape (n_samples, *spec.input_shape)
            Band-power windows ``(n_chans, n_bands, n_frames)`` (or tangent windows, of which the band-power
            block is read).
        y : array, shape (n_samples, n_outputs)
        x_val, y_val : arrays | None
            Validation windows/targets (model selection only); without them,
            GCV on the training windows.
        output_groups : array of int, shape (n_outputs,) | None
            With ``hrf_select="r"``: a group per output (supervoxels: ``fit_model`` passes cubes of 3 x 3 x 3 voxels);
            each basis is scored by the mean validation correlation of the group-mean series over the groups with the
            most validation signal (the 10, or 1 %, with the highest best R^2). ``None``: each output its own group.

        Returns
        -------
        self : RidgeHRF
        """
        self._check_params()
        candidates = _BASES if self.hrf == "auto" else (self.hrf,)
        validation = x_val is not None and y_val is not None
        by_r = self.hrf_select == "r" and len(candidates) > 1 and validation
        margin = self.hrf_select == "mse" and len(candidates) > 1 and validation
        # memory (user test 40: whole-brain lags coefficients are ~0.9 GB): except for hrf_select="r", which compares
        # every basis at the end, only the best basis so far keeps its coefficients; the margin's per-window validation
        # errors are taken from each basis as soon as it is fitted
        fits: dict[str, dict] = {}
        sse: dict[str, np.ndarray] = {}
        yv_m = np.asarray(y_val).reshape(len(x_val), -1) if margin else None  # (as given: a block at a time in float64)
        yv_cols = yv_m.shape[1] if margin else 0
        best: str | None = None
        eeg_read, ev_read = self._reads
        gains = (EVENT_GAINS if self.event_gain == "auto" else (float(self.event_gain),)) if eeg_read and ev_read else (1.0,)
        # several gains of the event columns: the basis is chosen at the middle one, the other gains tried on that basis only
        # (3 + 3 fits instead of 3 x 4)
        g0 = gains[len(gains) // 2]
        rule = self._slow_rule() if self._slow_index is not None else 1.0
        sgains = SLOW_GAINS if isinstance(rule, str) else (float(rule),)
        s0 = 1.0 if 1.0 in sgains else sgains[0]  # (the basis and the events' gain are chosen at this gain of the slow columns)
        for h in candidates:
            t_basis = time.perf_counter()
            f = self._fit_basis(h, x, y, x_val, y_val, gain=g0, slow=s0)
            f["event_gain_"] = g0
            # (user test 40: a whole-brain fit ran 96 s with no word; -v says where it is)
            logger.info("ridge_hrf: basis %r fitted in %.1f s (%d window(s) x %d output(s)); its score %s", h, time.perf_counter() - t_basis,
                        len(x), int(np.prod(np.shape(y)[1:])), f.get("score"))
            if margin:
                sse[h] = self._window_sse(f, h, x_val, yv_m)
            fits[h] = f
            if best is None or f["score"] < fits[best]["score"]:  # (strict: ties keep the earlier basis, as min() did)
                if best is not None and not by_r:
                    self._drop_coefficients(fits[best])
                best = h
            elif not by_r:
                self._drop_coefficients(f)
            del f
        del yv_m
        self.hrf_scores_ = {h: f["score"] for h, f in fits.items()}
        self.hrf_ = best
        self.hrf_r_ = None
        if by_r:
            self.hrf_r_ = self._group_r(fits, x_val, y_val, output_groups)
            self.hrf_ = max(self.hrf_r_, key=self.hrf_r_.get)
        self.hrf_margin_ = None  # (the MSE rule's margin; hrf_select="r" reports its correlations, hrf_r_)
        if margin:
            self.hrf_margin_ = self._basis_margin(fits, sse, n_out=yv_cols)
        del sse
        chosen = fits[self.hrf_]
        del fits  # (the other bases' coefficients: not held through a refit)
        for g in gains:  # the event columns' gain, on the chosen basis
            if g == g0:
                continue
            fg = self._fit_basis(self.hrf_, x, y, x_val, y_val, gain=g, slow=s0)
            fg["event_gain_"] = g
            if fg["score"] < chosen["score"]:
                chosen = fg
            del fg
        if len(gains) > 1:
            logger.info("ridge_hrf: event regressors weighted %g x the EEG features (penalty / %g)", chosen["event_gain_"], chosen["event_gain_"] ** 2)
        chosen["slow_gain_"] = s0
        if len(sgains) > 1:
            chosen = self._choose_slow_gain(chosen, sgains, s0, rule, x, y, x_val, y_val)
        for k in ("components_", "own_alpha_fraction_", "val_scores_"):  # (an estimator fitted before: nothing left over)
            self.__dict__.pop(k, None)
        for k, v in chosen.items():
            if k != "score":
                setattr(self, k, v)
        del chosen
        self.n_fit_windows_ = len(x)
        self.val_residuals_ = self.val_target_check_ = None
        if self.refit and x_val is not None and y_val is not None:  # the same basis and penalties, on every window given
            n_out = int(np.prod(self.spec.output_shape))
            # the validation residuals of the fit that has not seen them: what conformal intervals are calibrated on
            # (after the refit they are in-sample: 80 % intervals covered 0.62 of a held-out subject's ROI series)
            yv = np.asarray(y_val, dtype=np.float32).reshape(len(x_val), n_out)
            self.val_residuals_ = (yv - self.predict(x_val).reshape(len(x_val), n_out)).astype(np.float32)
            self.val_target_check_ = target_fingerprint(yv)
            self.refit_chosen(np.concatenate([np.asarray(x), np.asarray(x_val)]),
                              np.concatenate([np.asarray(y).reshape(len(x), n_out), np.asarray(y_val).reshape(len(x_val), n_out)]))
        return self

    def _group_r(self, fits: dict, x_val, y_val, groups: np.ndarray | None) -> dict[str, float]:
        """Mean validation correlation of each basis over the output groups with the most validation signal.

        Group-mean series (supervoxels) average the noise of single voxels away while a spatially smooth signal stays;
        the groups kept are those where the best basis explains the most validation variance (R^2 of the group mean):
        where the signal is, not the noise that dominates a whole-mask error (design probe of session 27,
        ``benchmarks/results/design_hrf_select.txt``: there an error-based score chose the canonical HRF, the
        correlation the lags that the held-out subject's ROI r preferred).
        """
        yv = np.asarray(y_val, dtype=np.float64).reshape(len(x_val), -1)
        n_out = yv.shape[1]
        g = np.arange(n_out) if groups is None else np.asarray(groups).reshape(-1)
        if len(g) != n_out:
            raise Eeg2fmriInputError(f"ridge_hrf: output_groups has {len(g)} entries for {n_out} outputs; pass one group per output.")
        _, g = np.unique(g, return_inverse=True)
        n_g = int(g.max()) + 1
        cnt = np.bincount(g, minlength=n_g).astype(np.float64)

        def gmean_cols(a: np.ndarray) -> np.ndarray:  # (k, n_out) -> (k, n_groups): the mean over each group's outputs
            out = np.zeros((a.shape[0], n_g))
            # float64 sums, a block of outputs converted at a time (no float64 copy of whole-brain coefficients); the
            # same additions in the same order as one np.add.at over every output
            for b in range(0, n_out, _SSE_BLOCK_OUTPUTS):
                c = slice(b, b + _SSE_BLOCK_OUTPUTS)
                np.add.at(out.T, g[c], np.asarray(a[:, c], dtype=np.float64).T)
            return out / cnt

        yg = gmean_cols(yv)
        yg -= yg.mean(0)
        preds = {}
        for h, f in fits.items():
            fz = (self._features(x_val, h) - f["x_mean_"]) / f["x_scale_"]
            if f.get("components_") is not None:
                fz = fz @ np.asarray(f["components_"], dtype=np.float64).T
            pg = fz @ gmean_cols(f["coef_"])  # (the intercept is a constant per group)
            preds[h] = pg - pg.mean(0)
        sst = (yg ** 2).sum(0)
        ok = sst > 0
        r2 = np.max(np.stack([1 - ((yg - p) ** 2).sum(0) / np.where(ok, sst, 1.0) for p in preds.values()]), 0)
        r2[~ok] = -np.inf
        keep = np.argsort(-r2)[: max(10, int(np.ceil(0.01 * n_g)))]
        keep = keep[np.isfinite(r2[keep])]
        out = {}
        for h, p in preds.items():
            den = np.sqrt(sst[keep] * (p[:, keep] ** 2).sum(0))
            r = np.where(den > 0, (yg[:, keep] * p[:, keep]).sum(0) / np.where(den > 0, den, 1.0), 0.0)
            out[h] = float(r.mean()) if len(keep) else float("nan")
        return out

    @staticmethod
    def _drop_coefficients(fit: dict) -> None:
        """Free a fitted basis's output-sized arrays (``coef_``, ``components_``, ``intercept_``) once it can no longer be
        chosen; its score and penalties stay."""
        for k in ("coef_", "components_", "intercept_"):
            fit.pop(k, None)

    def _window_sse(self, fit: dict, hrf: str, x_val: np.ndarray, yv: np.ndarray) -> np.ndarray:
        """Squared validation error of each window summed over outputs under one basis's fit.

        float32 predictions (those of :meth:`predict`) of ``_SSE_BLOCK_OUTPUTS`` outputs at a time, their errors
        in float64: no float64 copy of the coefficients or of the targets (user test 40: the float64 copy of the
        runner-up's whole-brain coefficients was 1.8 GB and 12 s).

        Parameters
        ----------
        fit : dict
            :meth:`_fit_basis`'s output for basis ``hrf``.
        x_val : array, shape (n_val, *spec.input_shape)
        yv : array, shape (n_val, n_outputs)

        Returns
        -------
        sse : array, shape (n_val,), float64
        """
        fz = ((self._features(x_val, hrf) - fit["x_mean_"]) / fit["x_scale_"]).astype(np.float32)
        if fit.get("components_") is not None:
            fz = fz @ np.asarray(fit["components_"], dtype=np.float32).T
        coef = np.asarray(fit["coef_"], dtype=np.float32)
        icpt = np.asarray(fit["intercept_"], dtype=np.float32)
        sse = np.zeros(len(yv))
        for b in range(0, yv.shape[1], _SSE_BLOCK_OUTPUTS):
            c = slice(b, b + _SSE_BLOCK_OUTPUTS)
            p = fz @ coef[:, c]
            p += icpt[c]  # (float32: the arithmetic of predict())
            e = np.asarray(yv[:, c], dtype=np.float64) - p  # float64 differences: errors of two bases are compared
            sse += np.einsum("ij,ij->i", e, e)
        return sse

    def _basis_margin(self, fits: dict, sse: dict, n_out: int, n_blocks: int = 10) -> dict:
        """How far the chosen basis's validation error is below the runner-up's, in jackknife SEs over blocks of windows.

        User test 18: the canonical HRF won by 0.0002 of the whole-mask validation MSE (noise, where the signal is focal)
        while FIR lags gave a late-HRF region ROI r 0.68 instead of 0.46; a margin within 2 SEs is reported as a coin flip.

        Parameters
        ----------
        fits : dict
            Basis -> :meth:`_fit_basis`'s output (its ``score``).
        sse : dict
            Basis -> :meth:`_window_sse` on the validation windows, array of shape (n_val,).
        n_out : int
            Outputs the errors are summed over.
        """
        order = sorted(fits, key=lambda h: fits[h]["score"])
        best, second = order[0], order[1]
        d = (sse[second] - sse[best]) / n_out  # > 0: the best basis's per-window error is lower
        k = int(min(n_blocks, len(d)))
        blocks = np.array_split(d, k)
        loo = np.array([np.concatenate([b for j, b in enumerate(blocks) if j != i]).mean() for i in range(k)]) if k > 1 else np.array([d.mean()])
        se = float(np.sqrt((k - 1) / k * ((loo - loo.mean()) ** 2).sum())) if k > 1 else float("nan")
        gain = float(d.mean())
        return {"best": best, "runner_up": second, "gain": gain, "se": se,
                "within_noise": bool(not np.isfinite(se) or gain < 2.0 * se)}

    def refit_chosen(self, x: np.ndarray, y: np.ndarray) -> RidgeHRF:
        """Fit the coefficients again on windows ``x``, ``y`` with the basis and penalties :meth:`fit` chose.

        What ``refit=True`` does with the training and validation windows; callers that must score the first fit on
        the validation windows before refitting (the flagship's linear path) call it themselves.

        Parameters
        ----------
        x : array, shape (n_samples, *spec.input_shape)
        y : array, shape (n_samples, n_outputs)

        Returns
        -------
        self : RidgeHRF
        """
        if not hasattr(self, "alpha_index_"):
            raise Eeg2fmriInputError("ridge_hrf: call fit() before refit_chosen() (the basis and penalties are chosen there).")
        # the first fit's output-sized arrays are replaced: freed before the new ones are computed (memory: both
        # at once were twice the whole-brain coefficients)
        for k in ("coef_", "components_"):
            self.__dict__.pop(k, None)
        sg = np.asarray(getattr(self, "slow_gain_", 1.0), dtype=np.float64)
        if sg.ndim:  # one slow gain per output: each gain's outputs fitted with it, the coefficients on one scale
            again = self._combine_slow(x, y, None, None, sg, getattr(self, "event_gain_", 1.0), fixed=np.asarray(self.alpha_index_))
        else:
            again = self._fit_basis(self.hrf_, x, y, None, None, fixed=self.alpha_index_, gain=getattr(self, "event_gain_", 1.0), slow=float(sg))
        for k in ("x_mean_", "x_scale_", "coef_", "intercept_", "components_"):
            if k in again:
                setattr(self, k, again[k])
        self.n_fit_windows_ = len(x)
        return self

    def _fit_basis(self, hrf: str, x, y, x_val, y_val, fixed: np.ndarray | None = None, gain: float = 1.0, slow: float = 1.0) -> dict:
        """Ridge on one basis's features: fitted attributes and the selection score.

        The outputs are taken in blocks (``_Y_BLOCK_ELEMS`` float64 values of targets at a time): the float64 copies
        of the targets, their projections on the features' singular vectors and the validation errors never exist
        for every output at once, so memory grows with the outputs only by the coefficients themselves.
        """
        f = self._features(x, hrf)
        y = np.asarray(y).reshape(len(f), -1)
        if len(f) != len(y):
            raise Eeg2fmriInputError(f"ridge_hrf: {len(f)} windows but {len(y)} targets; pass one target per window.")
        # standardised in place on one centred copy (the features can be large: tangent windows)
        x_mean = f.mean(0)
        fz = f - x_mean
        del f
        sd = np.sqrt(np.einsum("ij,ij->j", fz, fz) / len(fz))
        x_scale = np.where(sd > 0, sd, 1.0)
        eeg_read, ev_read = self._reads
        if gain != 1.0 and eeg_read and ev_read:  # the event columns (the last ones) weigh `gain` times more: a smaller penalty
            x_scale[x_scale.size - self.n_events * (x_scale.size // (self.n_events + self.spec.n_chans * self.n_bands)) :] /= gain
        if slow != 1.0:  # the slow-potential columns weigh `slow` times the bands': a penalty 1 / slow**2 times theirs
            x_scale[self._slow_columns(x_scale.size)] /= slow
        fz /= x_scale
        n, p = fz.shape
        n_out = y.shape[1]
        # "auto": the Gram path where the features outnumber the windows enough for it (_thin_svd), the factored form
        # where it is the smaller one (rank <= min(n, p) components)
        auto = isinstance(self.factored, str)  # ("auto": _check_params allows no other string)
        u, s, vt = _thin_svd(fz, gram=auto or bool(self.factored))
        factored = len(s) * (p + n_out) < p * n_out if auto else bool(self.factored)
        alphas = np.asarray(DEFAULT_ALPHAS if self.alphas is None else self.alphas, dtype=np.float64)
        self.alphas_ = tuple(float(a) for a in alphas)  # the grid the penalty was chosen from
        validation = x_val is not None and y_val is not None
        if validation:
            fv = (self._features(x_val, hrf) - x_mean) / x_scale
            yv = np.asarray(y_val).reshape(len(fv), -1)
            proj = fv @ vt.T
            gram = proj.T @ proj
        blocks = [slice(b0, min(b0 + max(1, _Y_BLOCK_ELEMS // max(n, 1)), n_out)) for b0 in range(0, n_out, max(1, _Y_BLOCK_ELEMS // max(n, 1)))]
        y_mean = np.empty(n_out)
        # uty (k, n_outputs) per block: kept while they fit in one block's worth of memory per block, else recomputed
        keep_uty = len(s) * n_out <= 4 * _Y_BLOCK_ELEMS
        uty_kept: dict[int, np.ndarray] = {}

        def uty_block(j: int, c: slice) -> np.ndarray:
            if j in uty_kept:
                return uty_kept[j]
            yc = np.array(y[:, c], dtype=np.float64)  # a copy (centred in place below; never the caller's array)
            y_mean[c] = yc.mean(0)
            yc -= y_mean[c]
            out = u.T @ yc
            if keep_uty:
                uty_kept[j] = out
            return out

        apt = self._alpha_per_target
        guarded = apt == "guarded"
        shared = not apt or (guarded and not validation)
        err = np.zeros((len(alphas), 1)) if shared and validation else np.zeros((len(alphas), n_out))
        b_acc, c_acc, yy = np.zeros(len(s)), np.zeros((len(s), len(s))), 0.0
        for j, c in enumerate(blocks if fixed is None else ()):  # (fixed: the penalty of each output is given)
            uty = uty_block(j, c)
            if validation:
                yv_c = np.asarray(yv[:, c], dtype=np.float64) - y_mean[c]
                if shared:  # one penalty for all outputs: only sums over outputs are needed (_shared_alpha_val_error)
                    b_acc += ((proj.T @ yv_c) * uty).sum(1)
                    c_acc += uty @ uty.T
                    yy += float((yv_c * yv_c).sum())
                else:  # validation mean squared error per penalty and output
                    for a_i, a in enumerate(alphas):
                        err[a_i, c] = ((yv_c - proj @ ((s / (s**2 + a * p))[:, None] * uty)) ** 2).mean(0)
            else:  # GCV on the training windows
                yc = np.asarray(y[:, c], dtype=np.float64) - y_mean[c]
                for a_i, a in enumerate(alphas):
                    d = s**2 / (s**2 + a * p)
                    # GCV (Golub, Heath & Wahba 1979): the hat matrix includes the intercept (the centring), tr = sum(d) + 1
                    err[a_i, c] = ((yc - u @ (d[:, None] * uty)) ** 2).mean(0) / (1 - (d.sum() + 1) / n) ** 2
        if shared and validation:
            err[:, 0] = _shared_error_from_sums(b_acc, gram, c_acc, yy, len(yv) * n_out, s, alphas * p)
        if fixed is not None:
            best = np.asarray(fixed, dtype=np.int64)
            alpha = alphas[best] if apt else float(alphas[best[0]])
        elif guarded and validation:
            best = self._guard_own_penalties(err, blocks, uty_block, proj, yv, y_mean, s, alphas * p)
            alpha = alphas[best]
        elif apt and not shared:
            best = np.argmin(err, axis=0)
            alpha = alphas[best]
        else:
            best = np.full(n_out, int(np.argmin(err.mean(1))))
            alpha = alphas[best] if guarded else float(alphas[best[0]])
        coef = np.empty((len(s) if factored else p, n_out), dtype=np.float32)
        # each output's coefficients from its block's projections, grouped by penalty (products of at most
        # _COEF_BLOCK_ELEMS float64 values: the float64 product for every output at once was twice the coefficients)
        step = max(1, _COEF_BLOCK_ELEMS // max(coef.shape[0], 1))
        for j, c in enumerate(blocks):
            uty = uty_block(j, c)
            cols = np.arange(c.start, c.stop)
            for i in np.unique(best[c]):
                sel = np.flatnonzero(best[c] == i)
                d = s / (s**2 + alphas[i] * p)
                for b0 in range(0, len(sel), step):
                    k = sel[b0 : b0 + step]
                    coef[:, cols[k]] = d[:, None] * uty[:, k] if factored else vt.T @ (d[:, None] * uty[:, k])
            uty_kept.pop(j, None)
        score = float(err[best, np.arange(err.shape[1])].mean()) if not shared else float(err[best[0]].mean())
        out = {"x_mean_": x_mean, "x_scale_": x_scale, "coef_": coef, "intercept_": y_mean.astype(np.float32), "alpha_": alpha,
               "alpha_index_": best, "val_scores_": [float(v) for v in err.mean(1)], "score": score}
        if guarded and fixed is None:
            out["own_alpha_fraction_"] = float(np.mean(best != int(np.argmin(err.mean(1))))) if not shared else 0.0
        if factored:
            out["components_"] = vt.astype(np.float32)
        return out

    def _choose_slow_gain(self, chosen: dict, sgains: tuple, s0: float, rule: str, x, y, x_val, y_val) -> dict:
        """The slow-potential columns' gain on the chosen basis and events' gain (``slow_gain``): the fit of the lowest
        score over :data:`SLOW_GAINS` (``"shared"``), or each output the gain of its lowest validation squared error
        (``"per_target"``, validation windows needed), the coefficients then on one scale (:meth:`_combine_slow`)."""
        validation = x_val is not None and y_val is not None
        g_ev = chosen.get("event_gain_", 1.0)
        if rule == "per_target" and validation:
            yv = np.asarray(y_val).reshape(len(x_val), -1)
            errs, picks, own = [], [], []
            for g in sgains:
                f = chosen if g == s0 else self._fit_basis(self.hrf_, x, y, x_val, y_val, gain=g_ev, slow=g)
                errs.append(self._output_mse(f, self.hrf_, x_val, yv))
                picks.append(np.broadcast_to(np.asarray(f["alpha_index_"]), (yv.shape[1],)).copy())  # each output's penalty at gain g
                own.append(f.get("own_alpha_fraction_"))
                del f
            which = np.argmin(np.stack(errs), axis=0)
            per = np.asarray(sgains, dtype=np.float64)[which]
            if np.unique(per).size > 1:
                # each output keeps the penalty it had in the fit its gain was chosen on (a penalty chosen again over the
                # outputs that share a gain would be another model than the one scored; a review of session 40)
                fixed = np.stack(picks)[which, np.arange(len(which))]
                out = self._combine_slow(x, y, None, None, per, g_ev, fixed=fixed)
                out["event_gain_"] = g_ev
                out["score"] = float(np.min(np.stack(errs), axis=0).mean())
                if chosen.get("val_scores_") is not None:
                    out["val_scores_"] = chosen["val_scores_"]
                if self._alpha_per_target == "guarded" and own[0] is not None:  # outputs whose penalty is not their gain-fit's common one
                    commons = [int(np.bincount(pk).argmax()) for pk in picks]
                    out["own_alpha_fraction_"] = float(np.mean(fixed != np.asarray(commons)[which]))
                logger.info("ridge_hrf: slow-potential columns' gain per output: %s",
                            ", ".join(f"{g:g} x {int((per == g).sum())}" for g in np.unique(per)))
                return out
            s0 = float(per[0])  # every output chose the same gain: one fit
            best = chosen if s0 == chosen["slow_gain_"] else self._fit_basis(self.hrf_, x, y, x_val, y_val, gain=g_ev, slow=s0)
            best["event_gain_"], best["slow_gain_"] = g_ev, s0
            return best
        for g in sgains:
            if g == s0:
                continue
            fg = self._fit_basis(self.hrf_, x, y, x_val, y_val, gain=g_ev, slow=g)
            fg["event_gain_"], fg["slow_gain_"] = g_ev, g
            if fg["score"] < chosen["score"]:
                chosen = fg
            del fg
        logger.info("ridge_hrf: slow-potential columns weighted %g x the bands (penalty x %g)", chosen["slow_gain_"], 1.0 / chosen["slow_gain_"] ** 2)
        return chosen

    def _output_mse(self, fit: dict, hrf: str, x_val: np.ndarray, yv: np.ndarray) -> np.ndarray:
        """Validation mean squared error of each output under one fit (:meth:`_fit_basis`'s output), shape (n_outputs,)."""
        fz = ((self._features(x_val, hrf) - fit["x_mean_"]) / fit["x_scale_"]).astype(np.float32)
        if fit.get("components_") is not None:
            fz = fz @ np.asarray(fit["components_"], dtype=np.float32).T
        out = np.empty(yv.shape[1])
        for b in range(0, yv.shape[1], _SSE_BLOCK_OUTPUTS):
            c = slice(b, b + _SSE_BLOCK_OUTPUTS)
            e = np.asarray(yv[:, c], dtype=np.float64) - (fz @ np.asarray(fit["coef_"][:, c], dtype=np.float32) + fit["intercept_"][c])
            out[c] = (e * e).mean(0)
        return out

    def _combine_slow(self, x, y, x_val, y_val, per: np.ndarray, g_ev: float, fixed: np.ndarray | None = None) -> dict:
        """Each output fitted with its own slow-potential gain ``per`` (shape (n_outputs,)), the coefficients of every
        gain brought onto the standardisation of gain 1 (``coef * x_scale_1 / x_scale_g`` per feature: the same
        predictions) in one ``(n_features, n_outputs)`` matrix."""
        y = np.asarray(y).reshape(len(x), -1)
        yv = None if y_val is None else np.asarray(y_val).reshape(len(x_val), -1)
        out: dict[str, Any] = {}
        coef = intercept = alpha_index = None
        said = False  # (the warning about the dense form: once)
        for g in np.unique(per):
            cols = np.flatnonzero(per == g)
            f = self._fit_basis(self.hrf_, x, y[:, cols], x_val, None if yv is None else yv[:, cols],
                                fixed=None if fixed is None else fixed[cols], gain=g_ev, slow=float(g))
            if coef is None:
                base = np.asarray(f["x_scale_"], dtype=np.float64).copy()
                base[self._slow_columns(base.size)] *= float(g)  # the standardisation at gain 1
                coef = np.zeros((base.size, y.shape[1]), dtype=np.float32)
                intercept = np.zeros(y.shape[1], dtype=np.float32)
                alpha_index = np.zeros(y.shape[1], dtype=np.int64)
                out["x_mean_"], out["x_scale_"] = f["x_mean_"], base
            ratio = base / np.asarray(f["x_scale_"], dtype=np.float64)
            comp = f.get("components_")
            if comp is not None and not said:
                said = True
                logger.warning("ridge_hrf: slow_gain='per_target' keeps one (n_features, n_outputs) = (%d, %d) coefficient matrix "
                               "(%.0f MB) instead of the factored form (each gain has components of its own); on voxels the "
                               "default (gain 1) keeps the factored form", base.size, y.shape[1], base.size * y.shape[1] * 4 / 2**20)
            comp64 = None if comp is None else np.asarray(comp, dtype=np.float64).T * ratio[:, None]  # (n_features, k), once
            step = max(1, _COEF_BLOCK_ELEMS // max(base.size, 1))
            for b0 in range(0, len(cols), step):  # float64 a block of outputs at a time (user test 40)
                w = np.asarray(f["coef_"][:, b0 : b0 + step], dtype=np.float64)
                coef[:, cols[b0 : b0 + step]] = comp64 @ w if comp64 is not None else w * ratio[:, None]
            intercept[cols] = f["intercept_"]
            alpha_index[cols] = np.broadcast_to(np.asarray(f["alpha_index_"]), cols.shape)
            del f, comp64
        alphas = np.asarray(self.alphas_, dtype=np.float64)
        out.update(coef_=coef, intercept_=intercept, components_=None, alpha_index_=alpha_index, alpha_=alphas[alpha_index],
                   slow_gain_=np.asarray(per, dtype=np.float64))
        return out

    def _guard_own_penalties(self, err: np.ndarray, blocks: list, uty_block: Any, proj: np.ndarray, yv: np.ndarray, y_mean: np.ndarray,
                             s: np.ndarray, penalties: np.ndarray) -> np.ndarray:
        """``alpha_per_target="guarded"``: each output's penalty index -- its own best where that lowers its validation
        squared error by more than ``GUARD_SE`` jackknife SEs (contiguous blocks of validation windows) against the
        penalty chosen for all outputs, else that one."""
        common = int(np.argmin(err.mean(1)))
        own = np.argmin(err, axis=0)
        best = np.full(err.shape[1], common)
        n_val = len(proj)
        n_blocks = min(10, n_val)
        if n_blocks < 2:
            return best
        edges = np.linspace(0, n_val, n_blocks + 1).astype(int)
        for j, c in enumerate(blocks):
            cols = np.arange(c.start, c.stop)
            cand = cols[own[c] != common]
            if not len(cand):
                continue
            uty = uty_block(j, c)
            yv_c = np.asarray(yv[:, c], dtype=np.float64) - y_mean[c]
            e_common = (yv_c - proj @ ((s / (s**2 + penalties[common]))[:, None] * uty)) ** 2
            for i in np.unique(own[cand]):
                k = cand[own[cand] == i] - c.start
                e_own = (yv_c[:, k] - proj @ ((s / (s**2 + penalties[i]))[:, None] * uty[:, k])) ** 2
                d = e_common[:, k] - e_own  # (n_val, len(k)): positive where the own penalty predicts better
                sums = np.add.reduceat(d, edges[:-1], axis=0)  # per block
                sizes = np.diff(edges)[:, None]
                loo = (d.sum(0) - sums) / (n_val - sizes)  # leave-one-block-out mean gain
                se = np.sqrt((n_blocks - 1) / n_blocks * ((loo - loo.mean(0)) ** 2).sum(0))
                gain = d.mean(0)
                best[c.start + k[gain > self.GUARD_SE * se]] = i
        return best

    def input_weights(self, outputs: np.ndarray | None = None) -> np.ndarray:
        """The gradient of the mean of ``outputs`` with respect to the input window (the model is linear in it).

        What ``explain`` attributes with (``weight * (input - baseline)``, exact for a linear model): the coefficients
        mapped back through the standardisation and the HRF basis onto every channel, band and frame of the window.

        Parameters
        ----------
        outputs : array of int | None
            Output indices whose mean is differentiated (default: every output).

        Returns
        -------
        weights : array, shape spec.input_shape
            Zero on the tangent entries of tangent windows (the model reads their band-power block only).
        """
        if not hasattr(self, "coef_"):
            raise Eeg2fmriInputError("ridge_hrf: call fit() before input_weights().")
        idx = np.arange(self.coef_.shape[1]) if outputs is None else np.asarray(outputs).reshape(-1)
        w = np.asarray(self.coef_, dtype=np.float64)[:, idx].mean(1)
        if getattr(self, "components_", None) is not None:
            w = np.asarray(self.components_, dtype=np.float64).T @ w
        w = w / np.asarray(self.x_scale_, dtype=np.float64)  # per feature of the unstandardised features
        n_ch, n_in, n_t = (int(v) for v in self.spec.input_shape)
        n_b, n_ev = self.n_bands, self.n_events
        dt = 1.0 / (self.spec.frame_rate or 1.0 / self.spec.tr)
        hrf = getattr(self, "hrf_", self.hrf)

        def unfold(wb: np.ndarray, c: int, f: int) -> np.ndarray:  # coefficients of a (c, f) block -> (c, f, n_t) window weights
            if hrf == "canonical":
                from eeg2fmri.preprocessing.hrf import double_gamma_hrf

                h = double_gamma_hrf(dt, length=n_t * dt)[:n_t][::-1]
                return wb.reshape(c, f, 1) * h[None, None, :]
            if hrf == "basis":
                b = informed_basis(dt, n_t)[:, ::-1]
                return np.einsum("cbk,kt->cbt", wb.reshape(c, f, -1), b)
            return wb.reshape(c, f, n_t)

        eeg, ev = self._reads
        out = np.zeros((n_ch, n_in, n_t))
        k = len(w) // ((n_ch * n_b if eeg else 0) + (n_ev if ev else 0))  # basis functions per feature
        if eeg:
            out[:, :n_b] = unfold(w[: n_ch * n_b * k], n_ch, n_b)
        if ev:  # read from channel 0 (the same values on every channel)
            out[:1, n_in - n_ev :] = unfold(w[len(w) - n_ev * k :], 1, n_ev)
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predict targets, array of shape (n_samples, *output_shape)."""
        if not hasattr(self, "coef_"):
            raise Eeg2fmriInputError("ridge_hrf: call fit() before predict().")
        fz = ((self._features(x) - self.x_mean_) / self.x_scale_).astype(np.float32)
        if getattr(self, "components_", None) is not None:
            fz = fz @ self.components_.T
        out = fz @ self.coef_ + self.intercept_
        return out.reshape((len(out),) + tuple(self.spec.output_shape))

    def state_dict(self) -> dict[str, np.ndarray]:
        extra = {"components": self.components_} if getattr(self, "components_", None) is not None else {}
        return {**extra, "coef": self.coef_, "intercept": self.intercept_, "x_mean": self.x_mean_.astype(np.float64), "x_scale": self.x_scale_.astype(np.float64), "alpha": np.atleast_1d(np.asarray(self.alpha_, dtype=np.float64)),
                "hrf": np.array([_BASES.index(getattr(self, "hrf_", self.hrf))]), "event_gain": np.array([float(getattr(self, "event_gain_", 1.0))]),
                "slow_gain": np.atleast_1d(np.asarray(getattr(self, "slow_gain_", 1.0), dtype=np.float64))}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> RidgeHRF:
        self.coef_ = np.asarray(state["coef"], dtype=np.float32)
        self.components_ = np.asarray(state["components"], dtype=np.float32) if "components" in state else None
        self.intercept_ = np.asarray(state["intercept"], dtype=np.float32)
        self.x_mean_ = np.asarray(state["x_mean"])
        self.x_scale_ = np.asarray(state["x_scale"])
        if "hrf" in state:
            self.hrf_ = _BASES[int(np.asarray(state["hrf"])[0])]
        elif self.hrf != "auto":
            self.hrf_ = self.hrf
        else:  # saved before "auto" existed: the old default was the canonical HRF
            self.hrf_ = "canonical"
        self.event_gain_ = float(np.asarray(state["event_gain"])[0]) if "event_gain" in state else 1.0
        sg = np.asarray(state["slow_gain"], dtype=np.float64) if "slow_gain" in state else np.ones(1)
        self.slow_gain_ = float(sg[0]) if sg.size == 1 else sg
        alpha = np.asarray(state["alpha"], dtype=np.float64)
        self.alpha_ = float(alpha[0]) if alpha.size == 1 and not self._alpha_per_target else alpha
        return self
