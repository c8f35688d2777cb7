"""Figures and a Markdown report for an evaluation (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_slices", "plot_timecourses", "write_report"]


def _unmask(mask: np.ndarray, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
    vol = np.full(mask.shape, fill, dtype=np.float32)
    vol[mask] = values
    return vol


def plot_slices(mask: np.ndarray, measured: np.ndarray, predicted: np.ndarray, r: np.ndarray, out: Path, title: str = "") -> Path:
    """Axial slices of measured vs predicted BOLD at one time point, and the r map.

    Parameters
    ----------
    mask : array of bool, shape (X, Y, Z)
    measured, predicted : array, shape (n_voxels,)
        One volume in standardised units.
    r : array, shape (n_voxels,)
        Voxel-wise test r.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    zs = np.where(mask.any(axis=(0, 1)))[0]
    picks = zs[(np.linspace(0.25, 0.75, 3) * (len(zs) - 1)).astype(int)] if len(zs) else [mask.shape[2] // 2]
    rows = [("measured", _unmask(mask, measured), "RdBu_r", 2.5), ("predicted", _unmask(mask, predicted), "RdBu_r", 2.5), ("test r", _unmask(mask, r), "RdBu_r", 0.6)]
    fig, axes = plt.subplots(3, len(picks), figsize=(3 * len(picks), 8.5))
    for i, (name, vol, cmap, lim) in enumerate(rows):
        for j, z in enumerate(picks):
            ax = axes[i, j]
            im = ax.imshow(np.rot90(vol[:, :, z]), cmap=cmap, vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0:
                ax.set_ylabel(name)
            if i == 0:
                ax.set_title(f"z={z}")
        fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.8)
    fig.suptitle(title)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def plot_timecourses(measured: np.ndarray, predicted: np.ndarray, r: np.ndarray, tr: float, out: Path, title: str = "") -> Path:
    """Measured vs predicted time courses of voxels at the 90th, 50th and 10th percentile of r."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = np.where(np.isfinite(r))[0]
    order = ok[np.argsort(r[ok])]
    picks = [(q, order[int(q / 100 * (len(order) - 1))]) for q in (90, 50, 10)]
    t = np.arange(measured.shape[0]) * tr
    fig, axes = plt.subplots(len(picks), 1, figsize=(8, 6), sharex=True)
    for ax, (q, v) in zip(axes, picks):
        ax.plot(t, measured[:, v], color="k", lw=1, label="measured")
        ax.plot(t, predicted[:, v] / max(predicted[:, v].std(), 1e-6) * measured[:, v].std(), color="C3", lw=1, label="predicted (rescaled)")
        ax.set_ylabel(f"p{q}: r={r[v]:.2f}")
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time in test span (s)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def write_report(out_dir: Path, table: str, figures: list[Path], metrics: dict[str, Any], title: str = "eeg2fmri report") -> Path:
    """Write ``report.md`` with the summary table and figures."""
    lines = [f"# {title}", "", "All numbers are measured on held-out test data (see the protocol below).", "", "```", table, "```", ""]
    for f in figures:
        lines += [f"![{f.stem}]({f.name})", ""]
    lines += ["## Protocol", "", f"- protocol: {metrics.get('protocol')}", f"- split: {metrics.get('split')}", ""]
    p = out_dir / "report.md"
    p.write_text("\n".join(lines))
    return p
