"""``ridge_hrf``'s ``slow_gain`` on user test 59's generator: LOSO ROI r per region, region and voxel targets.

For each seed: simulate (``sim_user_infraslow.py``: 4 subjects x 7 min, DC-coupled BrainVision; regions driven by the
infraslow potential, alpha phase coherence, beta power, and a null region), prepare without / with ``slow_potential``
(region targets: prepare option ``atlas``; voxel targets: the mask, scored per region with ``--atlas``), and run
``eeg2fmri benchmark --protocol loso --models ridge_hrf`` with ``slow_gain`` 1 (session 39), ``"shared"``,
``"per_target"`` and the default ``"auto"``. Prints one table per target kind: the mean over test subjects of each
region's r (``roi_r_mean`` in leaderboard.json; ° at chance).

    python benchmarks/bench_slow_gain.py --work /tmp/slow_gain [--seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REGIONS = ("1", "2", "3", "4")
NAMES = ("infraslow", "coherence", "beta", "null")
VARIANTS = {"off": None, "g1": {"slow_gain": 1.0}, "shared": {"slow_gain": "shared"}, "per_target": {"slow_gain": "per_target"},
            "auto": {}}


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as fh:
        subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--targets", nargs="+", default=["regions", "voxels"], choices=["regions", "voxels"])
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    here = Path(__file__).parent
    tables: dict[str, list[str]] = {t: [] for t in args.targets}
    means: dict[tuple[str, str], list[list[float]]] = {}
    for seed in args.seeds:
        bids = work / f"bids_s{seed}"
        if not bids.exists():
            _run([sys.executable, str(here / "sim_user_infraslow.py"), "--out", str(bids), "--seed", str(seed)], work / f"sim_s{seed}.log")
        atlas = bids / "derivatives" / "truth" / "atlas_regions.nii.gz"
        for kind in args.targets:
            for slow in (False, True) if kind == "regions" else (True,):  # (voxels: no row without the option)
                cfg = {"slow_potential": "auto"} if slow else {}
                if kind == "regions":
                    cfg["atlas"] = str(atlas)
                prep = work / f"prep_{kind}_s{seed}_{'on' if slow else 'off'}"
                if not prep.exists():
                    _run(["eeg2fmri", "prepare", str(bids), "--out", str(prep), "--config", json.dumps(cfg), "-q"], work / f"{prep.name}.log")
            for var, hp in VARIANTS.items():
                if var == "off" and kind == "voxels":
                    continue
                prep = work / f"prep_{kind}_s{seed}_{'off' if hp is None else 'on'}"
                out = work / f"b_{kind}_s{seed}_{var}"
                if not (out / "leaderboard.json").exists():
                    cmd = ["eeg2fmri", "benchmark", str(prep), "--protocol", "loso", "--models", "ridge_hrf", "--out", str(out), "-q", "--no-report",
                           "--overwrite"]
                    if hp:
                        cmd += ["--hparams", json.dumps({"ridge_hrf": hp})]
                    if kind == "voxels":
                        cmd += ["--atlas", str(atlas)]
                    _run(cmd, work / f"{out.name}.log")
                row = [r for r in json.loads((out / "leaderboard.json").read_text())["leaderboard"] if r["name"] == "ridge_hrf"][0]
                m, chance = row["roi_r_mean"], row["roi_at_chance"]
                vals = [float(m[k]) for k in REGIONS]
                means.setdefault((kind, var), []).append(vals)
                tables[kind].append(f"| {seed} | {var} | " + " | ".join(f"{m[k]:.3f}{'°' if chance[k] else ''}" for k in REGIONS)
                                    + f" | {np.mean(vals[:3]):.3f} |")
    for kind in args.targets:
        print(f"\n{kind} targets, LOSO ridge_hrf, mean over test subjects of each region's r (° at chance)")
        print("| seed | slow_gain | " + " | ".join(NAMES) + " | mean of the 3 driven |")
        print("|---|---|" + "---:|" * (len(NAMES) + 1))
        print("\n".join(tables[kind]))
        for (k, var), v in means.items():
            if k == kind:
                a = np.array(v)
                print(f"| mean ({len(a)} seeds) | {var} | " + " | ".join(f"{x:.3f}" for x in a.mean(0)) + f" | {a[:, :3].mean():.3f} |")


if __name__ == "__main__":
    main()
