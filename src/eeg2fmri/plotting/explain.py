"""Figures of model explanations: channel topomaps (MNE), band bars, lag curves, spatial patterns, HRFs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from eeg2fmri.plotting.report import _plt, fit_title
from eeg2fmri.utils.validation import Eeg2fmriInputError

__all__ = ["NoChannelPositions", "plot_attention_graph", "plot_channel_topomaps", "plot_hrfs", "plot_importance_bars", "plot_lag_curves"]

#: Fewest channels with positions that a topomap is drawn from.
MIN_POSITIONS = 3


class NoChannelPositions(Eeg2fmriInputError):
    """The montage gives positions for too few of the channels to draw a topomap."""


def _info(ch_names: list[str], montage: Any) -> tuple[Any, np.ndarray]:
    """An MNE Info with positions for the channels the montage knows, and their indices."""
    import mne

    from eeg2fmri.io.channel_names import channel_key

    pos = montage.get_positions()["ch_pos"]
    lower = {k.lower(): k for k in pos}
    # then as prepare matches names: EDF-style "EEG Fp1-REF" is the montage's Fp1 (user test 13: no topomap was drawn)
    for k in pos:
        lower.setdefault(channel_key(k), k)
    lower.update({c.lower(): lower[channel_key(c)] for c in ch_names if c.lower() not in lower and channel_key(c) in lower})
    used: set = set()
    keep_list = []
    for i, c in enumerate(ch_names):  # one channel per montage position (two spellings of Fp1: the first; MNE refuses overlaps)
        site = lower.get(c.lower())
        if site is not None and site not in used:
            used.add(site)
            keep_list.append(i)
    keep = np.array(keep_list, dtype=int)
    if len(keep) < MIN_POSITIONS:
        shown = ", ".join(ch_names[:6]) + (", ..." if len(ch_names) > 6 else "")
        raise NoChannelPositions(
            f"channel positions: expected positions for at least {MIN_POSITIONS} of the {len(ch_names)} channels ({shown}), found "
            f"{len(keep)} in the montage; add the BIDS *_electrodes.tsv next to the EEG files, or pass an MNE standard montage "
            "that names these channels (eeg2fmri explain --montage NAME; evaluate and report place channels by their 10-05 names).")
    names = [ch_names[i] for i in keep]
    info = mne.create_info(names, 100.0, "eeg")
    ch_pos = {n: pos[lower[n.lower()]] for n in names}
    import warnings

    with warnings.catch_warnings():  # positions already in head coordinates: no fiducials are needed to place them
        warnings.filterwarnings("ignore", message="Fiducial point", category=RuntimeWarning)
        info.set_montage(mne.channels.make_dig_montage(ch_pos=ch_pos, coord_frame="head"), on_missing="ignore")
    return info, keep


def plot_channel_topomaps(maps: np.ndarray, ch_names: list[str], montage: Any, out: Path, titles: list[str], *, suptitle: str = "",
                          n_cols: int = 4, cmap: str = "RdBu_r", symmetric: bool = True, unit: str = "") -> Path:
    """Topomaps (``mne.viz.plot_topomap``) of channel values.

    Parameters
    ----------
    maps : array, shape (n_maps, n_chans)
    ch_names : list of str, length n_chans
    montage : mne.channels.DigMontage
        Positions (channels it lacks are left out of the maps).
    out : Path
        PNG written.
    titles : list of str, length n_maps
    symmetric : bool
        Colour limits symmetric around 0 (patterns) or from 0 (importances).
    unit : str
        Label of each map's colour bar (what its values are).

    Returns
    -------
    Path
    """
    import mne

    plt = _plt()
    maps = np.atleast_2d(np.asarray(maps, dtype=float))
    info, keep = _info(list(ch_names), montage)
    n = len(maps)
    cols = min(n_cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.6, 2.4 * cols), 2.5 * rows + 0.6), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.axis("off")
            continue
        v = maps[i, keep]
        lim = float(np.nanmax(np.abs(v))) or 1.0
        vlim = (-lim, lim) if symmetric else (0.0, lim)
        im, _ = mne.viz.plot_topomap(v, info, axes=ax, show=False, cmap=cmap if symmetric else "viridis", vlim=vlim, contours=0, sensors=True)
        cb = fig.colorbar(im, ax=ax, shrink=0.7, pad=0.02)  # (user test 9: maps without a scale)
        cb.ax.tick_params(labelsize=6)
        if unit:
            cb.set_label(unit, fontsize=6)
        ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(fit_title(fig, suptitle, 9), fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90, bbox_inches="tight")  # (the suptitle's lines included)
    plt.close(fig)
    return out


def plot_importance_bars(values: dict[str, np.ndarray], names: list[str], out: Path, title: str = "", ylabel: str = "share of |attribution|") -> Path:
    """Grouped bars, one group per name (band), one bar per method.

    Parameters
    ----------
    values : dict of str -> array, shape (n_names,)
    names : list of str
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(3.5, 0.7 * len(names) * max(1, len(values)) + 1.5), 3.0))
    w = 0.8 / max(1, len(values))
    for j, (lab, v) in enumerate(values.items()):
        ax.bar(np.arange(len(names)) + j * w - 0.4 + w / 2, v, width=w, label=lab)
    ax.set_xticks(np.arange(len(names)), names, rotation=30 if len(names) > 8 else 0, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(fit_title(ax.figure, title, 9, share=ax.get_position().width), fontsize=9)
    if len(values) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_lag_curves(lag_s: np.ndarray, values: dict[str, np.ndarray], out: Path, title: str = "") -> Path:
    """Importance per lag (seconds before the end of the target volume), one curve per method."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.5, 3.0))
    for lab, v in values.items():
        ax.plot(lag_s, v, marker="o", ms=3, label=lab)
    ax.set_xlabel("lag: seconds before the end of the volume", fontsize=8)
    ax.set_ylabel("share of |attribution|", fontsize=8)
    ax.invert_xaxis()
    ax.set_title(fit_title(ax.figure, title, 9, share=ax.get_position().width), fontsize=9)
    if len(values) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_hrfs(lag_s: np.ndarray, kernels: np.ndarray, band_names: list[str], out: Path, title: str = "") -> Path:
    """Learned haemodynamic kernels per band: every source (thin) and the band mean (thick).

    Parameters
    ----------
    lag_s : array, shape (n_frames,)
    kernels : array, shape (n_members, n_bands, n_sources, n_frames)
    """
    plt = _plt()
    k = np.asarray(kernels)
    fig, ax = plt.subplots(figsize=(4.8, 3.0))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for f, name in enumerate(band_names):
        c = colours[f % len(colours)]
        for curve in k[:, f].reshape(-1, k.shape[-1]):
            ax.plot(lag_s, curve, color=c, alpha=0.08, lw=0.6)
        ax.plot(lag_s, k[:, f].reshape(-1, k.shape[-1]).mean(0), color=c, lw=2, label=name)
    ax.set_xlabel("lag (s)", fontsize=8)
    ax.set_ylabel("weight", fontsize=8)
    ax.set_title(fit_title(ax.figure, title, 9, share=ax.get_position().width), fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def plot_attention_graph(attention: np.ndarray, ch_names: list[str], montage: Any, out: Path, *, n_edges: int = 30, title: str = "") -> Path:
    """calhas2022's attention graph: the channel x channel matrix and its strongest edges on the scalp.

    Parameters
    ----------
    attention : array, shape (n_chans, n_chans)
        Mean attention (row ``i``: weights of electrode ``i``'s new representation over
        the electrodes; rows sum to one).
    ch_names : list of str
    montage : mne.channels.DigMontage
        Positions; channels it does not know are left out of the scalp panel.
    out : Path
        PNG to write.
    n_edges : int
        Off-diagonal edges drawn on the scalp (the largest weights).
    """
    plt = _plt()
    att = np.asarray(attention, dtype=float)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 5.5))
    im = ax0.imshow(att, cmap="viridis")
    ticks = np.arange(len(ch_names))
    ax0.set_xticks(ticks, ch_names, rotation=90, fontsize=6)
    ax0.set_yticks(ticks, ch_names, fontsize=6)
    ax0.set_xlabel("attended electrode")
    ax0.set_ylabel("electrode")
    fig.colorbar(im, ax=ax0, shrink=0.8, label="attention (rows sum to 1)")
    info, keep = _info(ch_names, montage)
    if len(keep) >= 2:
        import mne

        lay = mne.channels.make_eeg_layout(info)
        where = {n: i for i, n in enumerate(lay.names)}
        pos = np.array([lay.pos[where[n], :2] + lay.pos[where[n], 2:] / 2 for n in info.ch_names])
        sub = att[np.ix_(keep, keep)].copy()
        np.fill_diagonal(sub, np.nan)
        flat = np.argsort(np.nan_to_num(sub, nan=-np.inf), axis=None)[::-1][: min(n_edges, sub.size - len(keep))]
        top = np.nanmax(sub) if np.isfinite(np.nanmax(sub)) else 1.0
        for f in flat:
            i, j = np.unravel_index(f, sub.shape)
            ax1.annotate("", xy=pos[j], xytext=pos[i], arrowprops={"arrowstyle": "->", "alpha": 0.25 + 0.75 * sub[i, j] / top,
                                                                    "lw": 0.5 + 2.5 * sub[i, j] / top, "color": "C3"})
        ax1.scatter(pos[:, 0], pos[:, 1], s=20, c="k", zorder=3)
        for (x, y), n in zip(pos, [ch_names[k] for k in keep]):
            ax1.text(x, y, n, fontsize=6, ha="center", va="bottom")
        ax1.set_aspect("equal")
        ax1.set_title(f"strongest {len(flat)} edges (electrode -> attended electrode)")
    else:
        ax1.text(0.5, 0.5, "no channel positions in the montage", ha="center", va="center")
    ax1.axis("off")
    fig.suptitle(fit_title(fig, title, 12))
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out
