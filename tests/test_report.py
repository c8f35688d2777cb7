"""``eeg2fmri report``: one self-contained HTML page from a run or benchmark folder."""

from __future__ import annotations

import base64
import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.cli import main
from eeg2fmri.plotting.html import GENERATOR_TAG, Image, Preformatted, render_html, write_html
from eeg2fmri.utils.validation import Eeg2fmriInputError
from eeg2fmri.workflows.quickstart import run_quickstart
from eeg2fmri.workflows.report import build_report, plot_forest

from .test_quickstart import TINY_SIM

_IMG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def qs_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "qs"
    run_quickstart(out, subjects=2, minutes=6.0, seed=3, model="ridge_hrf", progress_bar=False, sim_overrides=TINY_SIM)
    return out


def _pngs(text: str) -> list[bytes]:
    return [base64.b64decode(b) for b in _IMG.findall(text)]


def _leaderboard(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leaderboard.json").write_text(json.dumps({"protocol": "within", "n_folds": 3, "leaderboard": rows}))
    return folder


def test_report_of_quickstart_is_self_contained(qs_folder, tmp_path):
    out = build_report(qs_folder, tmp_path / "r.html", title="Tiny <run>")
    text = out.read_text()
    assert "<script" not in text.lower()
    assert not re.search(r'src="https?://', text) and "http://" not in text and "https://" not in text
    imgs = _pngs(text)
    assert len(imgs) >= 2 and all(b.startswith(b"\x89PNG") for b in imgs)  # slices.png, timecourses.png
    assert "<figcaption>slices.png</figcaption>" in text and "<figcaption>timecourses.png</figcaption>" in text
    summary = json.loads((qs_folder / "metrics.json").read_text())["summary"]
    assert "<h2>Summary</h2>" in text and "<td>model median r</td>" in text  # the reader's names, not JSON keys (user test 9)
    summary_section = text.split("<h2>Summary</h2>", 1)[1].split("<h2>", 1)[0]
    assert "model_median_r" not in summary_section and "<td>model R²</td>" in summary_section
    assert f'<td class="num">{summary["model_median_r"]:.4g}</td>' in text
    assert "<h2>Model card</h2>" in text and "<pre>" in text
    assert "<title>Tiny &lt;run&gt;</title>" in text  # the title is escaped
    # the Not-shown section names what a quickstart folder lacks
    tail = text.split("<h2>Not shown</h2>", 1)[1]
    assert "leaderboard.json" in tail and "r-map NIfTI" in tail and "model card" not in tail
    assert 'href="#summary"' in text and 'id="not-shown"' in text  # table of contents


def test_report_of_benchmark_has_forest_plot_and_r_map(qs_folder, tmp_path):
    rows = [{"name": "eeg2fmri_net", "role": "model", "median_r": 0.21, "median_r_ci": [0.12, 0.3], "r2": 0.03},
            {"name": "ridge_hrf", "role": "reference", "median_r": 0.17, "median_r_ci": [0.09, 0.25]},
            {"name": "time-shifted null (ridge_hrf)", "role": "null", "median_r": -0.02},
            {"name": "broken", "role": "model", "error": "out of memory"}]
    folder = _leaderboard(tmp_path / "bench", rows)
    (folder / "evaluation").mkdir()
    mask = nib.load(qs_folder / "model" / "mask.nii.gz")
    m = np.asarray(mask.dataobj) > 0
    r = np.zeros(m.shape, np.float32)
    r[m] = np.random.default_rng(1).uniform(-0.2, 0.6, int(m.sum()))
    nib.save(nib.Nifti1Image(r, mask.affine), folder / "evaluation" / "r_map_ridge_hrf.nii.gz")
    assert main(["report", str(folder)]) == 0
    text = (folder / "report.html").read_text()
    assert "forest plot: median r and 95% CI per model" in text
    assert "evaluation/r_map_ridge_hrf.nii.gz over the MNI152 template" in text
    imgs = _pngs(text)
    assert len(imgs) == 2 and all(b.startswith(b"\x89PNG") for b in imgs)
    scanner = nib.Nifti1Image(r, mask.affine)  # the same map in scanner space (code 1): no template, and the caption says so
    scanner.set_sform(mask.affine, code=1)
    nib.save(scanner, folder / "evaluation" / "r_map_ridge_hrf.nii.gz")
    assert main(["report", str(folder), "--overwrite"]) == 0
    assert "evaluation/r_map_ridge_hrf.nii.gz without a template (not in MNI space)" in (folder / "report.html").read_text()
    assert "<th>median_r_ci</th>" in text and "[0.12, 0.3]" in text and "out of memory" in text
    assert "<script" not in text.lower()
    tail = text.split("<h2>Not shown</h2>", 1)[1]
    assert "metrics.json" in tail and "r-map" not in tail


def test_forest_plot_needs_a_finite_r():
    assert plot_forest([{"name": "x", "role": "model", "error": "failed"}]) is None
    png = plot_forest([{"name": "a", "median_r": 0.1}, {"name": "b", "median_r": 0.2, "median_r_ci": [0.1, 0.3]}])
    assert png is not None and png.startswith(b"\x89PNG")


def test_report_errors(qs_folder, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(Eeg2fmriInputError, match=r"expected an eeg2fmri run or benchmark folder \(metrics.json or leaderboard.json\), found neither"):
        build_report(empty)
    folder = tmp_path / "copy"
    folder.mkdir()
    shutil.copy2(qs_folder / "metrics.json", folder / "metrics.json")
    first = build_report(folder)
    assert first == folder / "report.html"
    with pytest.raises(Eeg2fmriInputError, match=r"report.html: report already exists; pass overwrite=True \(--overwrite\)"):
        build_report(folder)
    assert main(["report", str(folder)]) != 0  # the CLI prints the error instead of a traceback
    assert "report already exists; pass --overwrite or choose another --out." in capsys.readouterr().err
    assert main(["report", str(folder), "--overwrite", "--title", "again"]) == 0
    assert "<title>again</title>" in (folder / "report.html").read_text()
    # --overwrite replaces a report, never a file of the user's that has the name (user test: notes.html was replaced)
    notes = tmp_path / "mynotes.html"
    notes.write_text("my notes")
    with pytest.raises(Eeg2fmriInputError, match=r"mynotes.html: expected an eeg2fmri report to replace \(--overwrite\), found another file; it is left"):
        build_report(folder, notes, overwrite=True)
    assert notes.read_text() == "my notes"
    old = (folder / "report.html").read_text().replace(GENERATOR_TAG, "")  # a report written before the tag existed
    (folder / "report.html").write_text(old)
    assert build_report(folder, overwrite=True) == folder / "report.html"
    with pytest.raises(Eeg2fmriInputError, match=r"mynotes.html: expected a page written by eeg2fmri to replace \(overwrite\), found another file"):
        write_html(notes, "t", [("One", ["x"])], overwrite=True)
    assert notes.read_text() == "my notes"
    # an output name that is not .html (user test 9: HTML written into report.txt)
    with pytest.raises(Eeg2fmriInputError, match=r"rep.txt: expected an HTML file name \(.html\), got '.txt'; pass e.g. --out .*rep.html"):
        build_report(folder, tmp_path / "rep.txt")
    assert not (tmp_path / "rep.txt").exists()


def test_write_html_blocks(tmp_path):
    png = plot_forest([{"name": "a", "median_r": 0.1}])
    (tmp_path / "f.png").write_bytes(png)
    out = write_html(tmp_path / "p.html", "A & B", [("One", ["x < y", [{"k": 1.5, "s": "a"}, {"k": None}]]),
                                                  ("One", [Image(tmp_path / "f.png", caption="cap"), png, Preformatted("  <pre>")])])
    text = out.read_text()
    assert "<p>x &lt; y</p>" in text and '<td class="num">1.5</td>' in text and "<td>—</td>" in text
    assert 'id="one"' in text and 'id="one-2"' in text and len(_pngs(text)) == 2
    assert "<pre>  &lt;pre&gt;</pre>" in text
    with pytest.raises(Eeg2fmriInputError, match="expected PNG data"):
        render_html("t", [("s", [Image(b"GIF89a")])])
    with pytest.raises(Eeg2fmriInputError, match="expected a block that is a paragraph"):
        render_html("t", [("s", [42])])
    with pytest.raises(Eeg2fmriInputError, match="p.html: output file already exists"):
        write_html(tmp_path / "p.html", "t", [])


def test_report_draws_the_calibration_curve(qs_folder, tmp_path):
    from eeg2fmri.workflows.report import find_coverages

    folder = tmp_path / "ev"
    folder.mkdir()
    doc = {"summary": {"model_median_r": 0.2}, "conformal": {"levels": [0.5, 0.8, 0.95], "coverage": [0.48, 0.79, 0.9],
                                                            "nll_laplace": 1.23456, "scale_error_spearman": 0.4321}}
    (folder / "metrics.json").write_text(json.dumps(doc))
    assert find_coverages(doc) == [("conformal", [0.5, 0.8, 0.95], [0.48, 0.79, 0.9])]
    assert find_coverages({"a": {"levels": [0.5], "coverage": [0.4, 0.5]}}) == []  # lengths differ: not a coverage
    html = build_report(folder).read_text()
    assert "Calibration" in html and "95% nominal" in html and "0.9" in html
    assert "nll_laplace" in html and "1.235" in html and "0.432" in html  # NLL and scale-error correlation next to the curve
    # the quickstart measures the coverage of its conformal intervals: the section is there
    qs = build_report(qs_folder, out=tmp_path / "qs.html").read_text()
    assert "Calibration" in qs and "nll_laplace" in qs and "calibration curve" not in qs.split("Not shown")[-1]
    # a folder without coverage: the report says so
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "metrics.json").write_text(json.dumps({"summary": {"model_median_r": 0.2}}))
    plain = build_report(bare).read_text()
    assert "calibration curve" in plain.split("Not shown")[-1]


def test_report_of_a_training_run_shows_its_evaluation_and_training(tmp_path):
    """A train run folder (metrics.json of training) that eeg2fmri evaluate scored (evaluation/metrics.json): the page
    leads with the evaluation (summary, calibration curve) and shows the training numbers in their own section (user
    test: the summary said only the model's name and 'Not shown' claimed no coverage was measured)."""
    folder = tmp_path / "run"
    (folder / "evaluation").mkdir(parents=True)
    train = {"model": "eeg2fmri_net", "validation": {"n": 61, "median_r": 0.0424, "mean_r": 0.05, "mse": 0.948},
             "test": {"n": 61, "median_r": 0.0463, "mean_r": 0.0488, "mse": 0.941},
             "training": {"n_train": 184, "epochs": 56, "best_epoch": 30, "output_gain": 0.735, "ridge_hrf": "canonical"}}
    (folder / "metrics.json").write_text(json.dumps(train))
    ev = {"model": "eeg2fmri_net", "protocol": "within", "conformal": {"levels": [0.5, 0.8, 0.95], "coverage": [0.5, 0.8, 0.93]},
          "group": {"models": {"eeg2fmri_net": {"median_r": 0.0461}}}}
    (folder / "evaluation" / "metrics.json").write_text(json.dumps(ev))
    html = build_report(folder).read_text()
    assert "Calibration" in html and "95% nominal" in html and "calibration curve" not in html.split("Not shown")[-1]
    training = html.split("<section id=\"training\">")[1]
    assert "evaluation/metrics.json" in training and "best_epoch" in training and "0.0424" in training and "0.735" in training
    # a training run alone: its validation/test numbers are the summary
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "metrics.json").write_text(json.dumps(train))
    page = build_report(alone).read_text()
    assert "0.0463" in page and "best_epoch" in page and "<section id=\"training\">" not in page
    assert "figures (HRFs" not in page
    # a flagship whose blend kept the linear path alone: the page says its network does not shape the predictions
    (alone / "metrics.json").write_text(json.dumps({**train, "training": {**train["training"], "ridge_weight": 1.0}}))
    page = build_report(alone, overwrite=True).read_text()
    import html as html_mod

    assert html_mod.escape("the predictions are the linear path's, and the network's figures (HRFs, spatial patterns, attributions) "
                           "describe a part that does not shape them.") in page


def test_quickstart_folder_has_bands_and_mni_volumes(qs_folder):
    # best/median/worst time courses with 80% conformal bands, measured vs synthesised over the MNI template
    doc = json.loads((qs_folder / "metrics.json").read_text())
    assert doc["conformal"]["levels"] == [0.5, 0.8, 0.95] and "halfwidths" not in doc["conformal"]
    assert (qs_folder / "volumes_mni.png").is_file() and (qs_folder / "timecourses.png").is_file()
    assert not (qs_folder / "insight").exists()  # ridge_hrf has no patterns or HRFs to draw


def test_timecourse_band_and_mni_volume_figures(tmp_path):
    from eeg2fmri.plotting import plot_timecourses, plot_volumes_mni

    rng = np.random.default_rng(0)
    y, p = rng.standard_normal((23, 9)), rng.standard_normal((23, 9))
    r = np.linspace(-0.3, 0.6, 9)
    a = plot_timecourses(y, p, r, 2.0, tmp_path / "a.png", "t", halfwidth=np.full(9, 0.7), level=0.8)
    b = plot_timecourses(y, p, r, 2.0, tmp_path / "b.png", "t")
    assert a.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and a.read_bytes() != b.read_bytes()
    # ranked by another r (evaluate: the mean over test subjects): the picks follow it, the run's own r is still shown
    from eeg2fmri.plotting.report import timecourse_picks

    assert timecourse_picks(r) == [("best", 8), ("median", 4), ("worst", 0)]
    rank = np.array([0.1, np.nan, 0.5, 0.2, 0.0, -0.4, 0.3, 0.05, -0.1])
    assert timecourse_picks(r, rank) == [("best", 2), ("median", 7), ("worst", 5)]
    c = plot_timecourses(y, p, r, 2.0, tmp_path / "c.png", "t", rank_r=rank)
    assert c.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and c.read_bytes() != b.read_bytes()
    mask = np.zeros((7, 8, 6), bool)
    mask[2:5, 2:6, 1:5] = True
    affine = np.diag([6.0, 6.0, 6.0, 1.0])
    affine[:3, 3] = [-18.0, -40.0, 0.0]  # a grid centred in the MNI brain
    v = plot_volumes_mni(mask, affine, rng.standard_normal(int(mask.sum())), rng.standard_normal(int(mask.sum())), tmp_path / "v.png", "t")
    assert v.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flagship_quickstart_draws_patterns_and_hrfs(tmp_path):
    out = tmp_path / "qs_net"
    run_quickstart(out, subjects=2, minutes=6.0, seed=3, model="eeg2fmri_net", progress_bar=False, sim_overrides=TINY_SIM)
    assert (out / "insight" / "patterns_topomap.png").is_file() and (out / "insight" / "hrfs.png").is_file()
    html = (out / "report.html").read_text()
    assert "insight/hrfs.png" in html and "insight/patterns_topomap.png" in html and "volumes_mni.png" in html
    # the uncertainty NIfTI (only on request): the ensemble spread times its validation temperature where it predicts the
    # validation errors better than the per-voxel residual scale (cross-fitted NLL), else that residual scale
    from eeg2fmri.synthesis import synthesize

    cal = json.loads((out / "model" / "calibration.json").read_text())
    card = (out / "model" / "MODEL_CARD.md").read_text()
    # blend_rule="guarded" (default): here the network did not earn its share (weight 1), so the members' spread is 0
    # and the residual scale is written; see test_calibration_chooses_the_scale_with_the_lower_crossfitted_nll for the
    # choice between an ensemble's own scale and the residual scale
    assert "ridge_weight_kept_linear" in card and cal["scale"] == "residuals" and cal["temperature"] is None
    assert "ridge_weight = 1" in cal["own_scale_unavailable"] and "crossfit_nll" not in cal
    # ... and the insight figures (the network's patterns and HRFs) say that the network is not used
    assert json.loads((out / "insight" / "explain.json").read_text())["insight"]["network_share"] == 0.0
    eeg = sorted((out / "bids").glob("sub-*/eeg/*_eeg.vhdr"))[0]
    synthesize(eeg, out / "model", tmp_path / "s_bold.nii.gz", progress_bar=False)
    assert not (tmp_path / "s_bold_uncertainty.nii.gz").exists()
    synthesize(eeg, out / "model", tmp_path / "u_bold.nii.gz", uncertainty=True, progress_bar=False)
    side = json.loads((tmp_path / "u_bold.json").read_text())
    if cal["scale"] == "own":
        assert "ensemble" in side["UncertaintyMeaning"] and "temperature" in side["UncertaintyMeaning"]
    else:
        assert side["UncertaintyMeaning"].startswith("per-voxel Laplace scale from the validation residuals")
    assert (np.asarray(nib.load(tmp_path / "u_bold_uncertainty.nii.gz").dataobj)[nib.load(out / "model" / "mask.nii.gz").get_fdata() > 0] > 0).all()


def _spy_cut_coords(monkeypatch) -> list:
    """The cut_coords of every nilearn plot_stat_map call (the figure is still drawn)."""
    from nilearn import plotting

    seen = []
    real = plotting.plot_stat_map

    def spy(*args, **kwargs):
        seen.append(kwargs["cut_coords"])
        return real(*args, **kwargs)

    monkeypatch.setattr(plotting, "plot_stat_map", spy)
    return seen


def test_r_map_slices_through_the_peak(tmp_path, monkeypatch):
    """The r-map figure cuts through the voxel of highest r (a focal effect was off the fixed centroid slices in a user
    test), or through the mask's centroid with cut='centre' or when no r is finite; a wrong cut is refused."""
    from eeg2fmri.plotting.report import plot_r_map

    seen = _spy_cut_coords(monkeypatch)
    mask = np.zeros((9, 11, 7), bool)
    mask[1:8, 1:10, 1:6] = True
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-16.0, -20.0, -12.0]
    r = np.zeros(int(mask.sum()))
    peak = 17
    r[peak] = 0.6
    plot_r_map(mask, affine, r, tmp_path / "peak.png", background=None)
    assert np.allclose(seen[-1], (affine @ np.append(np.argwhere(mask)[peak], 1.0))[:3])
    centroid = (affine @ np.append(np.argwhere(mask).mean(axis=0), 1.0))[:3]
    plot_r_map(mask, affine, r, tmp_path / "centre.png", background=None, cut="centre")
    plot_r_map(mask, affine, np.full_like(r, np.nan), tmp_path / "nan.png", background=None)
    assert np.allclose(seen[-2], centroid) and np.allclose(seen[-1], centroid)
    with pytest.raises(Eeg2fmriInputError, match=r"plot_r_map: expected cut 'peak' or 'centre', got 'max'"):
        plot_r_map(mask, affine, r, tmp_path / "x.png", cut="max")


def test_mni_template_only_where_the_files_say_mni(tmp_path, monkeypatch):
    """The MNI152 template is drawn behind a grid whose files say MNI (BIDS space-MNI* entity first, else NIfTI code 4),
    never behind one they say is native (another space- entity, or code 1: user test 4's scanner-space data were drawn
    on MNI anatomy without a word), and behind one they say nothing of only where it lies in the MNI brain, saying so."""
    from nilearn import plotting

    from eeg2fmri.io.bold import bids_space_entity, grid_space
    from eeg2fmri.plotting import report as rep

    assert [grid_space(c, e) for c, e in [(2, "MNI152NLin2009cAsym"), (4, "T1w"), (1, "MNI152NLin6Asym"), (4, None), (1, None), (2, None),
                                          (3, None), (0, None)]] == ["mni", "native", "mni", "mni", "native", None, None, None]
    assert bids_space_entity("sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz") == "MNI152NLin2009cAsym"
    assert bids_space_entity("/d/sub-01_space-T1w_desc-preproc_bold.nii.gz") == "T1w"
    assert bids_space_entity("sub-01_task-rest_run-1_bold.nii.gz") is None and bids_space_entity("sub-01_task-myspace-x_bold.nii") is None
    from mne_bids import get_entities_from_fname  # the same entity as MNE-BIDS reads it

    for name in ("sub-01_task-rest_run-1_space-MNI152NLin2009cAsym_res-2_desc-preproc_bold.nii.gz", "sub-01_space-T1w_desc-preproc_bold.nii.gz",
                 "sub-01_ses-2_task-rest_acq-mb_run-1_space-MNI152NLin6Asym_bold.nii.gz", "sub-01_task-rest_run-1_bold.nii.gz"):
        assert bids_space_entity(name) == get_entities_from_fname(name, on_error="ignore").get("space")
    seen = []
    real = plotting.plot_stat_map

    def spy(*args, **kwargs):
        seen.append((kwargs["bg_img"] is not None, kwargs["title"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(plotting, "plot_stat_map", spy)
    mask = np.zeros((7, 8, 6), bool)
    mask[2:5, 2:6, 1:5] = True
    inside = np.diag([6.0, 6.0, 6.0, 1.0])
    inside[:3, 3] = [-18.0, -40.0, 0.0]  # a grid centred in the MNI brain
    outside = inside.copy()
    outside[:3, 3] = [200.0, 200.0, 200.0]
    n = int(mask.sum())
    rng = np.random.default_rng(1)
    y, p = rng.standard_normal(n), rng.standard_normal(n)
    expect = {("native", "in"): (False, "native (scanner) space: no MNI template behind it"), ("mni", "in"): (True, ""),
              ("mni", "out"): (True, ""), (None, "in"): (True, "space not recorded: MNI template assumed from the grid's position"),
              (None, "out"): (False, "")}
    for (space, where), (drawn, note) in expect.items():
        aff = inside if where == "in" else outside
        assert rep.draws_mni_template(aff, mask.shape, space) is drawn
        rep.plot_r_map(mask, aff, y, tmp_path / "r.png", "r map", space=space)
        assert seen[-1] == (drawn, f"r map ({note})" if note else "r map")
        rep.plot_volumes_mni(mask, aff, y, p, tmp_path / "v.png", "volumes", space=space)
        assert [d for d, _ in seen[-2:]] == [drawn, drawn]  # (the note is in the figure's suptitle)
    with pytest.raises(Eeg2fmriInputError, match=r"expected space 'mni', 'native' or None, got 'MNI'"):
        rep.plot_volumes_mni(mask, inside, y, p, tmp_path / "v.png", space="MNI")


def test_volume_figures_cut_through_the_peak_r(tmp_path, monkeypatch):
    """plot_volumes_mni cuts through the voxel of highest r when r is given (centroid without r, as before); plot_slices'
    middle axial slice is the one of that voxel (session 14 user test: the synthesis figures missed a focal effect)."""
    from eeg2fmri.plotting import report as rep

    seen, shown = _spy_cut_coords(monkeypatch), []
    mask = np.zeros((9, 11, 8), bool)
    mask[1:8, 1:10, 1:7] = True
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-16.0, -20.0, -12.0]
    n = int(mask.sum())
    rng = np.random.default_rng(0)
    r = np.zeros(n)
    peak = int(np.flatnonzero(np.argwhere(mask)[:, 2] == 6)[3])  # in the top slice, off the quarter/half/three-quarter picks
    r[peak] = 0.7
    rep.plot_volumes_mni(mask, affine, rng.standard_normal(n), rng.standard_normal(n), tmp_path / "v.png", r=r)
    assert np.allclose(seen[-1], (affine @ np.append(np.argwhere(mask)[peak], 1.0))[:3])
    rep.plot_volumes_mni(mask, affine, rng.standard_normal(n), rng.standard_normal(n), tmp_path / "v2.png")
    assert np.allclose(seen[-1], (affine @ np.append(np.argwhere(mask).mean(axis=0), 1.0))[:3])

    plt = rep._plt()
    real_subplots = plt.subplots

    def spy_subplots(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        shown.append(axes)
        return fig, axes

    monkeypatch.setattr(plt, "subplots", spy_subplots)
    rep.plot_slices(mask, rng.standard_normal(n), rng.standard_normal(n), r, tmp_path / "s.png")
    titles = [ax.get_title() for ax in shown[-1][0]]
    assert f"z={int(np.argwhere(mask)[peak][2])}" in titles and len(titles) == 3


def test_long_titles_are_wrapped_to_the_figure_and_drawn_inside_it(tmp_path):
    """User test 9: titles cut off at the figure's edge (hrfs.png, patterns, time courses). fit_title wraps each line to
    the figure's width, keeps explicit line breaks (the 'NOT USED' note stays on its own line), and the drawn title of a
    figure lies inside the figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from eeg2fmri.plotting.report import fit_title

    fig = plt.figure(figsize=(6.5, 3.6))
    long = "eeg2fmri_net spatial patterns (Haufe), member 0, strongest sources per band, with a title far longer than any figure"
    text = fit_title(fig, long + "\nNOT USED in the predictions: the blend gave the linear path all the weight (ridge_weight 1)", 12)
    lines = text.split("\n")
    assert len(lines) >= 3 and " ".join(lines[:-2]).startswith("eeg2fmri_net spatial") and lines[-1].endswith("(ridge_weight 1)")
    assert max(len(x) for x in lines) <= int(6.5 * 72 / (0.56 * 12))
    t = fig.suptitle(text, fontsize=12)
    fig.canvas.draw()
    box = t.get_window_extent(fig.canvas.get_renderer())
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1
    plt.close(fig)


def test_mni_volumes_give_a_tiny_prediction_its_own_colour_scale(tmp_path, monkeypatch):
    """User test 9: a synthesised volume whose fluctuations were 1/40 of the measured one's was blank on the shared
    scale. Under a quarter of the measured 99th percentile it gets its own scale and its panel says by how much."""
    import nilearn.plotting

    from eeg2fmri.plotting import plot_volumes_mni

    seen = []
    real = nilearn.plotting.plot_stat_map

    def spy(img, **kw):
        seen.append((kw["title"], kw["vmax"]))
        return real(img, **kw)

    monkeypatch.setattr(nilearn.plotting, "plot_stat_map", spy)
    rng = np.random.default_rng(3)
    mask = np.zeros((7, 8, 6), bool)
    mask[2:5, 2:6, 1:5] = True
    n = int(mask.sum())
    y, p = rng.standard_normal(n), 0.02 * rng.standard_normal(n)
    plot_volumes_mni(mask, np.diag([6.0, 6.0, 6.0, 1.0]), y, p, tmp_path / "v.png", "t")
    (t_y, v_y), (t_p, v_p) = seen
    assert v_y == pytest.approx(np.percentile(np.abs(y), 99)) and v_p == pytest.approx(np.percentile(np.abs(p), 99))
    assert t_y == "measured (z)" and t_p.startswith("synthesised (z; own colour scale: its 99th percentile |value| is 0.0")
    seen.clear()
    plot_volumes_mni(mask, np.diag([6.0, 6.0, 6.0, 1.0]), y, 0.5 * y, tmp_path / "w.png", "t")  # comparable: one scale
    assert [t for t, _ in seen] == ["measured (z)", "synthesised (z)"] and seen[0][1] == seen[1][1]


def test_summary_names_and_numbers_as_a_reader_says_them():
    """User test 9: the Summary showed JSON keys (null_median_r, calhas_ssim) and the constant baseline's R² as 4.071e-16."""
    from eeg2fmri.plotting.html import _cell
    from eeg2fmri.workflows.report import _label

    assert [_label(k) for k in ("null_median_r", "model_r2", "calhas_ssim", "mean_rmse", "fraction_of_oracle", "n_train")] == [
        "shifted-null median r", "model R²", "SSIM (Calhas et al.'s definition)", "mean RMSE", "÷ oracle ceiling", "n train"]
    assert _cell(4.071e-16) == ("0", True) and _cell(0.06641) == ("0.06641", True) and _cell(float("nan")) == ("nan", True)


def test_report_of_a_loso_benchmark_says_how_each_group_validated(tmp_path):
    """User test 10: report.html said only 'protocol: loso; folds: 5' -- not the validation scheme or what was refitted."""
    import html as html_mod

    folder = tmp_path / "b"
    folder.mkdir()
    how = "each fold's next subject, held out whole (refitted on training + validation windows with the choices made there: ridge_hrf)"
    (folder / "leaderboard.json").write_text(json.dumps({"protocol": "loso", "n_folds": 3, "leaderboard": [{"name": "ridge_hrf", "median_r": 0.2}],
                                                         "groups": [{"representation": "bandpower", "models": ["ridge_hrf"], "loso_validation": how}]}))
    text = build_report(folder).read_text()
    assert html_mod.escape(f"validation (bandpower group): {how}") in text


def test_report_summary_has_the_r_of_every_roi():
    """An atlas evaluation's r per ROI (names from the atlas TSV, voxel counts) is in the HTML summary as in report.md
    (user test 15: only report.md and the terminal had it); a model without ROI scores (the baseline) gets no column."""
    from eeg2fmri.workflows.report import _summary_blocks

    metrics = {"group": {"models": {"net": {"median_r": 0.1}, "mean": {"median_r": 0.0}}},
               "settings": {"roi_names": {"1": "motor", "2": "frontal"}, "roi_voxels": {"1": 136, "2": 72}},
               "per_subject": {"01": {"models": {"net": {"roi_r": {"1": 0.8, "2": 0.5}}, "mean": {}}},
                               "02": {"models": {"net": {"roi_r": {"1": 0.6, "2": 0.3}}, "mean": {}}}}}
    blocks = _summary_blocks(metrics)
    i = blocks.index("r per ROI (mean over 2 test subjects):")
    assert blocks[i + 1] == [{"ROI": "1 motor", "voxels": "136", "net": "0.700"}, {"ROI": "2 frontal", "voxels": "72", "net": "0.400"}]
    assert "r per ROI (mean over 2 test subjects):" not in _summary_blocks({"group": metrics["group"], "per_subject": {}})


def test_report_shows_classification_and_captions_explain_figures_with_their_target(tmp_path):
    """User test 20: classify's results were neither shown nor listed under "Not shown", and the figures of three explain
    folders were captioned by their paths only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = tmp_path / "run"
    (folder / "classify").mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"model": "ridge_hrf"}))
    (folder / "classify" / "classify.json").write_text(json.dumps({"labels": "events", "delay_s": 5.0, "notes": ["synth: the model saw BOLD"]}))
    (folder / "classify" / "classify.tsv").write_text("source\tbalanced_accuracy\tp_value\nsynth\t0.844\t0.05\neeg\t0.822\t0.05\n")
    for name, target, note in (("explain", "ROI 1 (41 voxels)", None), ("explain_roi3", "ROI 3 (30 voxels)", "no evidence ...")):
        (folder / name).mkdir()
        (folder / name / "explain.json").write_text(json.dumps({"target": target, **({"target_note": note} if note else {})}))
        fig, ax = plt.subplots(figsize=(1, 1))
        fig.savefig(folder / name / "bands.png")
        plt.close(fig)
    page = build_report(folder).read_text()
    cls = page.split("<section id=\"classification\">")[1].split("</section>")[0]
    assert "labels events, BOLD read 5.0 s after them" in cls and "0.844" in cls and "0.822" in cls and "synth: the model saw BOLD" in cls
    assert "explain/bands.png (explain target: ROI 1 (41 voxels))" in page
    assert "explain_roi3/bands.png (explain target: ROI 3 (30 voxels); no evidence that the model predicts it)" in page
    empty = tmp_path / "empty"
    (empty).mkdir()
    (empty / "metrics.json").write_text(json.dumps({"model": "ridge_hrf"}))
    assert "no classification results" in build_report(empty).read_text().split("Not shown")[-1]


def test_report_of_a_multi_group_benchmark_has_every_group_and_the_notes(tmp_path):
    """User test 21: the report of `benchmark --models all` said "metrics.json has none of summary, group or table (keys:
    groups)" and showed none of the leaderboard's notes (chance level, linear path alone, ...)."""
    folder = tmp_path / "bench"
    folder.mkdir()
    res = {"group": {"models": {"ridge_hrf": {"median_r": 0.014}, "calhas2022": {"median_r": 0.003}}}}
    (folder / "metrics.json").write_text(json.dumps({"groups": {"stft: calhas2022": res, "raw: beira": res}}))
    rows = [{"name": "ridge_hrf", "role": "reference", "median_r": 0.014, "null_p95_median_r": 0.02},
            {"name": "calhas2022", "role": "model", "median_r": 0.003, "null_p95_median_r": 0.03}]
    (folder / "leaderboard.json").write_text(json.dumps({"protocol": "within", "leaderboard": rows}))
    page = build_report(folder).read_text()
    assert "group stft: calhas2022:" in page and "group raw: beira:" in page and "has none of summary" not in page
    assert "calhas2022: whole-mask median r 0.003 does not exceed the 5 % level of its time-shifted null" in page


def test_report_html_says_what_the_markdown_says_about_chance_and_classification(tmp_path):
    """User test 33: the HTML summary dropped report.md's "not distinguishable from chance", the classification notes (a
    dict in classify.json) were printed as their keys only, and its table showed 0.6333333333333333."""
    folder = tmp_path / "run"
    (folder / "classify").mkdir(parents=True)
    metrics = {"group": {"models": {"ridge_hrf": {"median_r": 0.011, "null_p95_median_r": 0.013},
                                    "net": {"median_r": 0.2, "null_p95_median_r": 0.013}}},
               "settings": {"targets": "voxels"}, "per_subject": {}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "classify" / "classify.json").write_text(json.dumps({"labels": "events", "delay_s": 5.0,
                                                                   "notes": {"synth": "the synthesis model saw the BOLD of its training windows"}}))
    (folder / "classify" / "classify.tsv").write_text("source\tbalanced_accuracy\tn_samples\nsynth\t0.6333333333333333\t120\n")
    page = build_report(folder).read_text()
    summary = page.split("<section id=\"summary\">")[1].split("</section>")[0]
    assert ("ridge_hrf: median r 0.011, the 5 % level over every circular shift 0.013: the model&#x27;s median r does not exceed "
            "that level: over the whole mask it is not distinguishable from chance on these data.") in summary
    assert "net: median r" not in summary  # above its level: nothing to warn
    cls = page.split("<section id=\"classification\">")[1].split("</section>")[0]
    assert "note (synth): the synthesis model saw the BOLD of its training windows" in cls
    assert "0.633" in cls and "0.6333333" not in cls and "120" in cls
