"""The synthesised NIfTI writer on non-RAS, oblique grids and space codes, read back by nibabel and nilearn.

Complements tests/test_synthesis.py (diagonal RAS affines, code 2 / code 4 from the simulator, TR 1.5 / 2.0): here LAS
and rotated LPS grids, templates with differing sform/qform codes, a TR that is not exact in float32, toffset, nibabel's
header checker, the temporary-file-then-rename path, and synthesis end to end from a LAS int16 NIfTI-2 BOLD whose TR is
in msec.
"""

from __future__ import annotations

import gzip
import json
import os
import warnings

import nibabel as nib
import numpy as np
import pytest
from nibabel.affines import from_matvec

from eeg2fmri.synthesis.nifti import StreamingNifti, nifti_header


def _rot(deg_xyz):
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", deg_xyz, degrees=True).as_matrix()


AFFINES = {
    "las": np.array([[-2.5, 0, 0, 40.0], [0, 3.0, 0, -50.0], [0, 0, 3.3, -30.0], [0, 0, 0, 1]]),
    "oblique_lps": from_matvec(_rot([10, -7, 5]) @ np.diag([-2.7, -3.1, 3.3]), [10.0, 20.0, -22.0]),
}
SHAPE = (5, 4, 3, 6)


def _template(aff, s_code, q_code):
    t = nib.Nifti1Image(np.zeros(SHAPE[:3], np.uint8), aff)
    t.set_sform(aff, code=s_code)
    t.set_qform(aff, code=q_code)
    return t.header


@pytest.mark.parametrize("name", list(AFFINES))
@pytest.mark.parametrize("codes,want", [((4, 1), 4), ((0, 1), 1), ((0, 0), 2), ((3, 0), 3)])
@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_written_header_and_data_read_back_by_nibabel_and_nilearn(tmp_path, name, codes, want, sequential, suffix):
    from nilearn.image import load_img

    aff = AFFINES[name]
    zooms = tuple(np.linalg.norm(aff[:3, :3], axis=0))
    rng = np.random.default_rng(0)
    mask = rng.random(SHAPE[:3]) > 0.3
    vals = rng.standard_normal((SHAPE[3], int(mask.sum()))).astype(np.float32)
    hdr = nifti_header(SHAPE, aff, zooms, 0.72, template=_template(aff, *codes), toffset=3.25)
    out = tmp_path / f"s{suffix}"
    with StreamingNifti(out, hdr, sequential=sequential, threads=2) as w:
        w.write_masked(0, vals[:2], mask)
        assert not out.exists()  # nothing at the output path before finish
        w.write_masked(2, vals[2:], mask)
        w.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary left
    img = nib.load(out)
    h = img.header
    np.testing.assert_allclose(img.affine, aff, atol=1e-5)
    np.testing.assert_allclose(h.get_qform(), aff, atol=1e-5)  # a rigid grid: the qform holds it too
    assert int(h["sform_code"]) == int(h["qform_code"]) == want
    assert nib.aff2axcodes(img.affine) == nib.aff2axcodes(aff)
    assert h.get_xyzt_units() == ("mm", "sec") and h.get_zooms()[3] == np.float32(0.72) and float(h["toffset"]) == 3.25
    np.testing.assert_allclose(h.get_zooms()[:3], zooms, rtol=1e-6)
    assert img.get_data_dtype() == np.float32 and img.dataobj.offset == 352 and img.shape == SHAPE
    assert float(img.dataobj.slope) == 1.0 and float(img.dataobj.inter) == 0.0
    opener = gzip.open if suffix == ".nii.gz" else open
    with opener(out, "rb") as fh:
        fresh = nib.Nifti1Header.from_fileobj(fh, check=False)
    assert nib.Nifti1Header.diagnose_binaryblock(fresh.binaryblock) == ""  # nibabel's header checker finds nothing to fix
    assert fresh["magic"] == b"n+1" and int(fresh["vox_offset"]) == 352
    data = img.get_fdata()
    np.testing.assert_array_equal(data[mask].T, vals)
    assert (data[~mask] == 0).all()
    nl = load_img(out)
    np.testing.assert_array_equal(nl.get_fdata(), data)
    np.testing.assert_allclose(nl.affine, img.affine)


def test_finish_renames_a_temporary_in_the_same_folder(tmp_path, monkeypatch):
    """Atomic writing: the data go to a temporary file in the output's folder, moved into place by os.replace."""
    import eeg2fmri.synthesis.nifti as mod

    calls = []
    real = os.replace

    def spy(src, dst):
        calls.append((os.fspath(src), os.fspath(dst), os.path.exists(dst)))
        return real(src, dst)

    monkeypatch.setattr(mod.os, "replace", spy)
    hdr = nifti_header(SHAPE, AFFINES["las"], (2.5, 3.0, 3.3), 2.0)
    for seq in (False, True):
        for suffix in (".nii", ".nii.gz"):
            out = tmp_path / f"o{int(seq)}{suffix}"
            with StreamingNifti(out, hdr, sequential=seq, threads=2) as w:
                w.write(0, np.ones(SHAPE, np.float32))
                w.finish()
            src, dst, existed = calls[-1]
            assert dst == str(out.absolute()) and not existed
            assert os.path.dirname(src) == str(tmp_path.absolute()) and src != dst
            assert not os.path.exists(src)
            np.testing.assert_array_equal(nib.load(out).get_fdata(), 1.0)


def test_sheared_grid_has_no_conflicting_qform(tmp_path):
    aff = np.array([[2.0, 0.3, 0, 1], [0, 2.0, 0, 2], [0, 0, 2.0, 3], [0, 0, 0, 1]])
    hdr = nifti_header(SHAPE, aff, tuple(np.linalg.norm(aff[:3, :3], axis=0)), 2.0)
    with StreamingNifti(tmp_path / "s.nii", hdr) as w:
        w.write(0, np.zeros(SHAPE, np.float32))
        w.finish()
    h = nib.load(tmp_path / "s.nii").header
    q, qc = h.get_qform(coded=True)
    assert qc in (0, None) or np.allclose(q, aff, atol=1e-3)
    assert h.get_sform(coded=True)[1] == 2 and np.allclose(nib.load(tmp_path / "s.nii").affine, aff)
    # the prepared/model mask.nii.gz too (grid_image); an affine a qform can hold keeps it, with the sform's code
    from eeg2fmri.io.bold import grid_image

    g = grid_image(np.zeros(SHAPE[:3], np.uint8), aff, code=4)
    assert g.header.get_qform(coded=True)[1] == 0 and g.header.get_sform(coded=True)[1] == 4
    plain = np.array([[-2.0, 0, 0, 10], [0, 2.0, 0, -4], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    hdr2 = nifti_header(SHAPE, plain, (2.0, 2.0, 2.5), 2.0)
    assert hdr2.get_qform(coded=True)[1] == 2 and np.allclose(hdr2.get_qform(), plain)
    g2 = grid_image(np.zeros(SHAPE[:3], np.uint8), plain, code=4)
    assert g2.header.get_qform(coded=True)[1] == 4 and np.allclose(g2.header.get_qform(), plain)
    # a rotation near 180 degrees is no shear: its qform is kept (a review: a float32 round trip flagged it)
    from nibabel.eulerangles import euler2mat

    rot = np.eye(4)
    rot[:3, :3] = euler2mat(z=np.deg2rad(179.9)) @ np.diag([3.0, 3.0, 3.5])
    g3 = grid_image(np.zeros(SHAPE[:3], np.uint8), rot, code=2)
    assert g3.header.get_qform(coded=True)[1] == 2 and np.allclose(g3.header.get_qform(), rot, atol=1e-3)


# --------------------------------------------------------------------------- end to end from a LAS NIfTI-2 BOLD
def test_synthesis_from_las_nifti2_msec_bold_is_on_the_bold_grid(tmp_path):
    """Prepare (LAS int16 NIfTI-2 BOLD, sform code 4 / qform code 1, TR 2000 msec), fit ridge_hrf, synthesise from the
    EEG: the output's voxel-to-world mapping is nibabel's of the BOLD, the space code is the BOLD's sform code, TR 2 s
    in seconds, zero outside the mask; nilearn resamples the output onto the BOLD as the identity."""
    from nilearn.image import resample_to_img

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.targets import make_split, split_targets
    from eeg2fmri.models import save_model
    from eeg2fmri.simulate import simulate_dataset
    from eeg2fmri.synthesis import synthesize
    from eeg2fmri.training import fit_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        root = simulate_dataset(tmp_path / "bids", progress_bar=False, n_subjects=1, minutes=4, voxel_size=12.0, n_channels=8,
                                n_regions=8, n_networks=3, sfreq=100.0, seed=7)
    bp = next(root.rglob("*_bold.nii.gz"))
    o = nib.load(bp)
    d = np.asarray(o.dataobj)[::-1].copy()
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, d.shape[0] - 1
    aff = o.affine @ flip
    img = nib.Nifti2Image(d, aff)
    img.set_sform(aff, 4)
    img.set_qform(aff, 1)
    img.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm", "msec")
    img.header.set_zooms((12.0, 12.0, 12.0, 2000.0))
    bp.unlink()
    bold = bp.with_name(bp.name.replace(".nii.gz", ".nii"))
    nib.save(img, bold)
    ref = nib.load(bold)
    assert nib.aff2axcodes(ref.affine)[0] == "L"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        ds = prepare_dataset(root, progress_bar=False)
        sp = make_split(ds, "within")
        fitted = fit_model(ds, sp, "ridge_hrf", targets=split_targets(ds, sp))
        md = tmp_path / "model"
        save_model(fitted.model, md, spec=fitted.spec, name="ridge_hrf", hparams=fitted.model.get_params(), mask=ds.mask,
                   affine=ds.affine, window={"n_frames": sp.n_frames, "lag": sp.lag}, prepare=ds.config.to_dict(), xform_code=ds.xform_code)
        out = synthesize(next(root.rglob("*_eeg.vhdr")), md, tmp_path / "synth_bold.nii.gz", progress_bar=False)
    s = nib.load(out)
    np.testing.assert_allclose(s.affine, ref.affine, atol=1e-5)
    assert s.shape[:3] == ref.shape[:3]
    assert int(s.header["sform_code"]) == 4
    assert s.header.get_xyzt_units() == ("mm", "sec") and s.header.get_zooms()[3] == pytest.approx(2.0)
    assert json.loads(out.with_name("synth_bold.json").read_text())["RepetitionTime"] == 2.0
    data = np.asarray(s.dataobj)
    assert (data[~ds.mask] == 0).all() and data[ds.mask].std() > 0
    rs = resample_to_img(s, ref, interpolation="nearest", force_resample=True, copy_header=True)
    np.testing.assert_array_equal(np.asarray(rs.dataobj), data)
