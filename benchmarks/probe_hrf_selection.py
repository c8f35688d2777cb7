"""Which criterion picks ridge_hrf's HRF basis that gives the best held-out ROI r? (design probe, session 27)

For every LOSO fold (validation: the next subject held out whole) ridge_hrf is fitted with each basis (canonical, SPM
informed basis, FIR lags) on the training subjects; printed per fold (one JSON line): the basis each criterion picks on
the validation subject -- whole-mask MSE (``mse``: ridge_hrf's default rule), the ROI r with the true atlas
(``roival``: what the validation data can tell), and on supervoxels (cubes of b^3 voxels; the 10 with the highest
validation R^2, ``top10``, or every one above R^2 0.1, ``r2``) by summed normalised squared error and, ``_corr``, by
mean correlation -- next to the test subject's ROI r per basis (``roi_mean_driven``: mean of the 4 best ROIs).

    python benchmarks/probe_hrf_selection.py PREPARED ATLAS > out.jsonl

Results: benchmarks/results/design_hrf_select.txt.
"""

from __future__ import annotations

import json
import sys
import warnings

import numpy as np


def block_means(a: np.ndarray, blk: np.ndarray, n_blocks: int, count: np.ndarray) -> np.ndarray:
    """(n_times, n_voxels) -> (n_times, n_blocks): the mean over each block's voxels."""
    out = np.zeros((a.shape[0], n_blocks))
    np.add.at(out.T, blk, a.T)
    return out / count


def main(prep: str, atlas: str) -> None:
    from eeg2fmri.datasets import load_prepared
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.datasets.windows import window_matrix
    from eeg2fmri.training import fit_model
    from eeg2fmri.workflows.explain import atlas_labels

    warnings.simplefilter("ignore")
    ds = load_prepared(prep)
    lab = atlas_labels(atlas, ds.mask, ds.affine)
    rois = [v for v in np.unique(lab) if v > 0]
    subs = sorted({r.subject for r in ds.runs})
    ijk = np.argwhere(ds.mask)
    for fi, s in enumerate(subs):
        sp = make_split(ds, "subjects", test_subjects=[s], val_subjects=[subs[(fi + 1) % len(subs)]])
        tg = split_targets(ds, sp)
        yv = np.concatenate([tg["val"][k] for k in sorted(sp.selections["val"])]).astype(np.float64)
        yt = np.concatenate([tg["test"][k] for k in sorted(sp.selections["test"])])
        xv = window_matrix(ds, sp.selections["val"], sp.n_frames, sp.lag)[0]
        xt = window_matrix(ds, sp.selections["test"], sp.n_frames, sp.lag)[0]
        res = {}
        for h in ("canonical", "basis", "lags"):
            m = fit_model(ds, sp, "ridge_hrf", {"hrf": h}, targets=tg, progress_bar=False).model
            p = m.predict(xv).reshape(len(xv), -1).astype(np.float64)
            pt = m.predict(xt).reshape(len(xt), -1)
            res[h] = {"P": p, "mse": float(((yv - p) ** 2).mean()),
                      "test": [float(np.corrcoef(pt[:, lab == v].mean(1), yt[:, lab == v].mean(1))[0, 1]) for v in rois],
                      "val": [float(np.corrcoef(p[:, lab == v].mean(1), yv[:, lab == v].mean(1))[0, 1]) for v in rois]}
        row = {"fold": fi, "mse": min(res, key=lambda h: res[h]["mse"]),
               "roival": {h: round(float(np.mean(np.sort(r["val"])[-4:])), 3) for h, r in res.items()},
               "roi_mean_driven": {h: round(float(np.mean(np.sort(r["test"])[-4:])), 3) for h, r in res.items()}}
        for b in (2, 3, 4):
            blk = np.unique(ijk // b, axis=0, return_inverse=True)[1].reshape(-1)
            nb = int(blk.max()) + 1
            cnt = np.bincount(blk, minlength=nb).astype(float)
            yb = block_means(yv, blk, nb, cnt)
            yb -= yb.mean(0)
            pb = {h: (lambda q: q - q.mean(0))(block_means(r["P"], blk, nb, cnt)) for h, r in res.items()}
            sst = (yb ** 2).sum(0)
            sse = {h: ((yb - q) ** 2).sum(0) for h, q in pb.items()}
            r2 = np.max(np.stack([1 - sse[h] / sst for h in res]), 0)
            for name, keep in (("top10", np.argsort(-r2)[:10]), ("r2", np.flatnonzero(r2 > 0.1))):
                if not len(keep):
                    continue
                err = {h: float((sse[h][keep] / sst[keep]).sum()) for h in res}
                cor = {h: float(np.mean([(yb[:, j] @ q[:, j]) / np.sqrt((yb[:, j] @ yb[:, j]) * (q[:, j] @ q[:, j]) + 1e-12) for j in keep]))
                       for h, q in pb.items()}
                row[f"blk{b}{name}"] = f"{min(err, key=err.get)}({len(keep)})"
                row[f"blk{b}{name}_corr"] = max(cor, key=cor.get) + "".join(f" {h[:3]}={v:.3f}" for h, v in cor.items())
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
