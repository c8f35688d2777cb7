"""``eeg2fmri synthesize``."""

from __future__ import annotations

import json
from pathlib import Path

from eeg2fmri.commands._common import add_device

NAME = "synthesize"
ORDER = 70
HELP = "turn an EEG-only recording into a 4D BOLD NIfTI with a trained model"
DESCRIPTION = (
    "Predict BOLD volumes from an EEG recording in any format MNE reads. The EEG is streamed in time chunks (memory does not grow "
    "with the recording's length); channels are matched to the model's by name (case-insensitive; extra channels are ignored, "
    "missing ones are an error); another sampling rate is resampled. Writes OUT (.nii.gz or .nii) on the training grid with a "
    "JSON sidecar, and OUT_uncertainty.nii.gz when the model provides an uncertainty."
)


def add_arguments(p) -> None:
    p.add_argument("eeg", help="EEG recording (.vhdr, .edf, .bdf, .set, .fif, ...)")
    p.add_argument("--model", required=True, help="trained model folder (model.json, weights, mask.nii.gz), or the training run folder holding it as model/")
    p.add_argument("--out", required=True, help="output .nii.gz or .nii")
    p.add_argument("--tr", type=float, default=None, help="output volume spacing in s (default: training TR; finer steps must divide it)")
    unc = p.add_mutually_exclusive_group()
    unc.add_argument("--uncertainty", dest="uncertainty", action="store_true", default=None,
                     help="require an uncertainty NIfTI: the model's own scale times its validation temperature, or, for any "
                          "model trained by eeg2fmri train/quickstart, its per-voxel validation scale (default: written "
                          "when the model has a scale of its own)")
    unc.add_argument("--no-uncertainty", dest="uncertainty", action="store_false", help="never write an uncertainty NIfTI")
    p.add_argument("--chunk-seconds", type=float, default=120.0, help="EEG seconds processed per chunk (default: %(default)s)")
    p.add_argument("--channel-positions", default=None, metavar="file|MONTAGE",
                   help="map channels missing by name by electrode position: 'file' (the recording's digitisation) or an MNE montage, e.g. biosemi64")
    p.add_argument("--first-onset", default=None, metavar="SECONDS|markers",
                   help="anchor the volume grid: a volume starts at this time (s from the first EEG sample), e.g. the first volume of "
                        "a scan, or 'markers' for the recording's first scanner marker (the training's marker names); default: "
                        "'markers' where the recording has scanner markers, else the first EEG sample (0)")
    p.add_argument("--volumes", choices=("all", "markers"), default=None,
                   help="all (default): every volume the recording allows; markers (with --first-onset markers; the default with "
                        "--marker-block): only the volumes from the first to the last scanner marker, to line up with the measured run")
    p.add_argument("--dummy-scans", type=int, default=0, metavar="N",
                   help="with --first-onset markers: the first N scanner markers are of volumes the scanner did not save (the "
                        "measured run's markers minus its volumes); they are dropped so that output volumes line up with the "
                        "measured ones (default: 0)")
    p.add_argument("--first-marker-volume", type=int, default=None, metavar="N",
                   help="with --first-onset markers: the measured run's volume of the recording's first scanner marker (after "
                        "--dummy-scans), for EEG cut after the scan began (a preprocessed segment); default: found by the layout "
                        "for a file it places (ds002336/ds002338 eeg_pp), else 0")
    p.add_argument("--marker-block", type=int, default=None, metavar="K",
                   help="a recording of several scans (blocks of scanner markers parted by pauses): write scan K's volumes "
                        "(1 = the first), on its own volume grid (with --dummy-scans for its dummy-scan markers)")
    p.add_argument("--atlas", default=None, metavar="LABELS.nii.gz",
                   help="also write the mean of every ROI's voxels as region series (OUT_rois.tsv; names from a LABELS.tsv with "
                        "index and name columns beside it); a model of ROI targets writes its own")
    p.add_argument("--keep-outlying-channels", dest="interpolate_outliers", action="store_false",
                   help="use channels whose amplitude is 20x above or below the median channel's as recorded (default: "
                        "interpolated from the others, like channels marked bad)")
    p.add_argument("--no-artifact-check", dest="check_artifacts", action="store_false",
                   help="do not refuse a recording that looks uncorrected for MRI gradient artefacts (the check prepare runs)")
    p.add_argument("--clean", default=None, metavar="training|gradient,bcg",
                   help="remove scanner artefacts first: 'training' as the model's training runs were cleaned (model.json "
                        "prepare.clean), or the steps as prepare --clean takes them; reads the whole recording into memory")
    p.add_argument("--notch", type=float, default=None, metavar="HZ",
                   help="the recording's power-line frequency (50 or 60): it and its harmonics are notched in place of the "
                        "model's notch or the recording's declared one; 0: no notch (default: as the model's training)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    add_device(p, "predict")
    p.add_argument("--dsp-device", default="auto", metavar="{auto,cpu,cuda,cuda:N}",
                   help="where the EEG filtering and band-power envelopes run: cpu (NumPy/SciPy/MNE), cuda (torch on the GPU, "
                        "equal to float32 rounding); default auto: the GPU of --device when it resolves to one, else cpu")


def _j_plus(d: int) -> str:
    """``j``, ``j + d`` or ``j - d``: the measured volume of output volume j."""
    return "j" if d == 0 else f"j + {d}" if d > 0 else f"j - {-d}"


def _onset(value: str | None) -> float | str | None:
    """``--first-onset``: a number of seconds, or the word ``markers`` (checked by synthesize)."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def run(args) -> int:
    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.synthesis.synthesize import output_paths

    out = synthesize(args.eeg, args.model, args.out, tr=args.tr, overwrite=args.overwrite, uncertainty=args.uncertainty,
                     chunk_seconds=args.chunk_seconds, progress_bar=not args.quiet, device=args.device,
                     channel_positions=args.channel_positions, dsp_device=args.dsp_device, first_onset=_onset(args.first_onset),
                     volumes=args.volumes, dummy_scans=args.dummy_scans, check_artifacts=args.check_artifacts,
                     first_marker_volume=args.first_marker_volume, atlas=args.atlas,
                     interpolate_outliers=args.interpolate_outliers, clean=args.clean, marker_block=args.marker_block, notch=args.notch)
    sidecar = out.with_suffix(".json") if out.suffix.lower() == ".tsv" else output_paths(out)[1]
    side = json.loads(sidecar.read_text(encoding="utf-8"))
    extra = f" and {side['UncertaintyFile']}" if "UncertaintyFile" in side else ""
    extra += f"; region series in {side['RoiFile']}" if "RoiFile" in side and side["RoiFile"] != Path(out).name else ""
    print(f"wrote {out} ({side['RepetitionTime']:g} s TR, first volume at {side['StartTime']:.2f} s) and {sidecar.name}{extra}")
    grid = side.get("VolumeGrid") or {}
    if "marker_volumes" in grid:
        a, b = grid["marker_volumes"]
        lost = f"; the first {grid['markers_without_volume']} marker(s) have no volume (too little EEG before them)" if grid.get("markers_without_volume") else ""
        if grid.get("markers_missing"):
            lost += (f"; {grid['markers_missing']} marker(s) missing between the first and the last: their volumes are on the "
                     "regular grid, so k counts the scan's volumes (TRs from the first marker), not the markers present")
        v0 = int(grid.get("first_marker_volume", 0))
        source = str(grid.get("first_marker_volume_source") or "assumed")
        if source == "given":
            why = " (--first-marker-volume)"
        elif not source.startswith("assumed"):
            why = f": {source}"
        elif args.dummy_scans:
            why = f" (the first {args.dummy_scans} dummy-scan marker(s) dropped)"
        else:
            why = (" if the scan had no dummy volumes and the recording began before its first volume: else pass --dummy-scans N "
                   "(N = markers - volumes) or --first-marker-volume N")
        measured = grid.get("measured_volumes")
        if grid.get("volumes"):
            m = grid.get("volumes_per_marker", 1)  # a finer --tr than the markers' interval: m output volumes per marker
            if not float(m).is_integer():  # markers and output volumes do not line up one to one
                print(f"scanner markers ({grid['n_markers']}): only their span written; a marker every {m:g} output volumes, so they do "
                      f"not line up one to one (the first marker is output volume {a}, the last {b}){lost}")
            elif measured is not None:
                print(f"scanner markers ({grid['n_markers']}): only their volumes written; output volume j is measured volume "
                      f"{_j_plus(measured[0])}{why}{lost}")
            else:
                k = f"marker k (measured volume {'k' if not v0 else f'k + {v0}'}{why})"
                print(f"scanner markers ({grid['n_markers']}): only their volumes written, {k} is output volume {int(m)}k"
                      + (f" - {-a}" if a < 0 else "") + lost)
        else:
            m = grid.get("volumes_per_marker", 1)
            meas = (f"; output volume j is measured volume {_j_plus(measured[0])}{why}" if measured is not None else
                    # (user test 32: said "marker k is measured volume k" where only every third marker met a volume)
                    f"; a marker every {m:g} output volumes: markers and output volumes do not line up one to one"
                    if not float(m).is_integer() else f"; marker k is measured volume {'k' if not v0 else f'k + {v0}'}{why}"
                    + (f" and output volume {a} + {int(m)}k ({int(m)} output volumes per marker)" if int(m) > 1 else ""))
            print(f"scanner markers ({grid['n_markers']}): output volumes {a}..{b}; {grid['volumes_before_first_marker']} volume(s) before the first "
                  f"marker, {grid['volumes_after_last_marker']} after the last (--volumes markers keeps only the marked ones){meas}{lost}")
    val = side.get("ValidationR") or {}
    if val and val.get("not_testable"):
        print(f"chance on the model's validation windows: not testable ({val['not_testable']}) (sidecar ValidationR)")
    elif val:
        not_above = [k for k, v in (val.get("rois") or {}).items() if not v.get("above_null")]
        not_above += [(f"{k} (ROI-mean r {v['roi_r']:.2f} vs chance {v['roi_null_p95']:.2f})"
                       if v.get("roi_r") is not None and v.get("roi_null_p95") is not None
                       else f"{k} ({100 * v['share_above_null']:.0f} % of its voxels)")
                      for k, v in (val.get("atlas_rois") or {}).items() if not v.get("evidence", v.get("share_above_null", 1.0) > 0.1)]
        more = f" and {len(not_above) - 10} more" if len(not_above) > 10 else ""
        print(f"{val['outputs_above_null']} of {val['n_outputs']} output(s) predicted above chance on the model's validation windows"
              + (f"; no evidence above chance (their series need not follow the EEG): {', '.join(not_above[:10])}{more}" if not_above else "")
              + " (sidecar ValidationR)"
              + ("; the model's calibration predates the exact 5 % test and passes about 10 % of unpredictable outputs: re-run "
                 "eeg2fmri train" if val.get("earlier_level") else ""))
    if side.get("ChannelsOutlyingInterpolated"):
        print("interpolated channel(s) whose amplitude is far from the others' (x the median channel's): "
              + ", ".join(f"{c} {v:.3g}" for c, v in side["ChannelsOutlyingInterpolated"].items()))
    if side.get("ChannelsIgnored"):
        print(f"ignored {len(side['ChannelsIgnored'])} channel(s) the model does not use: {', '.join(side['ChannelsIgnored'][:10])}")
    mapping = side.get("ChannelMapping") or {}
    interp = list(mapping.get("interpolated") or []) + [c for c in side.get("ChannelsMarkedBadInterpolated") or [] if c not in (mapping.get("interpolated") or [])]
    if interp:
        n_used = len(side.get("ChannelsUsed") or []) or len(interp)
        print(f"interpolated {len(interp)} of {n_used} training channel(s) from their neighbours' positions "
              f"({mapping.get('positions') or 'the montage'}): {', '.join(interp[:10])}{' ...' if len(interp) > 10 else ''}")
    if mapping.get("by_position"):
        print(f"matched {len(mapping['by_position'])} channel(s) by electrode position: "
              + ", ".join(f"{k}<-{v}" for k, v in list(mapping["by_position"].items())[:10]))
    if side.get("Resampled"):
        train = side.get("TrainingSamplingFrequency")
        print(f"resampled: the recording is sampled at {side['SamplingFrequency']:g} Hz" + (f", the training recordings at {train:g} Hz (the lowest rate among them)" if train else "")
              + f"; its features were computed at the training work rate {side['WorkSamplingFrequency']:g} Hz")
    return 0
