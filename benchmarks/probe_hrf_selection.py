"""Which criterion picks ridge_hrf's HRF basis that gives the best held-out ROI r? (design probe, session 27)

For every LOSO fold (validation: the next subject held out whole) ridge_hrf is fitted with each basis (canonical, SPM
informed basis, FIR lags) on the training subjects; printed per fold (one JSON line): the basis each criterion picks on
the validation subject -- whole-mask MSE (``mse``: ridge_hrf's rule), the ROI r with the true atlas (``roival``: an
oracle of what the validation data can tell), and on supervoxels (cubes of b^3 voxels; the 10 with the highest validation
R^2 (``top10``) or every one above R^2 0.1 (``r2``)) by summed normalised squared error and, ``_corr``, by mean
correlation -- next to the test subject's ROI r per basis (``roi``, ``roi_mean_driven``: mean of the 4 best ROIs).

    python benchmarks/probe_hrf_selection.py PREPARED ATLAS loso > out.jsonl

Results: benchmarks/results/design_hrf_select.txt.
"""
import sys, json, numpy as np, warnings
warnings.simplefilter("ignore")
from eeg2fmri.datasets import load_prepared
from eeg2fmri.datasets.targets import make_split, split_targets
from eeg2fmri.datasets.windows import window_matrix
from eeg2fmri.training import fit_model
from eeg2fmri.workflows.explain import atlas_labels

prep, atlas, protocol = sys.argv[1], sys.argv[2], sys.argv[3]
ds = load_prepared(prep)
lab = atlas_labels(atlas, ds.mask, ds.affine)
subs = sorted({r.subject for r in ds.runs})
folds = []
if protocol == "loso":
    for i, s in enumerate(subs):
        folds.append(make_split(ds, "subjects", test_subjects=[s], val_subjects=[subs[(i + 1) % len(subs)]]))
else:
    folds.append(make_split(ds, "within"))
def stack(d, sel):
    return np.concatenate([d[k] for k in sorted(sel)])
out = []
for fi, sp in enumerate(folds):
    tg = split_targets(ds, sp)
    yv = stack(tg["val"], sp.selections["val"]); yt = stack(tg["test"], sp.selections["test"])
    xt, _, _ = window_matrix(ds, sp.selections["test"], sp.n_frames, sp.lag)
    xv, _, _ = window_matrix(ds, sp.selections["val"], sp.n_frames, sp.lag)
    res = {}
    xtr, _, _ = window_matrix(ds, sp.selections["train"], sp.n_frames, sp.lag)
    for h in ("canonical", "basis", "lags"):
        f = fit_model(ds, sp, "ridge_hrf", {"hrf": h}, targets=tg, progress_bar=False)
        m = f.model
        P = m.predict(xv).reshape(len(xv), -1).astype(np.float64)
        R = yv - P
        pt = m.predict(xt).reshape(len(xt), -1)
        roi = []
        for v in np.unique(lab[lab > 0]):
            a, b = pt[:, lab == v].mean(1), yt[:, lab == v].mean(1)
            roi.append(np.corrcoef(a, b)[0, 1])
        rv = []
        for v in np.unique(lab[lab > 0]):
            rv.append(np.corrcoef(P[:, lab == v].mean(1), yv[:, lab == v].mean(1))[0, 1])
        res[h] = dict(P=P, R=R, roi=np.array(roi), mse=float((R ** 2).mean()), roival=np.array(rv))
        if h == "canonical":
            ptr = m.predict(xtr[::3]).reshape(len(xtr[::3]), -1).astype(np.float64)
    # criterion: residuals projected on the top-k subspace of the bases' validation predictions
    Pall = np.concatenate([res[h]["P"] - res[h]["P"].mean(0) for h in res])
    _, s, vt = np.linalg.svd(Pall, full_matrices=False)
    row = {"fold": fi}
    for k in (1, 3, 5, 10):
        U = vt[:k].T
        sc = {h: float(((res[h]["R"] @ U) ** 2).sum()) for h in res}
        row[f"sub{k}"] = min(sc, key=sc.get)
        row[f"sub{k}_scores"] = {h: round(v, 2) for h, v in sc.items()}
    from sklearn.cluster import KMeans
    z = ptr - ptr.mean(0); sd = z.std(0); strong = np.argsort(-sd)[: max(50, len(sd) // 20)]  # the most-predicted 5 %
    zz = (z[:, strong] / sd[strong]).T
    row["roival"] = {h: round(float(np.mean(np.sort(res[h]["roival"])[-4:])), 3) for h in res}
    ijk = np.argwhere(ds.mask)
    for bsz in (2, 3, 4):
        key = ijk // bsz
        _, blk = np.unique(key, axis=0, return_inverse=True)
        blk = blk.ravel(); nb = blk.max() + 1
        cnt = np.bincount(blk, minlength=nb).astype(float)
        def bmean(A):
            out = np.zeros((A.shape[0], nb))
            for t in range(A.shape[0]):
                out[t] = np.bincount(blk, weights=A[t], minlength=nb) / cnt
            return out
        Yb = bmean(yv)
        Yb = Yb - Yb.mean(0)
        sst = (Yb ** 2).sum(0)
        sse = {h: ((Yb - (lambda Pb: Pb - Pb.mean(0))(bmean(res[h]["P"]))) ** 2).sum(0) for h in res}
        r2 = np.max(np.stack([1 - sse[h] / sst for h in res]), 0)
        for nm, keep in (("top10", np.argsort(-r2)[:10]), ("r2", np.flatnonzero(r2 > 0.1))):
            if not len(keep):
                row[f"blk{bsz}{nm}"] = None; continue
            sc = {h: round(float((sse[h][keep] / sst[keep]).sum()), 3) for h in res}
            row[f"blk{bsz}{nm}"] = min(sc, key=sc.get) + f"({len(keep)})"
            cc = {}
            for h in res:
                Pb = bmean(res[h]["P"]); Pb = Pb - Pb.mean(0)
                cc[h] = float(np.mean([(Yb[:, j] @ Pb[:, j]) / np.sqrt((Yb[:, j] @ Yb[:, j]) * (Pb[:, j] @ Pb[:, j]) + 1e-12) for j in keep]))
            row[f"blk{bsz}{nm}_corr"] = max(cc, key=cc.get) + "".join(f" {h[:3]}={v:.3f}" for h, v in cc.items())
    for kc in ():
        cl = KMeans(kc, n_init=4, random_state=0).fit_predict(zz)
        sc = {}
        for h in res:
            tot = 0.0
            for c in range(kc):
                vox = strong[cl == c]
                yc, pc = yv[:, vox].mean(1), res[h]["P"][:, vox].mean(1)
                tot += ((yc - pc) ** 2).sum() / ((yc - yc.mean()) ** 2).sum()
            sc[h] = round(float(tot), 3)
        row[f"clu{kc}"] = min(sc, key=sc.get); row[f"clu{kc}_scores"] = sc
    row["mse"] = min(res, key=lambda h: res[h]["mse"])
    row["mse_scores"] = {h: round(res[h]["mse"], 5) for h in res}
    row["roi_mean_driven"] = {h: round(float(np.nanmean(np.sort(res[h]["roi"])[-4:])), 3) for h in res}
    row["roi"] = {h: [round(x, 3) for x in res[h]["roi"]] for h in res}
    print(json.dumps(row), flush=True)
