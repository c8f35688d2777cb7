"""``eeg2fmri train``."""

from __future__ import annotations

from pathlib import Path

NAME = "train"
ORDER = 40
HELP = "train a model from one config file (laptop CPU to many GPUs), resumable"
DESCRIPTION = (
    "Train the model a YAML/TOML/JSON config describes (data, split, model, optimiser, loss weights, trainer). "
    "Early stopping and the checkpoint choice use the validation split only; the test split is scored once at the end. "
    "Writes the resolved config, checkpoints (last + best), CSV logs, metrics.json and model/ (safetensors + model card). "
    "--devices/--num-nodes > 1 train with DDP without code changes; --resume continues an interrupted run."
)


def add_arguments(p) -> None:
    p.add_argument("config", help="training config (.yaml, .yml, .toml or .json); see docs/training.md")
    p.add_argument("--out", help="output folder (overrides `out` in the config)")
    p.add_argument("--devices", type=int, help="devices per node (overrides trainer.devices)")
    p.add_argument("--num-nodes", type=int, dest="num_nodes", help="nodes (overrides trainer.num_nodes)")
    p.add_argument("--resume", action="store_true", help="continue the run in the output folder from checkpoints/last.ckpt")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--no-test", action="store_true", help="do not score the final model on the test split")


def choices_line(tr: dict) -> str:
    """One line on what a model chose on the validation windows after training (eeg2fmri_net: blend weight, output rank)."""
    parts = []
    if "hrf" in tr:  # ridge_hrf (user test 15: its basis choice was neither printed nor stored)
        scores = tr.get("hrf_scores") or {}
        what = "validation MSE" if tr.get("n_val", 1) else "GCV error on the training windows"
        if tr.get("hrf_r"):  # hrf_select="r": chosen by the validation correlation of supervoxel means
            scores, what = tr["hrf_r"], "validation r of supervoxel means where the signal is"
        parts.append(f"HRF basis {tr['hrf']}" + (f" ({what} " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()) + ")" if scores else ""))
        m = tr.get("hrf_margin") or {}
        if m.get("within_noise"):  # (user test 18: a coin flip on noise-level whole-mask errors cost a late-HRF region 0.2 ROI r)
            parts[-1] += (f" -- within noise: {m['best']} beats {m['runner_up']} by {m['gain']:.2g} +/- {m['se']:.2g} (jackknife SE) per output, "
                          "so the validation windows do not tell the bases apart over the whole mask; for region series of focal "
                          "signal, hparams hrf_select: r chooses where the signal is (or compare hrf: lags on ROI r: benchmark --atlas "
                          f"... --hparams '{{\"{tr.get('model_name') or 'ridge_hrf'}\": {{\"hrf_select\": \"r\"}}}}')")
    if "event_gain" in tr:  # (EEG + event regressors: the events' columns penalised gain**2 times less)
        parts.append(f"event regressors weighted {tr['event_gain']:g}x the EEG features")
    if "slow_gain" in tr:  # (prepare option slow_potential: its columns penalised 1 / gain**2 times the bands')
        sg = tr["slow_gain"]
        parts.append(f"slow-potential columns weighted {sg:g}x the bands" if not isinstance(sg, dict) else
                     "slow-potential columns' gain per output (gain x outputs): " + ", ".join(f"{g} x {n}" for g, n in sg["per_target"].items()))
    if "alpha" in tr:
        parts.append(f"penalty {tr['alpha']:g}" + (" (median over outputs)" if "alpha_per_target" in tr else ""))
        if tr.get("alpha_at_grid_top"):
            parts[-1] += (" -- the largest of its grid: over the whole mask the validation windows favour a prediction shrunk to "
                          "nearly constant, so the synthesised series have a tiny amplitude (their r with a region can still be "
                          "high); for region series train on ROI targets (prepare option atlas) or pass hparams "
                          "alpha_per_target: guarded, and compare ROI r (evaluate --atlas)")
    if "ridge_weight" in tr:
        parts.append(f"linear-path weight {tr['ridge_weight']:.2f}")
        if tr.get("ridge_weight_kept_linear"):  # blend_rule="guarded" fell back to the linear path: the network is unused
            parts[-1] += f" (the network is not used: {tr['ridge_weight_kept_linear']})"
            if "mostly noise" in str(tr["ridge_weight_kept_linear"]):  # (user test 44: a focal signal, 2 % of the mask coupled)
                parts[-1] += (" -- for a focal signal, train on region targets (prepare option atlas: LABELS.nii.gz) or on a mask of "
                              "your regions (prepare option mask), where the network can be chosen, or give the linear path a penalty "
                              "per voxel where it earns one (hparams ridge_alpha_per_target: guarded; user test 56: LOSO ROI r 0.41 -> "
                              "0.53), and compare ROI r (evaluate --atlas)")
        if "ridge_hrf" in tr:
            parts.append(f"linear-path HRF basis {tr['ridge_hrf']}")
    if "output_rank" in tr:
        k = tr["output_rank"]
        if k is not None:
            parts.append(f"output rank {k}")
            if tr.get("output_rank_outputs_kept_full"):  # rank_output_check: outputs whose validation r the rank lowered
                parts[-1] += (f" ({tr['output_rank_outputs_kept_full']} outputs keep the full prediction: the rank lowered their "
                              "validation r)")
            if k <= 2:  # (user test 23: rank 1 gave an unseen subject's second region the first region's course, sign reversed)
                parts[-1] += (f" -- the other outputs follow {'one time course' if k == 1 else 'two time courses'}: where regions "
                              "driven by different EEG features matter, compare with model.hparams.output_rank: null (evaluate --atlas)")
        elif tr.get("output_rank_kept_full"):
            parts.append(f"output rank: full (kept: {tr['output_rank_kept_full']})")
        else:
            parts.append("output rank: full")
    return "chosen on the validation windows: " + ", ".join(parts)


def interrupted(args) -> str:
    """What Ctrl-C leaves behind (the CLI prints it): a run to resume only where a checkpoint was written (user test 29:
    a closed-form model, fitted in one step, has none, and neither has a torch run stopped before its first epoch)."""
    out = getattr(args, "out", None)
    try:
        if out is None:
            from eeg2fmri.training.config import load_config

            out = load_config(args.config).get("out")
    except Exception:  # the config itself may be what was being read
        out = None
    where = f" in {out}" if out else " in the config's out folder"
    again = f"eeg2fmri train {args.config}{' --out ' + str(args.out) if getattr(args, 'out', None) else ''}"
    if out is not None and not (Path(out) / "checkpoints" / "last.ckpt").is_file():
        return (f"no checkpoint was written{where} (a closed-form model is fitted in one step; a torch model had not finished an "
                f"epoch): nothing to resume; run {again} again to start over (it reuses the folder's config and prepared data).")
    return (f"the run so far is kept{where} (checkpoints, logs): continue it with eeg2fmri train {args.config} --resume"
            f"{' --out ' + str(args.out) if getattr(args, 'out', None) else ''}, or start again with --overwrite.")


def run(args) -> int:
    from eeg2fmri.workflows.train import train

    res = train(args.config, out=args.out, devices=args.devices, num_nodes=args.num_nodes, resume=args.resume, overwrite=args.overwrite,
                progress_bar=False if args.quiet else None, verbose=args.verbose, evaluate_test=not args.no_test)
    if res.fit is None and not res.metrics:
        return 0  # a DDP worker process: rank 0 reports
    m = res.metrics
    v = m.get("validation", {})
    # r per subject over its own windows, then the mean over subjects (as `eeg2fmri evaluate` reports it)
    line = f"validation: mse {v.get('mse', float('nan')):.4f}, mean r {v.get('mean_r', float('nan')):.4f}"
    if m.get("validation_in_sample"):  # refit=True, linear_refit=True or optimizer.refit
        line += f" (in-sample: {m['validation_in_sample']})"
    if "test" in m:
        line += f" | test: mse {m['test']['mse']:.4f}, mean r {m['test']['mean_r']:.4f}, median r {m['test']['median_r']:.4f} (per subject, averaged)"
    elif not m.get("split", {}).get("n_test", 1):
        line += " | no test span (split.fractions gives it no share): a model to deploy, its held-out score comes from a benchmark or evaluate run"
    tr = m.get("training", {})
    if "best_epoch" in tr:
        line += f" | best epoch {tr['best_epoch']} of {tr['epochs']}"
        if isinstance(tr.get("best_score"), (int, float)) and tr.get("monitor"):  # what tune compares (user test 34: pooled windows)
            line += f" ({tr['monitor']} {tr['best_score']:.4f}, over the validation windows pooled, as tune reports it)"
        if tr.get("at_epoch_limit"):
            line += " (best epoch among the last at optimizer.max_epochs: raise it)"
    print(line)
    if "ridge_weight" in tr or "output_rank" in tr or "hrf" in tr:  # eeg2fmri_net's / ridge_hrf's choices on the validation windows
        print(choices_line(tr))
    sp = m.get("split", {})
    if "volumes" in sp:
        from eeg2fmri.datasets.targets import volumes_line

        print(volumes_line(sp["volumes"], sp.get("tr")))
    print(f"wrote {res.out}: {', '.join(sorted(p.name + ('/' if p.is_dir() else '') for p in res.out.iterdir()))}")
    return 0
