"""Attributions of a trained torch model: which channels, bands (or frequencies) and lags drive a target.

:func:`explain` runs Captum's Integrated Gradients (and Layer-wise Relevance
Propagation where every layer of the model has an LRP rule) on held-out (test)
windows, for a scalar target: one voxel, the mean of an ROI (atlas label) or
the mean of the whole mask. Attributions ``(n_windows, *input_shape)`` are
aggregated per channel, per band (or STFT frequency) and per time lag; the
flagship's spatial filters are turned into activation patterns (Haufe et al.
2014, ``A = Cov(X) W^T Cov(S)^-1`` with ``S = X W^T``, on the training
windows) and its learned HRFs are returned as curves; BEIRA's patterns come
from its own :meth:`~eeg2fmri.models.beira.Beira.spatial_patterns`.

Captum is an optional dependency (``pip install eeg2fmri[explain]``).
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np

from eeg2fmri.datasets.prepared import PreparedDataset
from eeg2fmri.datasets.spec import DataSpec
from eeg2fmri.datasets.targets import Split
from eeg2fmri.datasets.windows import window_matrix
from eeg2fmri.utils.logs import logger, progress
from eeg2fmri.utils.validation import Eeg2fmriInputError, check_choice, check_positive_int

__all__ = ["EXPLAIN_METHODS", "explain", "haufe_patterns", "resolve_target", "aggregate_attributions", "explanation_rows", "dataset_montage"]

EXPLAIN_METHODS = ("integrated_gradients", "lrp")


# ---------------------------------------------------------------------------------------------------------- targets
def resolve_target(target: Any, n_outputs: int, atlas: np.ndarray | None = None, names: list[str] | None = None) -> tuple[np.ndarray, str]:
    """Output indices whose mean is the explained scalar.

    Parameters
    ----------
    target : "mask" | int | str
        ``"mask"`` (every output), an int or ``"voxel:I"`` (output ``I``, an
        in-mask voxel index in C order) or ``"roi:L"`` (outputs whose atlas
        label is ``L``; needs ``atlas``).
    n_outputs : int
        Outputs of the model (masked voxels or ROIs).
    atlas : array of int, shape (n_outputs,) | None
        Label of every output.
    names : list of str | None
        Name of every output (a model of ROI targets: ``"roi:NAME"`` picks one).

    Returns
    -------
    idx : array of int, shape (n_selected,)
    description : str
    """
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = f"voxel:{int(target)}"
    if not isinstance(target, str):
        raise Eeg2fmriInputError(f"explain: expected target 'mask', 'voxel:I' or 'roi:L', got {target!r}; e.g. target='roi:3'.")
    kind, _, val = target.partition(":")
    if kind == "mask" and not val:
        return np.arange(n_outputs), "whole mask (mean of every output)"
    try:
        num = int(val)
    except ValueError:
        num = None
    if kind == "voxel" and num is not None:
        if not 0 <= num < n_outputs:
            raise Eeg2fmriInputError(f"explain: expected a voxel index in [0, {n_outputs}) (in-mask voxels, C order), got {num}; pick one below {n_outputs}.")
        return np.array([num]), f"voxel {num}"
    if kind == "roi" and num is None and names is not None and val in names:
        i = list(names).index(val)
        lab = None if atlas is None else np.asarray(atlas).reshape(-1)
        label = f"{int(lab[i])} " if lab is not None and len(lab) == n_outputs else ""
        return np.array([i]), f"ROI {label}{val!r} (output {i})"
    if kind == "roi" and num is not None:
        if atlas is None:
            raise Eeg2fmriInputError(f"explain: target {target!r} needs an atlas (labels of the outputs); pass atlas= (--atlas LABELS.nii.gz).")
        lab = np.asarray(atlas).reshape(-1)
        if len(lab) != n_outputs:
            raise Eeg2fmriInputError(f"explain: expected an atlas with one label per output ({n_outputs}), got {len(lab)}; pass labels on the model's grid.")
        idx = np.flatnonzero(lab == num)
        if not len(idx):
            present = sorted(int(v) for v in np.unique(lab) if v != 0)
            raise Eeg2fmriInputError(f"explain: ROI label {num} has no voxel in the mask (or is not in the atlas); labels present: {present[:20]}; "
                                     "pass one of them (the atlas's own labels, as evaluate and benchmark key roi_r).")
        if names is not None and len(names) == n_outputs and len(idx) == 1:  # a model of ROI targets: one output per ROI (user test 33:
            return idx, f"ROI {num} {names[int(idx[0])]!r} (output {int(idx[0])})"  # "ROI 2 (1 voxels)" vs "ROI 'central_beta' (output 1)")
        return idx, f"ROI {num} ({len(idx)} voxels)"
    raise Eeg2fmriInputError(f"explain: expected target 'mask', 'voxel:I' or 'roi:L', got {target!r}; e.g. target='roi:3'"
                             + (f", or roi:NAME with a name of the model's ROIs: {list(names)[:12]}." if names else "."))


# ---------------------------------------------------------------------------------------------------------- aggregation
def _lags_s(spec: DataSpec, lag: int) -> np.ndarray:
    """Centre of every input step in seconds before the end of the target volume's acquisition (oldest first)."""
    rate = float(spec.frame_rate or spec.sfreq)
    n = int(spec.input_shape[-1])
    return ((n - np.arange(n) - 0.5) - lag) / rate


def aggregate_attributions(attr: np.ndarray, spec: DataSpec, lag: int = 0, delta: np.ndarray | None = None) -> dict[str, Any]:
    """Per-channel, per-band (or frequency) and per-lag importance of attributions.

    Parameters
    ----------
    attr : array, shape (n_windows, *spec.input_shape)
    spec : DataSpec
    lag : int
        The window's lag in input steps (``window.lag`` of the model).
    delta : array, shape (n_windows, *spec.input_shape) | None
        The attributed inputs minus the baseline. With it, ``*_signed`` is the direction of the effect: the mean of
        ``attribution * sign(delta)`` (> 0 where more of the feature raises the target: for a linear model
        ``w * |x - b|``); without it the mean signed attribution, which for a linear model is ``w * mean(x - b)``
        and follows the drift of the attributed span from the baseline, not the direction (user test 18: beta and
        gamma came out with the wrong sign).

    Returns
    -------
    dict
        ``channel``, ``band`` (absent for raw input) and ``lag`` importance:
        mean over windows of the summed absolute attribution over the other
        axes, normalised to sum to 1 (``*_signed``: the direction, see ``delta``,
        not normalised); ``lag_by_band`` (the lag importance of each band,
        each normalised) and ``lag_top_band`` (that of the band with the most
        importance: a summed profile buries the driving band's lag under the
        others, user test 18); ``lag_s`` (seconds before the end of the
        volume) and ``band_names`` / ``freqs``. For ``tangent`` input each band
        collects its band-power entry and its tangent-matrix row (entry
        ``T_b[c, d]`` counts for channel ``c`` and band ``b``). Windows with event regressors
        (``spec.event_names``): ``event`` (each condition's share of the whole |attribution|),
        ``event_signed``, ``event_names`` and ``event_share`` (their sum); the channel, band and lag
        shares are then of the EEG entries alone.
    """
    a = np.asarray(attr, dtype=np.float64)
    ab = np.abs(a)
    if delta is not None:
        a = a * np.sign(np.asarray(delta, dtype=np.float64))  # the direction of each feature's effect
    n_ev = int(getattr(spec, "n_events", 0) or 0)
    events: dict[str, Any] = {}
    if n_ev:  # event regressors (prepare option events): their own importance; the channel/band/lag shares are of the EEG entries
        import dataclasses

        ev_abs = ab[:, :, ab.shape[2] - n_ev :].sum((1, 3)).mean(0)  # (n_events,)
        total = float(ab.sum((1, 2, 3)).mean())
        events = {"event": ev_abs / total if total > 0 else ev_abs, "event_signed": a[:, :, a.shape[2] - n_ev :].sum((1, 3)).mean(0),
                  "event_names": list(spec.event_names), "event_share": float(ev_abs.sum() / total) if total > 0 else 0.0}
        a, ab = a[:, :, : a.shape[2] - n_ev], ab[:, :, : ab.shape[2] - n_ev]
        spec = dataclasses.replace(spec, input_shape=(spec.n_chans, spec.n_eeg_features, int(spec.input_shape[2])), event_names=())
    if spec.input_kind == "tangent":  # fold (C, F * (1 + C), T) into (C, F, T): power entry + tangent row per band
        n, c = a.shape[:2]
        f = a.shape[2] // (1 + c)

        def fold(v: np.ndarray) -> np.ndarray:
            return v[:, :, :f] + v[:, :, f:].reshape(n, c, f, c, v.shape[-1]).sum(3)

        a, ab = fold(a), fold(ab)

    def frac(v: np.ndarray) -> np.ndarray:
        s = v.sum()
        return v / s if s > 0 else v

    out: dict[str, Any] = dict(events)
    if spec.input_kind == "raw":
        out["channel"] = frac(ab.sum(2).mean(0))
        out["channel_signed"] = a.sum(2).mean(0)
        out["lag"] = frac(ab.sum(1).mean(0))
        out["lag_signed"] = a.sum(1).mean(0)
    else:
        out["channel"] = frac(ab.sum((2, 3)).mean(0))
        out["channel_signed"] = a.sum((2, 3)).mean(0)
        out["band"] = frac(ab.sum((1, 3)).mean(0))
        out["band_signed"] = a.sum((1, 3)).mean(0)
        out["lag"] = frac(ab.sum((1, 2)).mean(0))
        out["lag_signed"] = a.sum((1, 2)).mean(0)
        out["channel_band"] = frac(ab.sum(3).mean(0).ravel()).reshape(ab.shape[1:3])
        by_band = ab.sum(1).mean(0)  # (n_bands, n_lags)
        out["lag_by_band"] = np.stack([frac(v) for v in by_band])
        out["top_band"] = int(np.argmax(out["band"]))
        out["lag_top_band"] = out["lag_by_band"][out["top_band"]]
        out["lag_top_band_signed"] = a.sum(1).mean(0)[out["top_band"]]  # (user test 37: explain.tsv's signed column was NaN there)
    out["lag_s"] = _lags_s(spec, lag)
    return out


# ---------------------------------------------------------------------------------------------------------- attribution
def _require_captum():
    try:
        import captum.attr  # noqa: F401
    except ImportError:  # pragma: no cover - captum is in the test extra
        raise Eeg2fmriInputError("explain: Captum is not installed; pip install 'eeg2fmri[explain]' (or pip install captum).") from None
    import captum.attr

    return captum.attr


def _scalar_model(model: Any, idx: np.ndarray):
    import torch

    sel = torch.as_tensor(idx, dtype=torch.long)

    class _Target(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.inner(x).reshape(len(x), -1)
            return out.index_select(1, sel.to(out.device)).mean(1, keepdim=True)

    return _Target()


def lrp_support(model: Any) -> tuple[bool, str]:
    """Whether Captum's LRP rule set covers ``model`` (every leaf module has a rule, no bare parameters).

    Returns
    -------
    ok : bool
    reason : str
        Why not (names the unsupported pieces) or what is used.
    """
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES, SUPPORTED_NON_LINEAR_LAYERS

    ok_types = tuple(SUPPORTED_LAYERS_WITH_RULES) + tuple(SUPPORTED_NON_LINEAR_LAYERS)
    bad: list[str] = []
    for name, mod in model.named_modules():
        own = [p for p, _ in mod.named_parameters(recurse=False)]
        if list(mod.children()):
            if own:
                bad.append(f"{name or type(model).__name__}: parameters used outside layers ({', '.join(own[:4])})")
            continue
        if not isinstance(mod, ok_types):
            bad.append(f"{name}: {type(mod).__name__}")
    if bad:
        return False, "LRP not applicable: Captum has no LRP rule for " + "; ".join(bad[:6]) + (" ..." if len(bad) > 6 else "")
    return True, ("LRP (Captum's epsilon rule on linear/conv layers, pass-through on non-linearities); it decomposes the output "
                  "against a zero input, not the mean training window the other methods use, so its ranking can differ from theirs "
                  "(user test 25: on a linear model, integrated gradients' top band beta, LRP's delta)")


def _attribute(method: str, model: Any, x: np.ndarray, baseline: np.ndarray, idx: np.ndarray, *, n_steps: int, batch_size: int,
               progress_bar: bool) -> np.ndarray:
    import torch

    ca = _require_captum()
    f = _scalar_model(model, idx).eval()
    algo = ca.IntegratedGradients(f) if method == "integrated_gradients" else ca.LRP(f)
    outs = []
    base = torch.as_tensor(baseline, dtype=torch.float32)[None]
    for b0 in progress(range(0, len(x), batch_size), desc=f"explain ({method})", total=-(-len(x) // batch_size), enabled=progress_bar):
        xb = torch.as_tensor(np.ascontiguousarray(x[b0 : b0 + batch_size], dtype=np.float32)).requires_grad_(True)
        if method == "integrated_gradients":
            a = algo.attribute(xb, baselines=base.expand_as(xb), target=0, n_steps=n_steps, internal_batch_size=max(batch_size, 1) * 4)
        else:
            a = algo.attribute(xb, target=0)
        outs.append(a.detach().float().cpu().numpy())
    return np.concatenate(outs)


# ---------------------------------------------------------------------------------------------------------- patterns
def haufe_patterns(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Activation patterns of linear spatial filters (Haufe et al. 2014).

    Parameters
    ----------
    w : array, shape (n_sources, n_chans)
        Filters: source ``s = w @ x``.
    x : array, shape (n_samples, n_chans)
        The data the filters are applied to (e.g. training features).

    Returns
    -------
    patterns : array, shape (n_sources, n_chans)
        ``A = Cov(X) W^T Cov(S)^-1`` (pseudo-inverse), one pattern per row.
    """
    w = np.asarray(w, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1]:
        raise Eeg2fmriInputError(f"haufe_patterns: expected w (n_sources, n_chans) and x (n_samples, n_chans) with the same n_chans, "
                                 f"got {w.shape} and {x.shape}.")
    xc = x - x.mean(0)
    cx = xc.T @ xc / max(len(x) - 1, 1)
    cs = w @ cx @ w.T
    return (cx @ w.T @ np.linalg.pinv(cs)).T


def _flagship_insight(model: Any, x_train: np.ndarray) -> dict[str, Any]:
    """Haufe patterns of the flagship's per-band unmixing, the sources' decoder weight and the learned HRFs."""
    import torch

    with torch.no_grad():
        bp = model.band_power(torch.as_tensor(np.ascontiguousarray(x_train, dtype=np.float32))).numpy()  # (N, C, F, T)
        unmix = model.unmix.detach().numpy()  # (K, F, M, C)
        k_, f_, m_, c_ = unmix.shape
        m_all = getattr(model, "n_all_sources", m_)  # the band-power sources first (tangent sources, if any, after them)
        hrf = model.hrf_kernels().detach().numpy()[:, :, :m_]  # (K, F, M, T)
        weight = np.linalg.norm(np.einsum("klr,kro->klo", model.encode.detach().numpy(), model.decode.detach().numpy()), axis=-1)  # (K, L)
        weight = weight.reshape(k_, f_, m_all)[:, :, :m_]
    pats = np.empty_like(unmix, dtype=np.float64)
    for f in range(f_):
        xf = bp[:, :, f, :].transpose(0, 2, 1).reshape(-1, c_)  # frames of every training window, (N*T, C)
        for k in range(k_):
            pats[k, f] = haufe_patterns(unmix[k, f], xf)
    # the network's share of the evaluation-mode prediction (1 - the blend weight of the linear path): at 0 (blend weight
    # 1, frequent under blend_rule="guarded") these patterns and HRFs are the unused network's and the figures say so
    share = model.network_share()
    return {"patterns": pats, "source_weight": weight, "hrf_kernels": hrf.astype(np.float64),
            "hrf_lag_s": model.frame_lags_s.mean(1).numpy().astype(np.float64), "kind": "eeg2fmri_net", "network_share": share}


def _attention_insight(model: Any, x: np.ndarray, batch_size: int) -> dict[str, Any]:
    """calhas2022's topographical attention graph, averaged over windows ``x``.

    Returns ``attention``, array shape (n_chans, n_chans): row ``i`` is how much electrode
    ``i``'s new representation draws on each electrode (rows sum to one), the mean over the
    windows; ``attention_sd``, its standard deviation over windows.
    """
    import torch

    total = total2 = None
    with torch.no_grad():
        for b0 in range(0, len(x), batch_size):
            a = model.attention_scores(torch.as_tensor(np.ascontiguousarray(x[b0:b0 + batch_size], dtype=np.float32))).double()
            total = a.sum(0) if total is None else total + a.sum(0)
            total2 = (a * a).sum(0) if total2 is None else total2 + (a * a).sum(0)
    mean = (total / len(x)).numpy()
    sd = np.sqrt(np.maximum((total2 / len(x)).numpy() - mean**2, 0.0))
    return {"attention": mean, "attention_sd": sd, "kind": "calhas2022"}


def _beira_insight(model: Any, x_train: np.ndarray) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        pats = model.spatial_patterns(torch.as_tensor(np.ascontiguousarray(x_train[:256], dtype=np.float32))).numpy()
    return {"patterns": pats.astype(np.float64)[None, None], "kind": "beira"}


# ---------------------------------------------------------------------------------------------------------- montage
def dataset_montage(ds: PreparedDataset, ch_names: list[str] | None = None, fallback: str = "colin27_1005") -> tuple[Any, str]:
    """Channel positions of the training data as an MNE montage.

    Looks for the BIDS ``*_electrodes.tsv`` next to the first run's EEG file
    (recorded in the dataset's provenance); without one, positions come from
    MNE's standard montage ``fallback`` by channel name.

    Returns
    -------
    montage : mne.channels.DigMontage
    source : str
        Where the positions came from.
    """
    import mne

    names = list(ch_names if ch_names is not None else ds.ch_names)
    from eeg2fmri.datasets.prepared import recorded_input
    from eeg2fmri.io.channel_names import channel_key

    inputs = (ds.provenance or {}).get("inputs", {}) if isinstance(ds.provenance, dict) else {}
    for key in inputs:
        eeg = recorded_input(ds, key, "eeg")
        if eeg is None or not eeg.parent.is_dir():
            continue
        for tsv in sorted(eeg.parent.glob("*_electrodes.tsv")):
            pos = {}
            with open(tsv, newline="", encoding="utf-8-sig") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    try:
                        pos[row["name"]] = np.array([float(row["x"]), float(row["y"]), float(row["z"])])
                    except (KeyError, ValueError):
                        continue
            lower = {k.lower(): v for k, v in pos.items()}
            for k, v in pos.items():  # then as prepare matches names (EDF-style "EEG Fp1-REF" is Fp1)
                lower.setdefault(channel_key(k), v)
            found, seen = {}, set()
            for n in names:  # one channel per electrode (two spellings of one site: the first)
                key = n.lower() if n.lower() in lower else channel_key(n) if channel_key(n) in lower else None
                if key is not None and id(lower[key]) not in seen:
                    seen.add(id(lower[key]))
                    found[n] = lower[key]
            if len(found) >= 3:
                return mne.channels.make_dig_montage(ch_pos=found, coord_frame="head"), str(tsv)
        break
    return mne.channels.make_standard_montage(fallback), f"MNE standard montage {fallback!r} (by channel name)"


# ---------------------------------------------------------------------------------------------------------- main
def _refitted(model: Any) -> bool:
    """Whether a model refitted on its validation windows (ridge_hrf ``refit``; models that keep held-out residuals)."""
    return bool(getattr(model, "refit", False)) or getattr(model, "val_residuals_", None) is not None


def explain(
    model: Any,
    ds: PreparedDataset,
    split: Split,
    *,
    target: Any = "mask",
    atlas: np.ndarray | None = None,
    methods: str | tuple[str, ...] | list[str] = "auto",
    n_windows: int = 128,
    n_steps: int = 32,
    window: dict | None = None,
    batch_size: int = 16,
    random_state: int = 0,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Attribute a model's predictions for one target to channels, bands and lags on held-out windows.

    Torch models through Captum; models linear in their input (``ridge_hrf``: ``input_weights``) exactly. The windows
    are the split's test span, else its validation span (a model trained to deploy).

    Parameters
    ----------
    model : torch.nn.Module or LoadedModel
        A registered torch model (``LoadedModel.model`` or a ``FitResult.model``
        wrapping one is unwrapped).
    ds : PreparedDataset
        The data it was trained on.
    split : Split
        Its split: attributions use ``split``'s test windows; the Integrated
        Gradients baseline (the mean training window) and the flagship's
        patterns use its training windows.
    target : "mask" | int | str
        See :func:`resolve_target`.
    atlas : array of int, shape (n_outputs,) | None
        Labels of the outputs, for ``target="roi:L"``.
    methods : "auto" or sequence of {"integrated_gradients", "lrp"}
        ``"auto"`` (default): Integrated Gradients, and LRP too where
        :func:`lrp_support` says every layer of the model has a rule (quietly
        left out otherwise: ``lrp_skipped`` says why). LRP asked for by name
        is run only where it is supported; otherwise ``lrp_note`` says why not.
    n_windows : int
        Test windows attributed (drawn evenly over the test set, at most all).
    n_steps : int
        Integration steps of Integrated Gradients.
    window : dict | None
        ``{"n_frames": .., "lag": ..}`` of the model (default: the split's).
    batch_size : int
    random_state : int
        Seed of the window draw when there are more test windows than ``n_windows``.
    progress_bar : bool

    Returns
    -------
    dict
        ``target``, ``n_windows``, per method ``methods[m]`` with the
        aggregated importance (:func:`aggregate_attributions`) and the
        completeness check of IG (``convergence_delta``), ``lrp_note`` (LRP
        asked for: what was used, or why not), ``lrp_skipped`` (``"auto"``
        and LRP not applicable: why),
        ``insight`` (flagship/BEIRA patterns and HRFs, when available),
        ``channels``, ``band_names``, ``input_kind``.
    """
    import torch

    mdl = getattr(model, "model", model)
    linear = callable(getattr(mdl, "input_weights", None))  # a closed-form model linear in its input (ridge_hrf): exact
    if not linear:
        mdl = getattr(mdl, "module", mdl) if not isinstance(mdl, torch.nn.Module) else mdl
    if not linear and not isinstance(mdl, torch.nn.Module):
        raise Eeg2fmriInputError(f"explain: expected a torch model (a registered neural model) or a linear closed-form one (ridge_hrf), got "
                                 f"{type(mdl).__name__}; its predictions have no attributions to compute.")
    spec: DataSpec | None = getattr(mdl, "spec", None)
    if not isinstance(spec, DataSpec):
        raise Eeg2fmriInputError("explain: expected a registered model with a DataSpec (model.spec); build it through eeg2fmri.models.")
    auto = isinstance(methods, str) and methods == "auto"
    if isinstance(methods, str) and not auto:
        methods = (methods,)
    why = ""
    if linear:  # weight x (input - baseline): what every attribution method gives a linear model, computed exactly
        if not auto and tuple(methods if not isinstance(methods, str) else (methods,)) != ("integrated_gradients",):
            logger.info("explain: %s is linear in its input: its exact attribution (weight x (input - baseline), what Integrated "
                        "Gradients gives) replaces %s", type(mdl).__name__, methods)
        methods, auto = ("integrated_gradients",), False
    elif auto:
        ok, why = lrp_support(mdl)  # (user test 9: the default asked for LRP and then reported it as not applicable)
        methods = ("integrated_gradients", "lrp") if ok else ("integrated_gradients",)
    for m in methods:
        check_choice(m, "methods", EXPLAIN_METHODS, where="explain")
    n_windows = check_positive_int(n_windows, "n_windows", where="explain")
    n_steps = check_positive_int(n_steps, "n_steps", where="explain")
    batch_size = check_positive_int(batch_size, "batch_size", where="explain")
    n_frames = int((window or {}).get("n_frames") or split.n_frames)
    lag = int((window or {}).get("lag", split.lag))
    def n_sel(name: str) -> int:
        return sum(len(v) for v in (split.selections.get(name) or {}).values())

    # held-out windows: the test span, else (a model trained to deploy, fractions [0.8, 0.2, 0]: user test 18) the
    # validation span -- attributions need the EEG only; a model refitted on them (refit, optimizer.refit) has seen their
    # targets, which explain.json's `windows` says
    part = "test" if n_sel("test") else "val" if n_sel("val") else None
    if part is None:
        raise Eeg2fmriInputError("explain: the split has neither test nor validation windows; explanations are computed on windows the "
                                 "model was not trained on (use a split with a validation or test span).")
    x_test, _, _ = window_matrix(ds, split.selections[part], n_frames, lag)
    if tuple(x_test.shape[1:]) != tuple(spec.input_shape):
        raise Eeg2fmriInputError(f"explain: the dataset's windows have shape {tuple(x_test.shape[1:])}, the model expects {tuple(spec.input_shape)}; "
                                 "explain the model on the dataset (and representation) it was trained on.")
    rng = np.random.default_rng(random_state)
    if len(x_test) > n_windows:
        pick = np.sort(rng.choice(len(x_test), n_windows, replace=False))
        x_test = x_test[pick]
    x_train, _, _ = window_matrix(ds, split.selections["train"], n_frames, lag)
    baseline = x_train.mean(0)
    rois = ds.rois if isinstance(getattr(ds, "rois", None), dict) and ds.rois.get("labels") is not None else None
    roi_names = None
    if rois is not None and len(rois["labels"]) == int(spec.n_outputs):  # a model of ROI targets: its outputs are the ROIs
        if atlas is not None:
            logger.info("explain: the model's outputs are the ROIs of its own atlas; roi:L names them by that atlas's labels (the atlas given is not needed)")
        atlas = np.asarray(rois["labels"])
        roi_names = [str(n) for n in rois.get("names") or []] or None
    idx, desc = resolve_target(target, int(spec.n_outputs), atlas, names=roi_names)
    was_training = getattr(mdl, "training", False)
    if hasattr(mdl, "eval"):
        mdl.eval()
    res: dict[str, Any] = {"target": desc, "target_indices": idx, "n_windows": int(len(x_test)), "input_kind": spec.input_kind,
                           "channels": list(spec.ch_names), "band_names": list(ds.bands) if spec.input_kind in ("bandpower", "tangent") else None,
                           "freqs": None if spec.freqs is None else list(spec.freqs), "window": {"n_frames": n_frames, "lag": lag},
                           "baseline": "mean training window", "methods": {},
                           "windows": "test" if part == "test" else (
                               "validation (the split has no test span" + ("; the model was refitted on them, so it saw their targets)"
                                                                           if _refitted(mdl) else ")"))}
    if linear:
        res["linear_exact"] = "the model is linear in its input: attribution = weight x (input - baseline), exactly"
    if auto and "lrp" not in methods:
        res["lrp_skipped"] = why
    try:
        for m in methods:
            if m == "lrp":
                ok, note = lrp_support(mdl)
                res["lrp_note"] = note
                if not ok:
                    logger.info("explain: %s", note)
                    continue
            if linear:
                attr = (x_test - baseline[None]) * np.asarray(mdl.input_weights(idx), dtype=np.float64)[None]
            else:
                attr = _attribute(m, mdl, x_test, baseline, idx, n_steps=n_steps, batch_size=batch_size, progress_bar=progress_bar)
            # the direction against each method's reference: the baseline (IG, linear), zero input (LRP)
            agg = aggregate_attributions(attr, spec, lag, delta=x_test if m == "lrp" else x_test - baseline[None])
            if m == "integrated_gradients" and not linear:
                # completeness: attributions sum to f(x) - f(baseline)
                f = _scalar_model(mdl, idx).eval()
                with torch.no_grad():
                    fx = f(torch.as_tensor(x_test, dtype=torch.float32))[:, 0].numpy()
                    fb = f(torch.as_tensor(baseline[None], dtype=torch.float32))[0, 0].item()
                gap = attr.reshape(len(attr), -1).sum(1) - (fx - fb)
                agg["convergence_delta"] = float(np.abs(gap).max() / max(np.abs(fx - fb).max(), 1e-12))
            res["methods"][m] = agg
        name = getattr(type(mdl), "registry_name", None) or type(mdl).__name__
        if hasattr(mdl, "unmix") and hasattr(mdl, "hrf_kernels") and hasattr(mdl, "band_power"):
            res["insight"] = _flagship_insight(mdl, x_train[:: max(1, len(x_train) // 512)])
        elif hasattr(mdl, "spatial_patterns") and spec.input_kind == "raw":
            res["insight"] = _beira_insight(mdl, x_train[:: max(1, len(x_train) // 256)])
        elif hasattr(mdl, "attention_scores"):
            res["insight"] = _attention_insight(mdl, x_test, batch_size)
        res["model_class"] = name
    finally:
        if hasattr(mdl, "train") and not linear:
            mdl.train(was_training)
    return res


def explanation_rows(res: dict[str, Any]) -> list[dict[str, Any]]:
    """The aggregated importances of :func:`explain` as table rows (``method, axis, name, importance, signed``)."""
    rows = []
    for m, agg in res["methods"].items():
        for i, ch in enumerate(res["channels"]):
            rows.append({"method": m, "axis": "channel", "name": ch, "importance": float(agg["channel"][i]), "signed": float(agg["channel_signed"][i])})
        if "band" in agg:
            names = res["band_names"] if res["band_names"] and len(res["band_names"]) == len(agg["band"]) else [f"{f:g} Hz" for f in (res["freqs"] or [])]
            for i, b in enumerate(names):
                rows.append({"method": m, "axis": "band", "name": b, "importance": float(agg["band"][i]), "signed": float(agg["band_signed"][i])})
        for i, s in enumerate(agg["lag_s"]):
            rows.append({"method": m, "axis": "lag_s", "name": f"{s:.3f}", "importance": float(agg["lag"][i]), "signed": float(agg["lag_signed"][i])})
        for i, name in enumerate(agg.get("event_names") or []):  # event regressors: share of all |attribution|
            rows.append({"method": m, "axis": "event", "name": name, "importance": float(agg["event"][i]), "signed": float(agg["event_signed"][i])})
        if "lag_top_band" in agg:  # the lag profile within the most important band (its name in the axis)
            names = res["band_names"] if res["band_names"] and len(res["band_names"]) == len(agg["band"]) else [f"{f:g} Hz" for f in (res["freqs"] or [])]
            top = names[agg["top_band"]] if names else str(agg["top_band"])
            for i, s in enumerate(agg["lag_s"]):
                signed = agg.get("lag_top_band_signed")
                rows.append({"method": m, "axis": f"lag_s in {top}", "name": f"{s:.3f}", "importance": float(agg["lag_top_band"][i]),
                             "signed": float(signed[i]) if signed is not None else float("nan")})
    return rows
