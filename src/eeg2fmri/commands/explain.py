"""``eeg2fmri explain``."""

from __future__ import annotations

NAME = "explain"
ORDER = 62
HELP = "attribute a trained model's predictions to channels, bands and lags (Captum) on its test windows; topomaps, HRFs"
DESCRIPTION = (
    "Integrated Gradients (and LRP where every layer of the model has a rule; otherwise the output says why not) on the held-out test "
    "windows of the split the model was trained with (a model trained without a test span: its validation windows), for one target: "
    "the whole mask (mean of every voxel), one voxel (voxel:I, in-mask index) or an ROI (roi:L with --atlas; a model of ROI targets: "
    "roi:L or roi:NAME of its own atlas). ridge_hrf, linear in its input, is explained exactly (weight x (input - baseline)). Writes explain.json, explain.tsv (importance per channel, band/frequency and lag) "
    "and figures (channel topomaps on the training montage, band bars, lag curves; for eeg2fmri_net its spatial patterns (Haufe) and "
    "learned HRFs; for beira its patterns) into OUT (default RUN_DIR/explain). Needs Captum (pip install 'eeg2fmri[explain]')."
)


def add_arguments(p) -> None:
    p.add_argument("run_dir", nargs="?", help="training run folder (with model/) or model directory")
    p.add_argument("--model", help="model directory (instead of RUN_DIR)")
    p.add_argument("--data", help="prepared dataset (default: the one recorded with the model)")
    p.add_argument("--target", default="mask", help="mask | voxel:I | roi:L (default: %(default)s)")
    p.add_argument("--atlas", help="NIfTI of integer ROI labels on the data grid (for --target roi:L)")
    p.add_argument("--methods", nargs="+", default=None, choices=["integrated_gradients", "lrp"],
                   help="attribution methods (default: integrated_gradients, and lrp too where every layer of the model has an "
                        "LRP rule)")
    p.add_argument("--n-windows", type=int, default=128, help="test windows attributed (default: %(default)s)")
    p.add_argument("--n-steps", type=int, default=32, help="Integrated Gradients steps (default: %(default)s)")
    p.add_argument("--montage", help="MNE standard montage for the topomaps (default: the data's electrodes.tsv, else colin27_1005)")
    p.add_argument("--out", help="output folder (default: RUN_DIR/explain)")
    p.add_argument("--seed", type=int, default=0, help="seed of the window draw (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")


def band_direction(band_signed, b: int) -> str:
    """What the signed attribution says of band ``b``: more power raises or lowers the target, or nothing where its signed
    value is a tenth of the largest band's or less (user test 25: "raises" on theta's 0.0006 against alpha's -0.018)."""
    import numpy as np

    signed = np.asarray(band_signed, dtype=float)
    top = float(np.max(np.abs(signed))) if signed.size else 0.0
    if top == 0.0 or abs(signed[b]) <= 0.1 * top:
        return "direction unclear: its signed attribution is near 0"
    return "more power raises the target" if signed[b] > 0 else "more power lowers the target"


def spectral_tilt(band_signed, freqs) -> str | None:
    """How the signed band attributions run across frequency: Spearman's rank correlation with the log band centre (the
    first ``len(band_signed)`` of ``freqs``; tangent windows repeat them per block), over 4 bands or more (user test 56: a
    hypothesis on the aperiodic 1/f exponent looks for a sign that turns across frequency, not for one band)."""
    import numpy as np
    from scipy.stats import spearmanr

    signed = np.asarray(band_signed, dtype=float)
    f = np.asarray(freqs if freqs is not None else [], dtype=float)[: len(signed)]
    if len(signed) < 4 or len(f) != len(signed) or not np.all(f > 0) or len(np.unique(f)) != len(f) or np.ptp(signed) == 0:
        return None
    rho = float(spearmanr(np.log(f), signed).statistic)
    trend = ("power at higher frequencies raises the target, at lower ones lowers it" if rho > 0 else
             "power at lower frequencies raises the target, at higher ones lowers it")
    return (f"across the {len(signed)} bands the signed attribution follows log frequency with Spearman {rho:+.2f}"
            + (f" ({trend}: a spectral tilt such as the aperiodic exponent's, or band effects that happen to line up)" if abs(rho) >= 0.6 else ""))


def diffuse_note(channel_share, band_share, level: float = 0.98) -> str | None:
    """A note where neither channels nor bands stand out: both shares' normalised entropies above ``level`` (1: every
    channel, or band, equal). User test 57: the BOLD's physiological noise, predicted through the EEG's pulse artefact and
    breathing drifts, got channel shares of ~1/32 each and band shares of 0.15-0.19, printed as a "top band gamma"."""
    import numpy as np

    def flat(share) -> bool:
        p = np.asarray(share, dtype=float).ravel()
        p = p[np.isfinite(p)]
        if len(p) < 3 or p.sum() <= 0:
            return False
        p = p / p.sum()
        nz = p[p > 0]
        return float(-(nz * np.log(nz)).sum() / np.log(len(p))) > level

    if flat(channel_share) and flat(band_share):
        return ("no channel or band stands out (their shares are near equal): a diffuse driver -- a global signal, or the EEG's "
                "pulse artefact and breathing drifts predicting the BOLD's physiological noise -- is more likely than a localised "
                "rhythm; compare with physiological confounds regressed (README: Evaluation)")
    return None


def method_line(m: str, agg: dict, res: dict) -> str:
    """The console summary of one attribution method: top channels, top band with its direction and lag, and the event
    regressors' share where the windows carry them."""
    import numpy as np

    top = sorted(zip(agg["channel"], res["channels"]), reverse=True)[:5]
    which = "test" if res.get("windows", "test") == "test" else "validation"
    line = f"{m} ({res['target']}, {res['n_windows']} {which} windows): top channels " + ", ".join(f"{c} {v:.2f}" for v, c in top)
    if "band" in agg and res.get("band_names"):
        b = int(agg["band"].argmax())
        direction = band_direction(agg["band_signed"], b)
        peak = float(agg["lag_s"][int(np.argmax(agg["lag_top_band"]))]) if "lag_top_band" in agg else None
        line += (f"; top band {res['band_names'][b]} {agg['band'].max():.2f} ({direction}"
                 + (f"; its attribution peaks {peak:.1f} s before the volume's end)" if peak is not None else ")"))
        # (user test 57: a tilt was read into a target the run had just called unpredicted)
        tilt = None if res.get("target_note") else spectral_tilt(agg["band_signed"], res.get("freqs"))
        if tilt is not None:
            line += f"; {tilt}"
    diffuse = diffuse_note(agg["channel"], agg["band"]) if "band" in agg and res.get("band_names") else None
    if diffuse:  # (user test 57)
        line += f"; {diffuse}"
    if agg.get("event_names"):  # event regressors: their share of all |attribution|, apart from the EEG's (channels/bands above)
        line += (f"; event regressors {100 * float(agg['event_share']):.0f} % of the attribution ("
                 + ", ".join(f"{n} {float(v):.2f}" for n, v in zip(agg["event_names"], agg["event"])) + ")")
    return line


def run(args) -> int:

    from eeg2fmri.workflows.explain import explain_run

    out, res = explain_run(args.run_dir, model=args.model, data=args.data, target=args.target, atlas=args.atlas, methods=tuple(args.methods) if args.methods else "auto",
                           n_windows=args.n_windows, n_steps=args.n_steps, montage=args.montage, out=args.out, random_state=args.seed,
                           overwrite=args.overwrite, progress_bar=not args.quiet)
    for m, agg in res["methods"].items():
        print(method_line(m, agg, res))
    if res.get("lag_note"):  # (user test 44: a fixed HRF's peak read as a finding)
        print(f"lags: {res['lag_note']}")
    if res.get("linear_exact"):
        print(f"{res['model']}: {res['linear_exact']}")
    if res.get("lrp_note"):
        print(res["lrp_note"])
    ins = res.get("insight") or {}
    if ins.get("kind") == "eeg2fmri_net" and float(ins.get("network_share", 1.0)) == 0.0:  # (user test 15: only the figures said so)
        print("eeg2fmri_net: the network is not used in the predictions (linear-path weight 1): the attributions above are of the "
              "predictions, i.e. of its linear path; the network's patterns and HRFs (patterns_topomap.png, hrfs.png) do not shape them")
    print(f"wrote {out}/explain.json, {out}/explain.tsv and figures")
    return 0
