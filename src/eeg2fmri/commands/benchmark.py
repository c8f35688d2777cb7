"""``eeg2fmri benchmark``."""

from __future__ import annotations

from eeg2fmri.commands._common import add_device, add_metric, parse_metrics
from eeg2fmri.preprocessing.representations import list_representations

NAME = "benchmark"
ORDER = 65
HELP = "train and evaluate several models under one protocol and print a leaderboard"
DESCRIPTION = (
    "Fit every listed model on the training windows of each fold of a protocol (within: each run's later span held out; loso: "
    "every subject held out in turn, validated on the next subject held out whole, then the closed-form parts refitted on all the others -- split option val_subjects: spans for validation on the later span of every training run; kfold: subject folds; cross: train on DATASET, test on --test), score them on the same test "
    "windows and print a leaderboard (median voxel r with 95% block-bootstrap CIs, paired difference with ridge_hrf and its p-value, "
    "R², RMSE, MAE, SSIM, PSNR, the peers' metrics, training time, parameter count). The reference ridge_hrf, the subject-mean "
    "baseline and the time-shifted null are always included. DATASET is a prepared dataset or a BIDS folder (prepared into "
    "OUT/prepared). With --out, writes leaderboard.md, leaderboard.json and metrics.json. A --train-config (a train config file) "
    "sets the torch models' seed, optimizer, loss and trainer settings (merged onto each model's recommended config key by key, "
    "as train merges them: a loss section replaces the recommended loss), and its data.subjects and split options apply to "
    "every model; its data.prepare, data.n_jobs, data.prepared_out, data.layout and data.layout_options (fMRIPrep derivatives: {'derivatives': PATH, 'space': NAME}) are used when DATASET is the BIDS folder it names; "
    "settings a benchmark would not use (model, out, tune, another data path or split.protocol) are refused. "
    "--models all benchmarks every registered model (without --models: ridge_hrf and mean only); from a BIDS folder each "
    "representation the models need is prepared from the same runs (band power OUT/prepared, tangent OUT/prepared_tangent, STFT "
    "OUT/prepared_stft, raw EEG OUT/prepared_raw) and every model is scored on the same test volumes, the models of each "
    "representation against that representation's ridge_hrf (the reference, baseline and null are fitted once per representation; "
    "next to a tangent group, whose windows hold the band-power block, not again on band power, so --models ridge_hrf "
    "eeg2fmri_net prepares only OUT/prepared_tangent). Without --train-config each torch model trains with its own recommended "
    "config (eeg2fmri models shows them); prepare options for a BIDS folder: --train-config '{\"data\": {\"prepare\": {...}}}'."
)


def _train_seeds(benches: list) -> dict[str, int]:
    """The seed each torch model trained with (its train config's; user test 25: only the bootstrap seed was on top)."""
    out = {}
    for g, _ in benches:
        for m, cfg in (g.get("model_train_configs") or {}).items():
            if isinstance(cfg, dict):
                out[m] = int(cfg.get("seed", 0))  # (the train configs' default seed is 0)
    return out


def _device_used(device: str | None) -> str:
    """The device the torch models ran on (``auto`` resolved)."""
    try:
        from eeg2fmri.models.predictor import resolve_device

        return str(resolve_device(device or "auto", where="benchmark: --device"))
    except Exception:  # noqa: BLE001  (only a record)
        return str(device)


def add_arguments(p) -> None:
    p.add_argument("dataset", help="prepared dataset folder (manifest.json) or BIDS root")
    p.add_argument("--protocol", choices=["within", "loso", "kfold", "cross"], default="within", help="evaluation protocol (default: %(default)s)")
    p.add_argument("--models", nargs="+", default=["ridge_hrf", "mean"], help="registered models, or 'all' (ridge_hrf and mean are always added)")
    p.add_argument("--test", help="cross: the test dataset (prepared folder or BIDS root)")
    p.add_argument("--n-folds", type=int, default=None, help="kfold only: subject folds (default: 5)")
    p.add_argument("--hparams", help="JSON/YAML/TOML file (or inline JSON) mapping model name -> hyperparameters")
    p.add_argument("--train-config", help="JSON/YAML/TOML training config: seed/optimizer/loss/trainer for torch models (merged onto each one's "
                   "recommended config, as train merges them); data.subjects and split "
                   "options for every model")
    p.add_argument("--atlas", help="NIfTI of integer ROI labels on the data grid (ROI r)")
    add_metric(p, "a column of the leaderboard for every model, and in metrics.json")
    p.add_argument("--min-channels", type=int, default=None, help="cross only: fewest common channels accepted (default: 8 and half the smaller montage; a number given sets the fewest alone)")
    p.add_argument("--n-boot", type=int, default=200, help="block-bootstrap resamples per subject (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap CIs only (default: %(default)s); the models train with "
                   "their train config's seed: --train-config '{\"seed\": N}'")
    p.add_argument("--out", help="output folder (leaderboard.md/.json, metrics.json; prepared/ for BIDS input)")
    p.add_argument("--overwrite", action="store_true", help="replace existing leaderboard files in OUT")
    p.add_argument("--no-report", action="store_true", help="with --out: do not write OUT/report.html")
    add_device(p, "train and predict")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes, each with a share of the cores, that run the folds (of every input representation at once "
                        "when several are benchmarked; -1: one per core; default: %(default)s)")


def _load_dataset(path: str, out, role: str, progress_bar: bool, prep: dict | None = None):
    from pathlib import Path

    from eeg2fmri.datasets import load_prepared, prepare
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    prep = prep or {}
    p = Path(path)
    if (p / "manifest.json").exists():
        return load_prepared(p)
    if not p.is_dir():
        raise Eeg2fmriInputError(f"{p}: expected a prepared dataset folder (manifest.json) or a BIDS root, found no such folder.")
    if not ((p / "dataset_description.json").exists() or any(p.glob("sub-*"))):
        raise Eeg2fmriInputError(f"{p}: expected a prepared dataset (manifest.json) or a BIDS root (dataset_description.json, sub-*/), found neither.")
    dest = prep.get("prepared_out") if role == "train" else None
    if dest is None:
        if out is None:
            raise Eeg2fmriInputError(f"{p}: a BIDS folder is prepared on the fly into OUT/prepared; pass --out DIR.")
        dest = Path(out) / ("prepared" if role == "train" else "prepared_test")
    try:
        prepared, _ = prepare(p, dest, prep.get("config"), progress_bar=progress_bar, n_jobs=prep.get("n_jobs", 1),
                              overwrite="stale", layout=prep.get("layout") or "bids", layout_options=prep.get("layout_options") or None)  # as train does: an OUT/prepared of an older config is redone, not refused
    except Eeg2fmriInputError as err:  # the fixes name prepare's --config; benchmark takes the same options in --train-config
        if "--config" not in str(err):
            raise
        raise Eeg2fmriInputError(f"{err} [eeg2fmri benchmark on a BIDS folder: give prepare options as --train-config "
                                 "'{\"data\": {\"prepare\": {...}}}' (e.g. {\"data\": {\"prepare\": {\"marker\": [\"128\"]}}}), or prepare "
                                 "the folder first (eeg2fmri prepare ... --config ...) and benchmark the prepared folder.]") from err
    return load_prepared(prepared)


def _data_keys(train_config: dict, config_arg: str, dataset: str) -> tuple[dict, dict]:
    """Take the ``data`` paths and preparation options out of a train config given to a benchmark.

    ``data.prepared`` / ``data.bids`` must name DATASET (relative paths are
    relative to the config file); ``data.prepare``, ``data.n_jobs`` and
    ``data.prepared_out``, ``data.layout`` and ``data.layout_options`` (e.g. fMRIPrep derivatives) then say how the
    BIDS DATASET is prepared.
    ``data.subjects`` stays in the config (``run_benchmark`` applies it).

    Returns
    -------
    train_config, prep : dict, dict
        The config without those keys, and ``config``/``n_jobs``/``prepared_out``/``layout``/``layout_options`` for preparing.
    """
    import os
    from pathlib import Path

    from eeg2fmri.utils.validation import Eeg2fmriInputError

    data = train_config.get("data")
    if not isinstance(data, dict):
        return train_config, {}
    data = dict(data)
    base = Path(config_arg).absolute().parent if not config_arg.lstrip().startswith("{") else Path.cwd()

    def here(v: str) -> Path:
        return (base / v).resolve() if not os.path.isabs(v) else Path(v).resolve()

    target = Path(dataset).resolve()
    prep: dict = {}
    for key in ("prepared", "bids"):
        v = data.pop(key, None)
        if v is None:
            continue
        if not isinstance(v, (str, os.PathLike)) or here(str(v)) != target:
            raise Eeg2fmriInputError(f"--train-config: data.{key}: expected DATASET ({target}) or nothing, got {v!r}; "
                                     "the benchmark reads DATASET: remove the key or benchmark that folder.")
        if key == "bids":
            if "prepare" in data:
                prep["config"] = data.pop("prepare")
            if "n_jobs" in data:
                prep["n_jobs"] = data.pop("n_jobs")
            if data.get("prepared_out") is not None:
                prep["prepared_out"] = here(str(data.pop("prepared_out")))
            for k in ("layout", "layout_options"):  # e.g. fMRIPrep derivatives: {"derivatives": PATH, "space": ...}
                if data.get(k) is not None:
                    prep[k] = data.pop(k)
    if prep and (target / "manifest.json").exists():
        raise Eeg2fmriInputError(f"--train-config: data.bids: expected a BIDS folder, got the prepared dataset {target}; use data.prepared instead.")
    return {**train_config, "data": data}, prep


def _merge_onto_recommended(rec: dict, given: dict) -> dict:
    """``given``'s seed/optimizer/loss/trainer over a model's recommended config, as ``eeg2fmri train`` merges them."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in rec.items()}
    for section, value in given.items():
        if section in ("data", "split", "model", "tune", "out"):
            continue
        if section in ("optimizer", "trainer") and isinstance(value, dict):
            rec_section = out.get(section) or {}
            out[section] = {**rec_section, **value}
            if section == "optimizer" and "floor" not in value and "monitor" in value and value["monitor"] != rec_section.get("monitor"):
                out[section].pop("floor", None)  # a recommended floor is a value of the recommended monitor (as resolve_config drops it)
        else:  # seed; a loss section is the user's whole choice of terms
            out[section] = value
    return out


def _groups(models: list[str], representation: str | None, train_config: dict | None) -> tuple[list[dict], list[dict]]:
    """Models grouped by the representation they read: one group (one reference, baseline and null) per representation.

    ``representation`` is the prepared dataset's (``None`` for a BIDS folder, which can be prepared in any).
    Returns the groups and the models that cannot be benchmarked (``name``, ``error``). A group holds
    ``representation``, ``models``, ``train_config`` (the folds: ``--train-config``'s data.subjects and
    split options, for every model) and ``model_train_configs``: each torch model's own recommended
    config (``{}``: none, the generic defaults) with ``--train-config``'s seed/optimizer/loss/trainer
    merged onto it as ``eeg2fmri train`` merges a config onto the model's recommended one (optimizer
    and trainer keys one by one; a ``loss`` section given replaces the recommended loss), which its fit
    gets. Without a ``--train-config``, a recommended config that sets ``data`` or ``split`` changes the
    folds, so its model forms a group of its own with those settings as the group's ``train_config``.
    Band power first.
    """
    import json

    from eeg2fmri.models.base import get_model_class, model_input_kinds
    from eeg2fmri.utils.logs import logger

    groups: dict[tuple, dict] = {}
    refused = []
    given_folds = None  # a --train-config's data.subjects and split: the folds of every group
    if train_config is not None:
        given_folds = {k: train_config[k] for k in ("data", "split") if k in train_config} or None
    for m in models:
        kinds = model_input_kinds(m)
        if m in ("ridge_hrf", "mean") and representation is not None and representation not in kinds:
            # the reference and the baseline of every group: scored on band power derived from these windows (user test 59:
            # "not trained" and exit status 1 beside a ridge_hrf row with numbers)
            logger.info("%s: scored as every group's %s on band power derived from the %s windows", m,
                        "reference" if m == "ridge_hrf" else "baseline", representation)
            continue
        if representation is not None and representation not in kinds:
            refused.append({"name": m, "role": "model", "error": f"reads {' or '.join(kinds)} windows, the dataset holds {representation}; "
                            f"benchmark the BIDS folder (it prepares every representation) or prepare with representation={kinds[0]}"})
            continue
        rep = representation or kinds[0]
        cls = get_model_class(m)
        own, folds = None, given_folds
        if getattr(cls, "kind", "torch") != "sklearn":
            rec = dict(getattr(cls, "recommended_train_config", None) or {})
            rec_folds = {k: rec.pop(k) for k in ("data", "split") if k in rec} or None
            if train_config is None:
                folds, own = rec_folds, rec
            else:
                own = _merge_onto_recommended(rec, train_config)
        key = (rep, json.dumps(folds, sort_keys=True, default=str))
        g = groups.setdefault(key, {"representation": rep, "models": [], "train_config": folds, "model_train_configs": {}})
        g["models"].append(m)
        if own is not None:
            g["model_train_configs"][m] = own
    if representation is None:
        # ridge_hrf, mean and stimulus_glm read the band-power block (and event regressors) of tangent windows: the same
        # numbers as a band-power preparation of the same runs. A band-power group of only those would fit them twice and list the same rows twice (with and
        # without [tangent]); the tangent group's reference and baseline are those models.
        for key, g in list(groups.items()):
            if (g["representation"] == "bandpower" and all(m in _BANDPOWER_BLOCK_READERS for m in g["models"])
                    and any(k2[0] == "tangent" and k2[1] == key[1] for k2 in groups)):
                del groups[key]
    order = {name: i for i, name in enumerate(list_representations())}  # band power, stft, raw
    return sorted(groups.values(), key=lambda g: order.get(g["representation"], len(order))), refused


#: Closed-form models that read the band-power block of tangent windows (the same numbers as band-power windows).
_BANDPOWER_BLOCK_READERS = ("ridge_hrf", "mean", "stimulus_glm")


def _mapping(text: str | None, what: str) -> dict:
    import json
    from pathlib import Path

    from eeg2fmri.utils.config import read_config
    from eeg2fmri.utils.validation import Eeg2fmriInputError

    if not text:
        return {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as err:
            raise Eeg2fmriInputError(f"--{what}: expected a JSON object or a config file, got invalid JSON ({err}).") from err
        if not isinstance(data, dict):
            raise Eeg2fmriInputError(f"--{what}: expected a mapping, got {type(data).__name__}.")
        return data
    return read_config(str(Path(text)))


def _merged_rows(benches: list) -> list[dict]:
    """One leaderboard from the groups: every model once; each group's reference, baseline and null labelled by its input."""
    from eeg2fmri.workflows.benchmark import sort_leaderboard

    if len(benches) == 1:
        return benches[0][1]["leaderboard"]
    rows, seen = [], set()
    for k, (g, b) in enumerate(benches):
        for r in b["leaderboard"]:
            r = dict(r, input=g["representation"])
            if r["role"] == "physiology":  # the same regressors and test windows in every group: one row
                if r["name"] in seen:
                    continue
            elif r["role"] in ("reference", "baseline", "null"):
                if k > 0 or g["representation"] != "bandpower":
                    r["name"] = f"{r['name']} [{g['representation']}]"
            elif r["name"] in seen:
                continue
            elif g["representation"] != "bandpower":
                r["name"] = f"{r['name']} [{g['representation']}]"
            seen.add(r["name"])
            rows.append(r)

    return sort_leaderboard(rows)


def _roi_lines(benches: list) -> list[str]:
    """The per-ROI r table of each input group (Markdown; empty without an atlas)."""
    from eeg2fmri.plotting.report import roi_table

    lines: list[str] = []
    for g, b in benches:
        res = b["results"]
        names = [nm for nm in res.get("models", []) if nm != res.get("roles", {}).get("baseline")]
        table = roi_table({"protocol": b.get("protocol"), **res}, names)  # (the chance note's advice depends on the protocol)
        if table and len(benches) > 1:
            table[0] = table[0] + f" [{g['representation']}]"
        lines += table
    return lines


def run(args) -> int:
    import json
    from pathlib import Path

    from eeg2fmri.evaluation.protocol import results_to_json
    from eeg2fmri.utils.atomic import atomic_file
    from eeg2fmri.utils.provenance import software
    from eeg2fmri.utils.validation import Eeg2fmriInputError
    from eeg2fmri.workflows.benchmark import format_leaderboard, run_benchmark

    out = Path(args.out) if args.out else None
    names = ("leaderboard.md", "leaderboard.json", "metrics.json") + (() if args.no_report else ("report.html",))
    if out is not None and not args.overwrite:
        for n in names:
            if (out / n).exists():
                raise Eeg2fmriInputError(f"{out / n}: output file already exists; choose another --out or pass --overwrite.")
    if args.protocol == "cross" and not args.test:
        raise Eeg2fmriInputError("--protocol cross: expected --test DATASET (prepared folder or BIDS root), got none.")
    metrics = parse_metrics(args.metric)
    if metrics:  # imported here, before any data are prepared, so that a wrong name fails at once
        from eeg2fmri.evaluation.protocol import _check_extra_metrics
        from eeg2fmri.workflows.evaluate import resolve_metrics

        _check_extra_metrics(resolve_metrics(metrics))
    hparams = _mapping(args.hparams, "hparams")
    train_config = _mapping(args.train_config, "train-config") or None
    prep: dict = {}
    if train_config is not None:
        from eeg2fmri.training.config import resolve_config

        data = train_config.get("data")
        if (isinstance(data, dict) and not {"bids", "prepared"} & set(data)
                and {"prepare", "prepared_out", "n_jobs", "layout", "layout_options"} & set(data)
                and not (Path(args.dataset) / "manifest.json").exists()):
            # preparation options for the BIDS DATASET itself: the config need not repeat its path as data.bids
            train_config = {**train_config, "data": {**data, "bids": str(Path(args.dataset).absolute())}}
        resolve_config(train_config, source="--train-config", require_model=False)  # every key checked before any work
        train_config, prep = _data_keys(train_config, args.train_config, args.dataset)
    from eeg2fmri.datasets.prepared import EVENT_REPRESENTATIONS
    from eeg2fmri.models import list_models

    models = list(args.models)
    if "all" in models:
        models = list(dict.fromkeys([m for m in models if m != "all"] + list_models()))
    is_prepared = (Path(args.dataset) / "manifest.json").exists()
    if is_prepared:
        from eeg2fmri.datasets import load_prepared

        representation = load_prepared(args.dataset).representation
    else:
        representation = None
        if prep.get("config", {}).get("representation") if isinstance(prep.get("config"), dict) else None:
            representation = prep["config"]["representation"]
    unused_h = sorted(set(hparams) - set(models) - {"ridge_hrf", "mean", "stimulus_glm"})
    if unused_h:
        raise Eeg2fmriInputError(f"hparams given for model(s) {unused_h} that are not benchmarked; benchmark them with --models or drop them.")
    groups, refused = _groups(models, representation, train_config)
    if not groups:
        groups = [{"representation": representation or "bandpower", "models": [], "train_config": train_config}]
    import time

    timings: dict = {"prepare_s": {}, "run_s": {}}
    t_start = time.perf_counter()
    from eeg2fmri.utils import timing

    if timing.CLI_STARTED is not None:  # (run through the command line)
        timings["startup_s"] = round(t_start - timing.CLI_STARTED, 2)  # imports, the model registry, argument checks
    import contextlib

    from eeg2fmri.utils.logs import warnings_once

    def one(plan, executor=None):
        g, ds, test_ds, g_h = plan
        t0 = time.perf_counter()
        bench = run_benchmark(ds, args.protocol, g["models"], hparams=g_h, test_ds=test_ds, n_folds=args.n_folds, n_boot=args.n_boot,
                              random_state=args.seed, atlas=args.atlas, min_channels=args.min_channels, train_config=g["train_config"],
                              model_train_configs=g.get("model_train_configs") or None,
                              progress_bar=not args.quiet and executor is None, device=args.device, n_jobs=args.jobs, executor=executor,
                              extra_metrics=metrics or None)
        label = f"{g['representation']}: {', '.join(g['models'])}" if g["models"] else g["representation"]
        timings["run_s"][label] = round(time.perf_counter() - t0, 2)  # keyed by group: two groups may read one representation
        timings.setdefault("folds", {})[label] = bench.get("fold_seconds", [])
        return g, bench

    # With --jobs and several input groups, one pool of worker processes takes the folds of every group. It starts before
    # the representations are prepared (its workers import torch and the models meanwhile), and each group's folds enter
    # it as soon as that group's data are ready, the costliest groups first (they run longest; the cheap ones fill the
    # workers at the end). Serially, every representation is prepared before any model trains.
    order = list(range(len(groups)))
    parallel = args.jobs != 1 and len(groups) > 1
    if parallel:
        from concurrent.futures import ThreadPoolExecutor

        from eeg2fmri.workflows.benchmark import (
            OrderedSubmission,
            fold_executor,
            group_cost,
            stop_executor,
            warm_executor,
        )

        on = args.device
        if on in (None, "auto"):
            import torch

            on = "cuda" if torch.cuda.is_available() else "cpu"
        order.sort(key=lambda i: -group_cost(groups[i]["representation"], groups[i]["models"], on))
    plans: list = [None] * len(groups)
    with contextlib.ExitStack() as stack:
        if parallel:
            pool = stack.enter_context(fold_executor(args.jobs))
            warm_executor(pool, args.jobs, device=args.device)
            threads = stack.enter_context(ThreadPoolExecutor(len(groups)))
            turns = OrderedSubmission(pool)

            def in_turn(pos: int, plan):
                view = turns.turn(pos)
                try:
                    return one(plan, view)
                finally:
                    view.done_submitting()  # a group that failed before submitting must not block the next ones

        futures = {}
        try:
            with warnings_once():  # the same runs, prepared once per representation, warn once
                for pos, i in enumerate(order):
                    g = groups[i]
                    t0 = time.perf_counter()
                    rep = g["representation"]
                    g_prep = dict(prep)
                    if not is_prepared and rep != "bandpower":
                        g_prep["config"] = {**dict(prep.get("config") or {}), "representation": rep}
                        if rep not in EVENT_REPRESENTATIONS:  # (event regressors live on the band-power frame grid: the other groups go without)
                            g_prep["config"].pop("events", None)
                        g_prep["prepared_out"] = (Path(prep["prepared_out"]).with_name(Path(prep["prepared_out"]).name + f"_{rep}")
                                                  if prep.get("prepared_out") else (out / f"prepared_{rep}" if out is not None else None))
                    ds = _load_dataset(args.dataset, out, "train", not args.quiet, g_prep)
                    if "stimulus_glm" in g["models"] and not ds.config.event_names and "stimulus_glm" not in args.models:
                        g["models"] = [m for m in g["models"] if m != "stimulus_glm"]  # ('all': it needs event regressors, which these data lack)
                    test_prep = {"config": g_prep["config"]} if g_prep.get("config") else {}
                    if ds.config.events and test_prep:  # the training's resolved conditions, not "auto" found again in the test data
                        test_prep = {"config": {**test_prep["config"], "events": ds.config.events, "event_durations": ds.config.event_durations}}
                    test_ds = _load_dataset(args.test, out, "test", not args.quiet, test_prep) if args.test else None
                    g_h = {m: h for m, h in hparams.items() if m in g["models"] or (m in ("ridge_hrf", "mean", "stimulus_glm") and g is groups[0])}
                    timings["prepare_s"][rep] = round(time.perf_counter() - t0, 2)
                    plans[i] = (g, ds, test_ds, g_h)
                    if parallel:
                        futures[i] = threads.submit(in_turn, pos, plans[i])
        except BaseException:
            if parallel:  # a later group's data failed: the folds already running are stopped, and the error shows at once
                stop_executor(pool)
            raise
        benches = [futures[i].result() for i in range(len(groups))] if parallel else [one(pl) for pl in plans]
    timings["total_s"] = round(time.perf_counter() - t_start, 2)
    rows = _merged_rows(benches) + refused
    bench = benches[0][1]
    res = bench["results"] if len(benches) == 1 else {"groups": {f"{g['representation']}: {', '.join(g['models'])}": b["results"] for g, b in benches}}
    subs = sorted(bench["results"]["per_subject"])
    header = (f"eeg2fmri benchmark: {args.dataset} ({args.protocol}, {bench['n_folds']} fold(s), {len(subs)} test subject(s)); "
              + ("median voxel r in the brain mask" if bench["results"].get("settings", {}).get("targets", "voxels") == "voxels"
                 else f"median r over the {bench['results']['settings']['targets']} the data were prepared on")
              + ", 95% block-bootstrap CIs; † = the peers' own metric definitions"
              + ("; Δr of each model against the ridge_hrf of its own input group" if len(benches) > 1 else "")
              + (f"; validation: {bench['loso_validation']}" if bench.get("loso_validation") else ""))
    print(header)
    print(format_leaderboard(rows, markdown=False))
    roi_lines = _roi_lines(benches)  # --atlas: r per ROI (user test 14: only the median over every ROI, a control one included)
    if roi_lines:
        print("\n" + "\n".join(roi_lines).rstrip())
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        md = "\n".join([f"# {header}", "", format_leaderboard(rows), "", *roi_lines])
        doc = {"dataset": str(Path(args.dataset).absolute()), "test_dataset": str(Path(args.test).absolute()) if args.test else None,
               "protocol": args.protocol, "n_folds": bench["n_folds"], "models": [m for _, b in benches for m in b["models"]],
               "subjects": bench["subjects"], "fits": {f"{m} ({g['representation']})" if len(benches) > 1 else m: f for g, b in benches for m, f in b["fits"].items()},
               "groups": [{"representation": g["representation"], "models": g["models"], "train_config": g["train_config"],
                           "model_train_configs": g.get("model_train_configs") or {},
                           "model_hparams": b.get("model_hparams") or {}, "data_fingerprint": b.get("data_fingerprint"),
                           **({"refit": b["refit"]} if b.get("refit") else {}),
                           **({"loso_validation": b["loso_validation"]} if b.get("loso_validation") else {})} for g, b in benches],
               "leaderboard": rows, "cross_dataset": bench["cross_dataset"], "timings": timings,
               "seed": args.seed, "boot_seed": args.seed, "train_seeds": _train_seeds(benches), "jobs": args.jobs, "device": args.device,
               "device_used": _device_used(args.device), "software": software()}
        with atomic_file(out / "leaderboard.md", overwrite=args.overwrite) as tmp:
            tmp.write_text(md, encoding="utf-8")
        with atomic_file(out / "leaderboard.json", overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps(results_to_json(doc), indent=1), encoding="utf-8")
        with atomic_file(out / "metrics.json", overwrite=args.overwrite) as tmp:
            tmp.write_text(json.dumps(results_to_json(res), indent=1), encoding="utf-8")
        print(f"wrote {out / 'leaderboard.md'}, {out / 'leaderboard.json'} and {out / 'metrics.json'}")
        if not args.no_report:
            from eeg2fmri.workflows.report import build_report

            print(f"wrote {build_report(out, overwrite=args.overwrite)}")
    failed = [r["name"] for r in rows if r.get("error")]
    if failed:
        print(f"could not train: {', '.join(failed)} (see the leaderboard)")
        return 1
    return 0
