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
    if args.save_preds:  # everything a validation criterion needs, evaluated offline by --criteria
        fitted = _predict(model, x_tr[rows], "lin")
        centre = fitted.mean(0)
        vt = leading_right_vectors(fitted - centre, min(_OUTPUT_RANKS[-1], len(rows) - 1, fitted.shape[1] - 1))
        args._n_saved = getattr(args, "_n_saved", 0) + 1
        np.savez(Path(args.save_preds) / f"{args._proto}_{args._n_saved - 1}.npz", net_va=net_va, lin_va=lin_va, y_va=y_va.astype(np.float32),
                 net_te=net_te, lin_te=lin_te, y_te=y_te.astype(np.float32), subj_te=subj_te.astype(str), run_va=run_va, run_te=run_te,
                 vt=np.asarray(vt, dtype=np.float32), centre=centre, w_chosen=w_chosen, labels=np.zeros(0) if labels is None else labels)
        return {"fit_seconds": fit_s, "w_chosen": w_chosen, "saved": args._n_saved - 1}

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
    if args.save_preds:
        Path(args.save_preds).mkdir(parents=True, exist_ok=True)
    for proto in args.protocols:
        args._proto, args._n_saved = proto, 0
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


# ---------------------------------------------------------------------------------------------------------------------
# Validation criteria weighted by where the signal is (session 18), evaluated offline from --save-preds folders.
#
# The flagship scores its blend weight and its output rank by the validation mean voxel r over the whole mask. With a
# focal signal that mean is mostly noise voxels. A signal-weighted criterion weights each voxel's validation r by how
# predictable the voxel is, measured on the *other* half of the validation windows (cross-fitted: blocks 0, 2, 4, 6
# vs 1, 3, 5, 7) by a reference that is neither candidate (the equal blend of the network and the linear path), so a
# voxel's weight does not share the noise of the r it weights.


def _r(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    from eeg2fmri.utils.stats import pearson_columns

    return pearson_columns(p, y, constant=0.0, clip=False)


class Criteria:
    """The validation criteria of one fold: ``score(p, name)`` -> a scalar to maximise."""

    def __init__(self, ref: np.ndarray, y: np.ndarray) -> None:
        blocks = np.array_split(np.arange(len(y)), N_BLOCKS)
        self.y = y
        self.halves = [np.concatenate(blocks[h::2]) for h in (0, 1)]
        self.ref_h = [np.clip(_r(ref[i], y[i]), 0.0, None) for i in self.halves]
        self.ref = np.clip(_r(ref, y), 0.0, None)

    def weights(self, power: float, h: int | None) -> np.ndarray:
        a = (self.ref if h is None else self.ref_h[1 - h]) ** power
        return a / a.sum() if a.sum() > 0 else np.full(len(a), 1.0 / len(a))

    def halves_scores(self, p: np.ndarray, power: float) -> list[float]:
        return [float(self.weights(power, h) @ _r(p[i], self.y[i])) for h, i in enumerate(self.halves)]

    def score(self, p: np.ndarray, name: str) -> float:
        if name == "mean":
            return float(_r(p, self.y).mean())
        if name.startswith("x"):  # "x1", "x2": cross-fitted, weights |ref r|_+ ** power
            return float(np.mean(self.halves_scores(p, float(name[1:]))))
        return float(self.weights(float(name[1:]), None) @ _r(p, self.y))  # "w1", "w2": weights from the same windows


#: blend criteria: "mean" (the package's), cross-fitted "x1"/"x2", same-window "w1"/"w2", and "cK": a weight per
#: k-means cluster (K clusters of the outputs' loadings on the linear fit's leading 8 components), each by its mean r
BLEND_CRITERIA = ["mean", "x1", "x2", "w1", "w2", "c4", "c8"]
#: "n1": w = 1 (the linear path alone) where the best weight's validation mean r is below 0.02 (noise level); "g1": also
#: where its gain over w = 1 is within one jackknife SE (the rank guard's rule applied to the blend weight)
#: rank rules: (label, criterion of the argmax, guard). Guards: "se" = the package's guarded rule (mean voxel r >= 0.02,
#: gain > 1 jackknife SE); "veto:x2" = the guarded choice, then the full prediction kept if the cross-fitted weighted
#: criterion falls; "halves" = the rank must beat the full prediction on both halves of the cross-fitted criterion.
RANK_RULES = [("full", None, None), ("guarded", "mean", "se"), ("guarded+veto:x2", "mean", "veto:x2"), ("guarded+veto:w2", "mean", "veto:w2"),
              ("x2+halves", "x2", "halves")]


def _cluster_weights(vt: np.ndarray, r_grid: np.ndarray, n_cl: int) -> np.ndarray:
    """A blend weight per output: the grid weight of the best mean validation r in its k-means cluster of loadings."""
    from sklearn.cluster import KMeans

    load = vt[: min(8, len(vt))].T.astype(np.float64)
    load /= np.linalg.norm(load, axis=1, keepdims=True).clip(1e-12)
    lab = KMeans(n_clusters=n_cl, n_init=4, random_state=0).fit_predict(load)
    wv = np.empty(load.shape[0])
    for c in range(n_cl):
        wv[lab == c] = GRID[int(np.argmax(r_grid[:, lab == c].mean(1)))]
    return wv


def _fold_rules(z) -> dict:
    """Test scores (per subject: median voxel r, ROI r) of every (blend criterion, rank rule) pair on one saved fold."""
    from eeg2fmri.evaluation.metrics.correlation import roi_r
    from eeg2fmri.models.flagship import _CHOICE_BLOCKS, _OUTPUT_RANKS, _rank_guard
    from eeg2fmri.utils.stats import jackknife_mean_r, jackknife_se

    net_va, lin_va, y_va = z["net_va"], z["lin_va"], z["y_va"]
    net_te, lin_te, y_te, subj = z["net_te"], z["lin_te"], z["y_te"], z["subj_te"]
    vt, centre = z["vt"], z["centre"]
    labels = z["labels"] if z["labels"].size else None
    crit = Criteria(0.5 * net_va + 0.5 * lin_va, y_va)

    def test(p: np.ndarray) -> dict:
        out = {}
        for s in np.unique(subj):
            k = subj == s
            out[str(s)] = {"median_r": float(np.median(_r(p[k], y_te[k])))}
            if labels is not None:
                out[str(s)]["roi_r"] = float(np.nanmedian(list(roi_r(y_te[k], p[k], labels).values())))
        return out

    res = {}
    r_grid = None
    for bc in BLEND_CRITERIA:
        if bc.startswith("c"):
            if r_grid is None:
                r_grid = np.array([_r((1 - w) * net_va + w * lin_va, y_va) for w in GRID])
            w = _cluster_weights(vt, r_grid, int(bc[1:]))
        elif bc in ("g1", "n1"):  # the linear path (w = 1) unless the network earns its place on validation
            scored = [jackknife_mean_r((1 - w) * net_va + w * lin_va, y_va, _CHOICE_BLOCKS) for w in GRID]
            i = int(np.argmax([v for v, _ in scored]))
            w = float(GRID[i])
            if scored[i][0] < 0.02 or (bc == "g1" and not scored[i][0] - scored[-1][0] > jackknife_se(scored[i][1], scored[-1][1])):
                w = 1.0
        else:
            w = float(GRID[int(np.argmax([crit.score((1 - w) * net_va + w * lin_va, bc) for w in GRID]))])
        pv, pt = (1 - w) * net_va + w * lin_va, (1 - w) * net_te + w * lin_te
        cv, ct = (pv - centre) @ vt.T, (pt - centre) @ vt.T
        ranks = [None, *(k for k in _OUTPUT_RANKS if k <= len(vt))]
        cand_v = {k: pv if k is None else centre + cv[:, :k] @ vt[:k] for k in ranks}
        for label, cname, guard in RANK_RULES:
            k = None
            if cname is not None:
                scores = {kk: crit.score(q, cname) for kk, q in cand_v.items()}
                k = max(ranks, key=lambda kk: scores[kk])  # ties: the first (full rank)
                if k is not None and guard == "se" or (guard or "").startswith("veto"):
                    full, loo_f = jackknife_mean_r(cand_v[None], y_va, _CHOICE_BLOCKS)
                    if k is not None:
                        r_k, loo_k = jackknife_mean_r(cand_v[k], y_va, _CHOICE_BLOCKS)
                        if _rank_guard(k, r_k, full, jackknife_se(loo_k, loo_f)) is not None:
                            k = None
                    if k is not None and guard.startswith("veto") and crit.score(cand_v[k], guard[5:]) < crit.score(cand_v[None], guard[5:]):
                        k = None
                elif k is not None and guard == "halves":
                    pw = float(cname[1:])
                    if not all(a > b for a, b in zip(crit.halves_scores(cand_v[k], pw), crit.halves_scores(cand_v[None], pw))):
                        k = None
            res[f"{bc}|{label}"] = {"w": float(np.median(w)), "k": k, "test": test(pt if k is None else centre + ct[:, :k] @ vt[:k])}
    return res


def criteria_table(folders: list[str]) -> None:
    """Per dataset and protocol: test median voxel r (and ROI r) of each rule pair minus the package's current pair
    (mean | guarded), mean over folds and test subjects; then mean / worst over datasets."""
    import glob

    base = "mean|guarded"
    pairs = [f"{b}|{r[0]}" for b in BLEND_CRITERIA for r in RANK_RULES]
    agg: dict = {}
    for folder in folders:
        files = sorted(glob.glob(str(Path(folder) / "*.npz")))
        by_proto: dict = {}
        for f in files:
            with np.load(f, allow_pickle=False) as z:
                by_proto.setdefault(Path(f).stem.split("_")[0], []).append(_fold_rules(z))
        for proto, folds in by_proto.items():
            metrics = ["median_r"] + (["roi_r"] if "roi_r" in next(iter(folds[0][base]["test"].values())) else [])
            for metric in metrics:
                def mean_test(pair: str, metric: str = metric, folds: list = folds) -> float:
                    return float(np.mean([s[metric] for f in folds for s in f[pair]["test"].values()]))

                b = mean_test(base)
                ds = f"{Path(folder).name}:{proto}:{metric}"
                print(f"{ds:34s} base {b:.3f}  " + "  ".join(f"{p}={mean_test(p) - b:+.3f}" for p in pairs if p != base), flush=True)
                print(f"{'':34s} choices " + "  ".join(f"{p}=" + ",".join(f"{f[p]['w']:.2f}/{f[p]['k'] or '-'}" for f in folds)
                                                       for p in (base, *pairs[:2]) if p in pairs), flush=True)
                for p in pairs:
                    agg.setdefault((metric, p), []).append(mean_test(p) - b)
    print("\npair minus mean|guarded over dataset x protocol: mean / worst / best")
    for metric in ("median_r", "roi_r"):
        for p in pairs:
            if (metric, p) in agg:
                v = np.array(agg[(metric, p)])
                print(f"  {metric:8s} {p:24s} {v.mean():+.4f} / {v.min():+.4f} / {v.max():+.4f}  (n={len(v)})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepared")
    ap.add_argument("--atlas")
    ap.add_argument("--protocols", nargs="+", default=["within", "loso"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--out")
    ap.add_argument("--table", nargs="+")
    ap.add_argument("--save-preds", help="a folder: save each fold's validation/test predictions (network, linear path) and targets "
                    "instead of scoring the rules here (see --criteria)")
    ap.add_argument("--criteria", nargs="+", help="folders written by --save-preds: the blend/rank criteria's test scores")
    ap.add_argument("--blend", nargs="+", help="blend criteria scored by --criteria (default: every one of BLEND_CRITERIA)")
    ap.add_argument("--rank", nargs="+", help="rank rules scored by --criteria (default: every one of RANK_RULES)")
    a = ap.parse_args()
    if a.table:
        table(a.table)
    elif a.criteria:
        if a.blend:
            BLEND_CRITERIA[:] = a.blend
        if a.rank:
            RANK_RULES[:] = [r for r in RANK_RULES if r[0] in a.rank]
        criteria_table(a.criteria)
    else:
        run(a)
