"""Design experiment: how should the flagship make its validation choices (blend weight, output rank) when the EEG
drives only a few regions?

The flagship chooses its blend weight and its reduced output rank by the validation windows' mean voxel r over the
whole mask. Where most voxels carry no EEG-driven signal, that mean is mostly noise voxels' r, and a choice can keep
a pattern that loses the driven regions (a user test: rank 1 chosen on a validation r of 0.0097, ROI r 0.355 instead
of 0.582 at full rank). This script trains the flagship once per fold (``output_rank=None``, no per-output gain), then
scores, from the same network and linear path, every blend weight of the grid and every output rank, on

* the validation windows: mean voxel r, and its leave-one-block-out (jackknife) values over contiguous blocks of
  validation windows, so that any rule ("change only if the gain exceeds z jackknife SEs") can be evaluated offline;
* the test windows: median voxel r per test subject, and with ``--atlas`` the ROI r (median over ROIs) per subject.

One JSON document per dataset and protocol (``--out``); ``--table`` prints the rules' test scores from the documents.
Nothing here is reported as a result of the package: it is the evidence a default is chosen on (design data only).

    python benchmarks/design_choice_rules.py --prepared PREP [--atlas LABELS] --protocols within loso --out OUT.json
    python benchmarks/design_choice_rules.py --table OUT1.json OUT2.json ...   (the rank rules' test r, minus the full prediction's)
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np

GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
N_BLOCKS = 8


def jack(p: np.ndarray, y: np.ndarray, blocks: list[np.ndarray]) -> tuple[float, list[float]]:
    """Mean voxel r on all windows and with each block left out (the package's jackknife_mean_r, the same blocks)."""
    from eeg2fmri.utils.stats import jackknife_mean_r

    full, loo = jackknife_mean_r(p, y, len(blocks))
    return full, loo.tolist()


SMOOTHERS = {"k3": np.array([1.0, 2.0, 1.0]), "k5": np.array([1.0, 2.0, 3.0, 2.0, 1.0])}


def _smooth(p: np.ndarray, runs: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Each run's consecutive rows convolved with ``kernel`` (normalised where it overhangs the run's ends)."""
    from scipy.ndimage import convolve1d

    out = np.empty_like(p)
    for r in np.unique(runs):
        idx = np.nonzero(runs == r)[0]
        num = convolve1d(p[idx].astype(np.float64), kernel, axis=0, mode="constant")
        den = convolve1d(np.ones(len(idx)), kernel, mode="constant")
        out[idx] = (num / den[:, None]).astype(p.dtype)
    return out


def _predict(model, x: np.ndarray, what: str, bs: int = 128) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(x), bs):
            xb = torch.as_tensor(x[i : i + bs]).float()
            out.append((model.ridge_prediction(xb) if what == "lin" else model(xb).reshape(len(xb), -1)).numpy())
    return np.concatenate(out).astype(np.float32)


def run_fold(ds, split, labels, args) -> dict:
    import torch

    from eeg2fmri.datasets.targets import split_targets
    from eeg2fmri.evaluation.metrics.correlation import roi_r
    from eeg2fmri.models import get_model_class
    from eeg2fmri.models.flagship import _OUTPUT_RANK_WINDOWS, _OUTPUT_RANKS, leading_right_vectors
    from eeg2fmri.training import fit_model
    from eeg2fmri.training.fit import stack_split
    from eeg2fmri.utils.stats import pearson_columns

    targets = split_targets(ds, split)
    rec = get_model_class("eeg2fmri_net").recommended_train_config
    cfg = {**rec, "seed": args.seed, "trainer": {"accelerator": args.accelerator, "log": [], "progress_bar": False}}
    t0 = time.perf_counter()
    model = fit_model(ds, split, "eeg2fmri_net", {"seed": args.seed, "output_rank": None, "voxel_gain": False},
                      targets=targets, train_config=cfg).model.module.cpu().eval()
    fit_s = time.perf_counter() - t0
    w_chosen = float(model.ridge_weight)
    (x_tr, _, _), (x_va, y_va, run_va), (x_te, y_te, run_te) = (stack_split(ds, split, targets, part) for part in ("train", "val", "test"))
    m0 = copy.deepcopy(model)
    m0.ridge_weight.fill_(0.0)
    net_va, net_te = _predict(m0, x_va, "net"), _predict(m0, x_te, "net")
    lin_va, lin_te = _predict(model, x_va, "lin"), _predict(model, x_te, "lin")
    rows = np.unique(np.linspace(0, len(x_tr) - 1, min(len(x_tr), _OUTPUT_RANK_WINDOWS)).round().astype(int))
    blocks = np.array_split(np.arange(len(y_va)), N_BLOCKS)
    subj_te = np.array([ds.runs[i].subject for i in run_te])

    def test_scores(p: np.ndarray) -> dict:
        out = {}
        for s in np.unique(subj_te):
            k = subj_te == s
            yt, pt = y_te[k], p[k]
            yc, pc = yt - yt.mean(0), pt - pt.mean(0)
            den = np.sqrt((yc * yc).sum(0) * (pc * pc).sum(0))
            r = np.where(den > 0, (yc * pc).sum(0) / np.where(den > 0, den, 1.0), 0.0)
            out[str(s)] = {"median_r": float(np.median(r))}
            if labels is not None:
                out[str(s)]["roi_r"] = float(np.nanmedian(list(roi_r(yt, pt, labels).values())))
        return out

    doc = {"fit_seconds": fit_s, "w_chosen": w_chosen, "n_val": len(y_va), "blend": {}, "rank": {}, "voxel_blend": {}}
    r_grid = []
    for w in GRID:
        pv = (1 - w) * net_va + w * lin_va
        full, loo = jack(pv, y_va, blocks)
        doc["blend"][f"{w:.2f}"] = {"val": full, "loo": loo, "test": test_scores((1 - w) * net_te + w * lin_te)}
        r_grid.append(pearson_columns(pv, y_va, constant=0.0, clip=False))
    # a weight per output: the grid point of the best validation r of that output (with the grid of 5 or 21 weights)
    r_grid = np.array(r_grid)
    for name, sub in (("grid21", np.arange(len(GRID))), ("grid5", np.arange(0, len(GRID), 5))):
        wv = GRID[sub][np.argmax(r_grid[sub], axis=0)]
        doc["voxel_blend"][name] = {"test": test_scores((1 - wv) * net_te + wv * lin_te), "w_quantiles": np.quantile(wv, [0.1, 0.5, 0.9]).tolist()}
    # least-squares stacking per output on validation: y ~ a * net + b * lin (a, b >= 0 by clipping), then r of a*net + b*lin
    a_, b_ = [], []
    nc, lc, yc = net_va - net_va.mean(0), lin_va - lin_va.mean(0), y_va - y_va.mean(0)
    g11, g22, g12 = (nc * nc).sum(0), (lc * lc).sum(0), (nc * lc).sum(0)
    h1, h2 = (nc * yc).sum(0), (lc * yc).sum(0)
    det = g11 * g22 - g12 * g12
    ok = det > 1e-9 * np.maximum(g11 * g22, 1e-30)
    a_ = np.where(ok, (g22 * h1 - g12 * h2) / np.where(ok, det, 1.0), 0.5)
    b_ = np.where(ok, (g11 * h2 - g12 * h1) / np.where(ok, det, 1.0), 0.5)
    a_, b_ = np.clip(a_, 0, None), np.clip(b_, 0, None)
    tot = a_ + b_
    wv = np.where(tot > 0, b_ / np.where(tot > 0, tot, 1.0), w_chosen)
    doc["voxel_blend"]["stack_ls"] = {"test": test_scores((1 - wv) * net_te + wv * lin_te), "w_quantiles": np.quantile(wv, [0.1, 0.5, 0.9]).tolist()}
    # ranks on the chosen weight's prediction (the flagship's order: blend first, then rank)
    fitted = _predict(model, x_tr[rows], "lin")
    centre = fitted.mean(0)
    vt = leading_right_vectors(fitted - centre, min(_OUTPUT_RANKS[-1], len(rows) - 1, fitted.shape[1] - 1))
    # a blend weight per cluster of outputs (k-means of their loadings on the linear fit's leading components)
    from sklearn.cluster import KMeans

    load = vt[: min(8, len(vt))].T.astype(np.float64)
    load /= np.linalg.norm(load, axis=1, keepdims=True).clip(1e-12)
    for n_cl in (4, 8, 16):
        lab = KMeans(n_clusters=n_cl, n_init=4, random_state=0).fit_predict(load)
        wv = np.empty(load.shape[0])
        for c in range(n_cl):
            sel = lab == c
            wv[sel] = GRID[int(np.argmax(r_grid[:, sel].mean(1)))]
        doc["voxel_blend"][f"cluster{n_cl}"] = {"test": test_scores((1 - wv) * net_te + wv * lin_te), "w_quantiles": np.quantile(wv, [0.1, 0.5, 0.9]).tolist()}
    pv = (1 - w_chosen) * net_va + w_chosen * lin_va
    pt = (1 - w_chosen) * net_te + w_chosen * lin_te
    cv, ct = (pv - centre) @ vt.T, (pt - centre) @ vt.T
    r_full = pearson_columns(pv, y_va, constant=0.0, clip=False)
    order = np.argsort(-r_full)
    tops = {q: order[: max(1, int(round(q * len(order))))] for q in (0.01, 0.05, 0.1, 0.25)}
    # cross-fitted: the top voxels chosen on one half of the validation blocks (even / odd), scored on the other
    halves = [np.concatenate(blocks[h::2]) for h in (0, 1)]
    cross_tops = {}
    for h in (0, 1):
        rh = pearson_columns(pv[halves[h]], y_va[halves[h]], constant=0.0, clip=False)
        oh = np.argsort(-rh)
        for q in (0.05, 0.1, 0.25):
            cross_tops[(h, q)] = oh[: max(1, int(round(q * len(oh))))]
    for k in [None, *(k for k in _OUTPUT_RANKS if k <= len(vt))]:
        qv = pv if k is None else centre + cv[:, :k] @ vt[:k]
        qt = pt if k is None else centre + ct[:, :k] @ vt[:k]
        full, loo = jack(qv, y_va, blocks)
        r_k = pearson_columns(qv, y_va, constant=0.0, clip=False)
        r_h = [pearson_columns(qv[halves[1 - h]], y_va[halves[1 - h]], constant=0.0, clip=False) for h in (0, 1)]
        cross = {str(q): float(np.mean([r_h[h][cross_tops[(h, q)]].mean() for h in (0, 1)])) for q in (0.05, 0.1, 0.25)}
        doc["rank"][str(k)] = {"val": full, "loo": loo, "test": test_scores(qt), "top": {str(q): float(r_k[i].mean()) for q, i in tops.items()},
                               "cross_top": cross}
        # temporal smoothing of the prediction over consecutive windows of a run (EEG-only: no target enters it)
        doc["rank"][str(k)]["smooth"] = {name: {"val": jack(_smooth(qv, run_va, ker), y_va, blocks)[0], "test": test_scores(_smooth(qt, run_te, ker))}
                                         for name, ker in SMOOTHERS.items()}
    del torch
    return doc


def run(args) -> None:
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.preprocessing.atlas import load_labels
    from eeg2fmri.workflows.benchmark import _folds

    ds = load_prepared(args.prepared)
    labels = None if args.atlas is None else load_labels(args.atlas, ds.mask, ds.affine)
    doc = {"prepared": str(args.prepared), "atlas": args.atlas, "seed": args.seed, "protocols": {}}
    for proto in args.protocols:
        doc["protocols"][proto] = [run_fold(ds, split, labels, args) for split in _folds(ds, proto, 5, {})]
        print(proto, "done", flush=True)
    Path(args.out).write_text(json.dumps(doc, indent=1))


def _se(d_loo: np.ndarray) -> float:
    from eeg2fmri.utils.stats import jackknife_se

    return jackknife_se(d_loo)


#: Rules for the output rank, evaluated offline: (label, gain threshold in jackknife SEs, the full prediction's validation r
#: threshold in its SEs, floor of the chosen rank's validation r). "gain>1SE+r>=0.02" is choice_rule="guarded".
RULES = [("best", None, None, None), ("gain>1SE", 1.0, None, None), ("gain>1.5SE", 1.5, None, None), ("gain>2SE", 2.0, None, None),
         ("full>2SE", None, 2.0, None), ("gain>1SE+full>2SE", 1.0, 2.0, None), ("r>=0.02", None, None, 0.02),
         ("gain>1SE+r>=0.02", 1.0, None, 0.02)]


def choose(cands: dict, gain_se: float | None, signal_se: float | None, floor: float | None) -> str:
    """argmax of validation r, unless a condition keeps the full prediction ("None")."""
    best = max(cands, key=lambda k: cands[k]["val"])
    full = cands["None"]
    if best == "None":
        return best
    if gain_se is not None and not cands[best]["val"] - full["val"] > gain_se * _se(np.array(cands[best]["loo"]) - np.array(full["loo"])):
        return "None"
    if signal_se is not None and not full["val"] > signal_se * _se(np.array(full["loo"])):
        return "None"
    if floor is not None and not cands[best]["val"] >= floor:
        return "None"
    return best


def table(paths: list[str]) -> None:
    """Test r of each rank rule minus the full prediction's, per dataset and protocol (mean over folds and test subjects)."""
    agg: dict = {}
    print(f"{'dataset':22s} {'proto':6s} {'metric':8s} {'full':>6s} " + " ".join(f"{r[0]:>20s}" for r in RULES))
    for p in paths:
        doc = json.loads(Path(p).read_text())
        for proto, folds in doc["protocols"].items():
            for metric in ("median_r", "roi_r") if doc.get("atlas") else ("median_r",):
                def test(f, k, metric=metric):
                    return [s[metric] for s in f["rank"][k]["test"].values()]

                full = np.mean([v for f in folds for v in test(f, "None")])
                cells = []
                for label, g, sig, fl in RULES:
                    picks = [choose(f["rank"], g, sig, fl) for f in folds]
                    d = np.mean([v for f, k in zip(folds, picks) for v in test(f, k)]) - full
                    agg.setdefault((metric, label), []).append(d)
                    cells.append(f"{d:+.3f} ({','.join('-' if k == 'None' else k for k in picks)})")
                print(f"{Path(p).stem:22s} {proto:6s} {metric:8s} {full:6.3f} " + " ".join(f"{c:>20s}" for c in cells))
    print("\nrule minus full rank, over dataset x protocol: mean / worst")
    for metric in ("median_r", "roi_r"):
        if (metric, "best") in agg:
            print(f"  {metric:8s} " + "  ".join(f"{r[0]}: {np.mean(agg[(metric, r[0])]):+.4f}/{np.min(agg[(metric, r[0])]):+.4f}" for r in RULES)
                  + f"  (n={len(agg[(metric, 'best')])})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepared")
    ap.add_argument("--atlas")
    ap.add_argument("--protocols", nargs="+", default=["within", "loso"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--out")
    ap.add_argument("--table", nargs="+")
    a = ap.parse_args()
    if a.table:
        table(a.table)
    else:
        run(a)
