"""Region series given as tables instead of BOLD volumes: reading, preparing, scoring and synthesising them."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.io.roi_tables import is_target_table, read_target_table, table_image
from eeg2fmri.utils.validation import Eeg2fmriInputError

N_REGIONS = 5  # (a size no other axis of the tiny fixture has: 16 channels, 2 subjects, 90 volumes)


def _write_tsv(path, values, names, index=None):
    head = ([index] if index is not None else []) + list(names)
    rows = ["\t".join(head)] + ["\t".join(([f"{2.0 * i:g}"] if index is not None else []) + [f"{v:.7g}" for v in row])
                                for i, row in enumerate(values)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_read_target_table_equals_pandas(tmp_path):
    """TSV (with an onset column), CSV (with pandas' index) and header-less files read as pandas / numpy read them."""
    import pandas as pd

    rng = np.random.default_rng(0)
    vals = rng.standard_normal((11, 4))
    names = ["V1 left", "V1 right", "M1", "thalamus"]
    tsv = _write_tsv(tmp_path / "a.tsv", vals, names, index="onset")
    got, got_names = read_target_table(tsv)
    want = pd.read_csv(tsv, sep="\t").drop(columns="onset")
    assert got.dtype == np.float32 and got_names == list(want.columns) == names
    np.testing.assert_allclose(got, want.to_numpy(), rtol=1e-6)
    csv = tmp_path / "b.csv"
    pd.DataFrame(vals, columns=names).to_csv(csv)  # pandas writes its index as an unnamed first column
    got, got_names = read_target_table(csv)
    assert got_names == names
    np.testing.assert_allclose(got, pd.read_csv(csv, index_col=0).to_numpy(), rtol=1e-6)
    plain = tmp_path / "c.tsv"
    np.savetxt(plain, vals, delimiter="\t")  # no header: regions numbered
    got, got_names = read_target_table(plain)
    assert got_names == ["roi_1", "roi_2", "roi_3", "roi_4"]
    np.testing.assert_allclose(got, np.loadtxt(plain, delimiter="\t"), rtol=1e-6)
    npy = tmp_path / "d.npy"
    np.save(npy, vals)
    got, got_names = read_target_table(npy)
    np.testing.assert_allclose(got, vals.astype(np.float32)) and got_names == ["roi_1", "roi_2", "roi_3", "roi_4"]
    assert is_target_table(npy) and is_target_table("x.PKL") and not is_target_table("x_bold.nii.gz") and not is_target_table(None)
    img = table_image(got, 2.5)
    assert img.shape == (4, 1, 1, 11) and img.header.get_zooms()[3] == 2.5
    np.testing.assert_array_equal(np.asarray(img.dataobj)[:, 0, 0, :].T, got)


def test_read_target_table_refusals(tmp_path):
    names = ["a", "b", "c"]
    vals = np.arange(12.0).reshape(4, 3) ** 1.5
    with pytest.raises(Eeg2fmriInputError, match=r"none\.tsv: region table not found; check the path"):
        read_target_table(tmp_path / "none.tsv")
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("a\tb\tc\n1\t2\t3\n4\t5\n")
    with pytest.raises(Eeg2fmriInputError, match=r"ragged\.tsv: expected 3 fields on every row .* found 2 on data row 2"):
        read_target_table(ragged)
    words = tmp_path / "words.tsv"
    words.write_text("a\tb\n1\tx\n2\t3\n3\t4\n")
    with pytest.raises(Eeg2fmriInputError, match=r"words\.tsv: expected numbers below the header row"):
        read_target_table(words)
    gaps = tmp_path / "gaps.tsv"
    gaps.write_text("a\tb\tc\n1\t2\t3\nn/a\t5\t6\n7\t8\t9\n")
    with pytest.raises(Eeg2fmriInputError, match=r"gaps\.tsv: expected a value for every volume and region, found 1 missing or non-finite \(first: volume 1, region 'a'\)"):
        read_target_table(gaps)
    with pytest.raises(Eeg2fmriInputError, match=r"dup\.tsv: expected one column per region, found the name\(s\) \['a'\] more than once"):
        read_target_table(_write_tsv(tmp_path / "dup.tsv", vals, ["a", "b", "a"]))
    flat = vals.copy()
    flat[:, 1] = 3.0
    with pytest.raises(Eeg2fmriInputError, match=r"flat\.tsv: region\(s\) \['b'\] are constant over the run"):
        read_target_table(_write_tsv(tmp_path / "flat.tsv", flat, names))
    with pytest.raises(Eeg2fmriInputError, match=r"short\.tsv: expected at least 3 volumes .* found 2 x 3; is the table transposed"):
        read_target_table(_write_tsv(tmp_path / "short.tsv", vals[:2], names))
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(Eeg2fmriInputError, match=r"obj\.npy: expected a numeric \.npy array"):
        read_target_table(obj)
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((3, 4, 5)))
    with pytest.raises(Eeg2fmriInputError, match=r"cube\.npy: expected a 2D numeric array \(volumes x regions\), found shape \(3, 4, 5\)"):
        read_target_table(cube)
    with pytest.raises(Eeg2fmriInputError, match=r"x\.dat: expected a region table ending in \.tsv, \.csv, \.txt, \.npy, \.pkl"):
        (tmp_path / "x.dat").write_text("1\n")
        read_target_table(tmp_path / "x.dat")


@pytest.fixture(scope="module")
def table_runs(tiny_bids, tmp_path_factory):
    """The tiny dataset's EEG with its BOLD averaged into N_REGIONS region series, one table per run (with an onset column)."""
    folder = tmp_path_factory.mktemp("tables")
    runs = []
    for sub in sorted(p.name for p in tiny_bids.glob("sub-*")):
        img = nib.load(next((tiny_bids / sub / "func").glob("*_bold.nii*")))
        data = np.asarray(img.dataobj, dtype=np.float64).reshape(-1, img.shape[3]).T
        data = data[:, data.std(0) > 0]
        groups = np.arange(data.shape[1]) % N_REGIONS
        table = np.stack([data[:, groups == k].mean(1) for k in range(N_REGIONS)], 1)
        path = _write_tsv(folder / f"{sub}_regions.tsv", table, [f"region {k}" for k in range(N_REGIONS)], index="onset")
        runs.append({"eeg": str(next((tiny_bids / sub / "eeg").glob("*_eeg.vhdr"))), "bold": str(path), "subject": sub[4:], "tr": 2.0})
    return runs


@pytest.fixture(scope="module")
def table_ds(table_runs):
    from eeg2fmri.datasets import prepare_dataset

    return prepare_dataset(table_runs, {"notch": 50}, progress_bar=False)


def test_prepare_region_tables(table_runs, table_ds, tiny_prepared, tmp_path):
    from eeg2fmri.datasets import load_prepared

    ds = table_ds
    assert not ds.has_grid and tiny_prepared.has_grid
    assert ds.n_outputs == N_REGIONS and ds.rois == {"names": [f"region {k}" for k in range(N_REGIONS)], "labels": [1, 2, 3, 4, 5],
                                                     "source": "table"}
    assert repr(ds).endswith(f"-> {N_REGIONS} ROIs)")
    for run, spec in zip(ds.runs, table_runs):
        kept = slice(*ds.provenance["inputs"][run.key]["volumes"])
        table, _ = read_target_table(spec["bold"])
        np.testing.assert_array_equal(run.bold, table[kept])
    # the EEG side is the one prepared from the BOLD images of the same runs: the same volumes, onsets and features
    for a, b in zip(ds.runs, tiny_prepared.runs):
        np.testing.assert_allclose(a.onsets, b.onsets)
        np.testing.assert_array_equal(np.asarray(a.features), np.asarray(b.features))
    back = load_prepared(ds.save(tmp_path / "prepared"))
    assert not back.has_grid and back.rois["names"] == ds.rois["names"]


def test_prepare_region_tables_refusals(table_runs, tiny_bids, tmp_path):
    from eeg2fmri.datasets import prepare_dataset

    image = str(next((tiny_bids / "sub-02" / "func").glob("*_bold.nii*")))
    with pytest.raises(Eeg2fmriInputError, match=r"expected every run's targets in one form, found region tables \(this run\) and BOLD images"):
        prepare_dataset([table_runs[0], {**table_runs[1], "bold": image}], progress_bar=False)
    with pytest.raises(Eeg2fmriInputError, match=r"the targets are region tables .* but the prepare options \['atlas', 'mask'\] act on BOLD volumes"):
        prepare_dataset(table_runs, {"atlas": "power_2011", "mask": "mni"}, progress_bar=False)
    other = table_runs[1]["bold"].replace(".tsv", "_renamed.tsv")
    values, names = read_target_table(table_runs[1]["bold"])
    _write_tsv(tmp_path / "renamed.tsv", values, [*names[:-1], "elsewhere"])
    with pytest.raises(Eeg2fmriInputError, match=r"renamed\.tsv: expected the regions of the first run's table .* \(missing here: \['region 4'\]; "
                                                 r"only here: \['elsewhere'\]\)"):
        prepare_dataset([table_runs[0], {**table_runs[1], "bold": str(tmp_path / "renamed.tsv")}], progress_bar=False)
    assert not other.endswith(".nii")
    no_tr = {k: v for k, v in table_runs[0].items() if k != "tr"}
    with pytest.raises(Eeg2fmriInputError, match=r"a region table has no header to give the TR; expected the run's tr, got none"):
        prepare_dataset([no_tr], progress_bar=False)


def test_region_tables_train_evaluate_and_synthesize(table_ds, tiny_bids, tmp_path):
    """Scored per region (named, no volume metrics, no maps), synthesised as a region file that reads back as a table."""
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.evaluation import evaluate_split
    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.training import fit_model, save_fit

    ds = table_ds
    sp = make_split(ds, "within")
    targets = split_targets(ds, sp)
    fitted = fit_model(ds, sp, "ridge_hrf", targets=targets)
    assert fitted.spec.output_shape == (N_REGIONS,)
    res = evaluate_split(ds, sp, targets, fitted, n_boot=0)
    assert res["settings"]["targets"] == f"{N_REGIONS} ROIs" and res["settings"]["roi_names"]["1"] == "region 0"
    assert res["settings"]["roi_voxels"] is None  # (regions without voxels: the report has no voxel column)
    from eeg2fmri.plotting.report import roi_table

    assert roi_table(res, ["ridge_hrf"])[2].startswith("| ROI | ridge_hrf |")
    sub = res["per_subject"][ds.subjects[0]]["models"]["ridge_hrf"]
    assert sorted(sub["roi_r"]) == ["1", "2", "3", "4", "5"]
    np.testing.assert_allclose(sorted(sub["roi_r"].values())[N_REGIONS // 2], sub["median_r"], rtol=1e-6)
    assert np.isnan(sub["ssim"]) and np.isnan(sub["calhas_ssim"])
    with pytest.raises(Eeg2fmriInputError, match=r"the dataset's targets are 5 regions, region tables \(no voxel grid\), so another atlas cannot group them"):
        evaluate_split(ds, sp, targets, fitted, n_boot=0, atlas=str(tmp_path / "labels.nii.gz"))
    model = save_fit(fitted, tmp_path / "model")
    eeg = next((tiny_bids / "sub-01" / "eeg").glob("*_eeg.vhdr"))
    out = synthesize(eeg, model, tmp_path / "synth.nii.gz", progress_bar=False)
    side = json.loads(out.with_name("synth.json").read_text())
    assert side["RoiFile"] == "synth_rois.tsv" and side["Targets"].startswith(f"{N_REGIONS} region series, as the training runs' region tables")
    series, names = read_target_table(tmp_path / "synth_rois.tsv")  # (its onset column is dropped)
    assert names == ds.rois["names"]
    vol = np.asarray(nib.load(out).dataobj)
    assert vol.shape[:3] == (N_REGIONS, 1, 1)
    np.testing.assert_allclose(series, vol[:, 0, 0, :].T, rtol=1e-5, atol=1e-6)
    # the region series alone: out ending in .tsv (user test 26: only a stand-in NIfTI could be asked for)
    only = synthesize(eeg, model, tmp_path / "regions_only.tsv", progress_bar=False)
    side2 = json.loads((tmp_path / "regions_only.json").read_text())
    assert only == tmp_path / "regions_only.tsv" and side2["RoiFile"] == "regions_only.tsv" and side2["Image"].startswith("none")
    assert not list(tmp_path.glob("regions_only*.nii*")) and not list(tmp_path.glob(".regions_only*"))
    again, names2 = read_target_table(only)
    assert names2 == names
    np.testing.assert_allclose(again, series, rtol=1e-5, atol=1e-6)
    with pytest.raises(Eeg2fmriInputError, match=r"regions_only\.tsv: output already exists"):
        synthesize(eeg, model, only, progress_bar=False)


def test_index_and_onset_columns_are_dropped_only_when_they_are_ones(tmp_path, caplog):
    """User test 26: an empty first header cell over a region dropped that region, a headerless table written with its
    index trained the index as a region, and an onset column placed last was read as a region."""
    import logging

    import pandas as pd

    g = np.random.default_rng(3)
    vals = g.standard_normal((12, 3))
    names = ["alphaL", "betaR", "ctrl"]
    excel = tmp_path / "excel.tsv"  # an empty first header cell over a region
    excel.write_text("\t" + "\t".join(names[1:]) + "\n" + "\n".join("\t".join(f"{v:.6f}" for v in row) for row in vals) + "\n")
    with pytest.raises(Eeg2fmriInputError, match=r"excel\.tsv: column 1 has no name in the header row and holds no row index"):
        read_target_table(excel)
    headerless = tmp_path / "headerless.tsv"
    pd.DataFrame(vals, columns=names).reset_index().to_csv(headerless, sep="\t", index=False, header=False)
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        got, got_names = read_target_table(headerless)
    assert got_names == ["roi_2", "roi_3", "roi_4"] and "the first column counts the rows (0, 1, ...)" in caplog.text
    np.testing.assert_allclose(got, vals, rtol=1e-6)
    last = tmp_path / "onset_last.tsv"
    df = pd.DataFrame(vals, columns=names)
    df["onset"] = np.arange(12) * 2.0
    df.to_csv(last, sep="\t", index=False)
    got, got_names = read_target_table(last)
    assert got_names == names
    np.testing.assert_allclose(got, vals, rtol=1e-6)
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):  # numpy.savetxt's header in a delimited file (a review: one name)
        path = tmp_path / f"savetxt{suffix}"
        np.savetxt(path, vals, delimiter=sep, header=sep.join(names))
        got, got_names = read_target_table(path)
        assert got_names == names and got.shape == vals.shape
    ints = tmp_path / "ints.csv"  # pandas' integer column names: a header, not volume 0 (a review)
    pd.DataFrame(vals).to_csv(ints, index=False)
    got, got_names = read_target_table(ints)
    assert got_names == ["0", "1", "2"] and got.shape == vals.shape
    np.testing.assert_allclose(got, vals, rtol=1e-6)
    labels = tmp_path / "labels.csv"  # atlas label values as column names (FreeSurfer's 1001, 2001, ...; a review)
    pd.DataFrame(vals + 5.0, columns=[1001, 1002, 2001]).to_csv(labels, index=False)
    got, got_names = read_target_table(labels)
    assert got_names == ["1001", "1002", "2001"] and got.shape == vals.shape
    txt = tmp_path / "saved.txt"  # numpy.savetxt's default: spaces, its header after "# "
    np.savetxt(txt, vals, header=",".join(names))
    got, got_names = read_target_table(txt)
    assert got_names == names
    np.testing.assert_allclose(got, vals, rtol=1e-6)


@pytest.mark.parametrize("protocol", [None, 2, 3, 4])
def test_pandas_pickles_of_every_protocol_read(tmp_path, protocol):
    """pandas' default to_pickle (protocol 5, numpy 2's _frombuffer) and protocol 2 were refused (user test 26)."""
    import pandas as pd

    vals = np.random.default_rng(4).standard_normal((9, 4)).astype(np.float32)
    path = tmp_path / "t.pkl"
    pd.DataFrame(vals, columns=list("abcd")).to_pickle(path, **({} if protocol is None else {"protocol": protocol}))
    got, names = read_target_table(path)
    assert names == list("abcd")
    np.testing.assert_array_equal(got, vals)


def test_centred_tables_say_the_non_steady_state_check_cannot_see_them(table_runs, tmp_path, caplog):
    """User test 26: z-scored tables kept their bright first volumes without a word."""
    import logging

    from eeg2fmri.datasets import prepare_dataset

    runs = []
    for i, run in enumerate(table_runs):
        values, names = read_target_table(run["bold"])
        z = (values - values.mean(0)) / values.std(0)
        runs.append({**run, "bold": str(_write_tsv(tmp_path / f"z{i}.tsv", z, names))})
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        prepare_dataset(runs, {"notch": 50}, progress_bar=False)
    assert "z0.tsv: the region series are centred (mean about 0, e.g. z-scored): the automatic non-steady-state check" in caplog.text


def test_datasets_check_takes_a_runs_table(table_runs, tmp_path, capsys):
    """User test 26: `eeg2fmri datasets --check runs.tsv` said "no such folder"; it checks the runs as prepare will."""
    from eeg2fmri.cli import main

    table = tmp_path / "runs.tsv"
    table.write_text("eeg\tbold\tsubject\ttr\n" + "".join(f"{r['eeg']}\t{r['bold']}\t{r['subject']}\t{r['tr']}\n" for r in table_runs))
    assert main(["datasets", "--check", str(table)]) == 0
    out = capsys.readouterr().out
    assert all(f"bold={r['bold']}" in out for r in table_runs)
    assert main(["datasets", "bids", "--check", str(table)]) == 2
    assert "a runs table names every run's files itself, so a layout and its options (bids) do not apply" in capsys.readouterr().err
    assert main(["datasets", "--check", str(table), "--subjects", "09"]) == 2
    assert "no run of the table has subject(s) ['09']" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no abbreviated options (a review: --layout was read as --layout-option)
        main(["datasets", "--check", str(table), "--layout", "files"])
    capsys.readouterr()
    values, names = read_target_table(table_runs[1]["bold"])
    long = _write_tsv(tmp_path / "long.tsv", np.concatenate([values, values[:5]]), names)  # 5 rows more than the markers
    table.write_text("eeg\tbold\tsubject\ttr\n" + f"{table_runs[1]['eeg']}\t{long}\t{table_runs[1]['subject']}\t2.0\n")
    assert main(["datasets", "--check", str(table)]) == 1
    out = capsys.readouterr().out
    assert "volume timing" in out and f"but the BOLD run has {len(values) + 5} volumes" in out, out


def test_a_synthesis_that_fails_at_the_end_leaves_no_side_files(table_ds, tiny_bids, tmp_path, monkeypatch):
    """User test 29: a full disk met while finishing the image left the region file (and the above-chance mask) behind,
    and the re-run was refused for it."""
    import errno

    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.synthesis.nifti import StreamingNifti
    from eeg2fmri.training import fit_model, save_fit

    sp = make_split(table_ds, "within")
    model = save_fit(fit_model(table_ds, sp, "ridge_hrf", targets=split_targets(table_ds, sp)), tmp_path / "model")

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StreamingNifti, "finish", full)
    eeg = next((tiny_bids / "sub-01" / "eeg").glob("*_eeg.vhdr"))
    with pytest.raises(OSError, match="No space left"):
        synthesize(eeg, model, tmp_path / "out" / "s.nii.gz", progress_bar=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == []
