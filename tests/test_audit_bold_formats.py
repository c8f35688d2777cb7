"""BOLD NIfTI inputs in unusual but legal encodings, read by eeg2fmri and compared with nibabel / nilearn.

Complements tests/test_io_bold_equivalence.py (NIfTI-1 float32, nibabel-chosen int16 scaling, big-endian, one
extension, RAS affine): here the scaling is set by hand (uint8 / int16 with a negative slope, float64 with a slope),
NIfTI-2 headers (544-byte header, float64 pixdim), TR units usec, a singleton 5th dimension, and -- end to end through
prepare_dataset -- LAS/oblique/qform-only/sform!=qform affines with the mask checked in world space, plus
resample_bold on non-RAS sources against nilearn.
"""

from __future__ import annotations

import gzip
import io
import warnings

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.io.bold import iter_bold_chunks, load_masked_bold, read_bold
from eeg2fmri.utils.validation import Eeg2fmriInputError

SHAPE = (7, 6, 5, 11)
AFFINE = np.array([[3.0, 0, 0, -10], [0, 3.5, 0, -12], [0, 0, 4.0, -8], [0, 0, 0, 1]])


def _stored(seed=0, lo=0, hi=250):
    return np.random.default_rng(seed).integers(lo, hi, SHAPE)


def _save_with_scaling(path, stored: np.ndarray, dtype, slope: float, inter: float, cls=nib.Nifti1Image, ext: bool = False):
    """Write ``stored`` (integers or floats) verbatim as ``dtype`` and then set scl_slope/scl_inter in the header bytes."""
    img = cls(stored.astype(dtype), AFFINE)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((3.0, 3.5, 4.0, 2.0))
    if ext:
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"audit " * 40))
    raw_path = path.with_name("tmp_" + path.name.replace(".gz", ""))
    nib.save(img, raw_path)
    blob = bytearray(raw_path.read_bytes())
    raw_path.unlink()
    hdr_cls = nib.Nifti2Header if cls is nib.Nifti2Image else nib.Nifti1Header
    hdr = hdr_cls.from_fileobj(io.BytesIO(bytes(blob)))
    assert np.array_equal(np.frombuffer(bytes(blob), dtype=hdr.get_data_dtype(), offset=int(hdr["vox_offset"]),
                                        count=stored.size).reshape(SHAPE, order="F"), stored.astype(dtype))  # verbatim
    hdr["scl_slope"], hdr["scl_inter"] = slope, inter
    buf = io.BytesIO()
    hdr.write_to(buf)
    blob[: len(buf.getvalue())] = buf.getvalue()
    path.write_bytes(gzip.compress(bytes(blob)) if path.name.endswith(".gz") else bytes(blob))
    return path


SCALED = [  # name, dtype, slope, inter, stored range, class, extension
    ("u8_slope_inter", np.uint8, 0.5, -10.0, (0, 256), nib.Nifti1Image, False),
    ("i16_negative_slope", np.int16, -0.25, 1000.0, (-3000, 3000), nib.Nifti1Image, False),
    ("f64_slope", np.float64, 2.0, 1.5, (0, 1000), nib.Nifti1Image, False),
    ("nifti2_i16_scaled_ext", np.int16, 0.125, 3.0, (-3000, 3000), nib.Nifti2Image, True),
    ("nifti2_u8", np.uint8, 1.0, 0.0, (0, 256), nib.Nifti2Image, False),
]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("name,dtype,slope,inter,rng_,cls,ext", SCALED, ids=[c[0] for c in SCALED])
def test_scaled_and_nifti2_bold_equal_nibabel(tmp_path, suffix, name, dtype, slope, inter, rng_, cls, ext):
    """read_bold + iter_bold_chunks + load_masked_bold == nibabel's get_fdata() == stored * slope + inter."""
    stored = _stored(1, *rng_)
    path = _save_with_scaling(tmp_path / f"{name}{suffix}", stored, dtype, slope, inter, cls, ext)
    ref = nib.load(path)
    assert type(ref) is cls and ref.get_data_dtype() == np.dtype(dtype)
    assert float(ref.dataobj.slope) == slope and float(ref.dataobj.inter) == inter  # the case is what it says
    if ext:
        assert ref.dataobj.offset > 544
    want = stored.astype(np.float64) * slope + inter
    np.testing.assert_allclose(ref.get_fdata(), want, rtol=1e-12)
    img, tr = read_bold(path)
    assert tr == 2.0
    np.testing.assert_array_equal(img.affine, ref.affine)
    got = np.concatenate([x for _, x in iter_bold_chunks(img, 4, where=str(path))], axis=3)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-4)
    mask = np.zeros(SHAPE[:3], bool)
    mask[1:5, 2:4, 1:3] = True
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # corners: an offset error moves them
    masked, _, mean = load_masked_bold(img, mask, chunk_volumes=3)
    np.testing.assert_allclose(masked, want[mask].T, rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(mean, want.mean(3), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("cls", [nib.Nifti1Image, nib.Nifti2Image])
@pytest.mark.parametrize("unit,value", [("sec", 0.72), ("msec", 720.0), ("usec", 720000.0)])
def test_header_tr_units_nifti1_and_nifti2(tmp_path, cls, unit, value):
    """TR from pixdim[4] with its time unit (NIfTI-1 float32 and NIfTI-2 float64 pixdim) == nibabel's zoom / unit."""
    img = cls(np.ones(SHAPE, np.float32), AFFINE)
    img.header.set_zooms((3.0, 3.5, 4.0, value))
    img.header.set_xyzt_units("mm", unit)
    nib.save(img, tmp_path / "b.nii.gz")
    ref = nib.load(tmp_path / "b.nii.gz")
    assert ref.header.get_xyzt_units()[1] == unit
    _, tr = read_bold(tmp_path / "b.nii.gz")
    want = float(ref.header.get_zooms()[3]) / {"sec": 1.0, "msec": 1e3, "usec": 1e6}[unit]
    assert tr == pytest.approx(want, rel=1e-7) and tr == pytest.approx(0.72, rel=1e-7)


def test_singleton_fifth_dimension_is_refused_like_nilearn(tmp_path):
    """(X, Y, Z, T, 1): nilearn refuses it as a 4D image (DimensionError); read_bold refuses it with a clear input error."""
    from nilearn.image import check_niimg_4d

    nib.save(nib.Nifti1Image(np.ones(SHAPE + (1,), np.float32), AFFINE), tmp_path / "b5.nii")
    with pytest.raises(Exception, match="4D"):
        check_niimg_4d(tmp_path / "b5.nii")
    with pytest.raises(Eeg2fmriInputError, match=r"expected a 4D BOLD image .* found shape \(7, 6, 5, 11, 1\)"):
        read_bold(tmp_path / "b5.nii")


# --------------------------------------------------------------------------- end to end: prepare on reoriented files
@pytest.fixture(scope="module")
def sim_bids(tmp_path_factory):
    from eeg2fmri.simulate import simulate_dataset

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        return simulate_dataset(tmp_path_factory.mktemp("sim") / "bids", progress_bar=False, n_subjects=1, minutes=1.5,
                                voxel_size=12.0, n_channels=8, n_regions=8, n_networks=3, sfreq=100.0, seed=7)


def _rotation(deg):
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def _variant(kind, data, aff):
    """(data, affine, sform (matrix, code), qform (matrix, code), dtype, header class) of one variant of the BOLD file."""
    n0 = data.shape[0]
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, n0 - 1
    if kind == "las_int16_nifti2":
        a = aff @ flip
        return data[::-1], a, (a, 2), (a, 1), np.int16, nib.Nifti2Image
    if kind == "qform_only_las":  # sform_code 0 with a wrong sform matrix: nibabel takes the qform
        a = aff @ flip
        return data[::-1], a, (np.diag([9.0, 9.0, 9.0, 1.0]), 0), (a, 1), np.float32, nib.Nifti1Image
    if kind == "sform_differs_from_qform":  # nibabel takes the sform; the qform is shifted by 30 mm
        q = aff.copy()
        q[:3, 3] += 30.0
        return data, aff, (aff, 4), (q, 1), np.float64, nib.Nifti1Image
    if kind == "oblique":
        a = aff.copy()
        a[:3, :3] = _rotation(12.0) @ aff[:3, :3]
        return data, a, (a, 1), (a, 1), np.float32, nib.Nifti1Image
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["las_int16_nifti2", "qform_only_las", "sform_differs_from_qform", "oblique"])
def test_prepare_on_reoriented_bold_equals_nibabel_and_nilearn(sim_bids, tmp_path, kind):
    """prepare_dataset on a copy of a simulated dataset whose BOLD is rewritten (flipped axis + LAS affine, qform-only,
    sform != qform, oblique; int16 NIfTI-2 / float64): the grid is nibabel's (img.affine), the data mask is nilearn's
    compute_epi_mask, every prepared series is nibabel's get_fdata() at the mask, and a flipped file gives the same
    mask in world space as the original; the saved mask.nii.gz carries that affine."""
    import shutil

    from nilearn.masking import compute_epi_mask

    from eeg2fmri.datasets import prepare_dataset
    from eeg2fmri.datasets.prepared import load_prepared

    root = tmp_path / "bids"
    shutil.copytree(sim_bids, root)
    bold_path = next(root.rglob("*_bold.nii.gz"))
    orig = nib.load(bold_path)
    data0 = np.asarray(orig.dataobj, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        ds0 = prepare_dataset(sim_bids, progress_bar=False)
    data, aff, (s_aff, s_code), (q_aff, q_code), dtype, cls = _variant(kind, data0, orig.affine)
    img = cls(np.ascontiguousarray(data), aff)
    img.set_sform(s_aff, code=s_code)
    img.set_qform(q_aff, code=q_code)
    img.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms(tuple(np.linalg.norm(aff[:3, :3], axis=0)) + (2.0,))
    bold_path.unlink()
    new_path = bold_path.with_name(bold_path.name.replace(".nii.gz", ".nii"))
    nib.save(img, new_path)
    ref = nib.load(new_path)
    np.testing.assert_allclose(ref.affine, aff, atol=1e-4)  # the file is read by nibabel as meant
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        ds = prepare_dataset(root, progress_bar=False)
    np.testing.assert_allclose(ds.affine, ref.affine, atol=1e-6)
    full = ref.get_fdata()
    mask = np.asarray(ds.mask, bool)
    want_mask = compute_epi_mask(nib.Nifti1Image(full.mean(3), ref.affine), opening=False).get_fdata() > 0  # 12 mm voxels
    np.testing.assert_array_equal(mask, want_mask)
    run = ds.runs[0]
    a, b = ds.provenance["inputs"][run.key]["volumes"]
    np.testing.assert_allclose(np.asarray(run.bold), full[mask].T[a:b], rtol=1e-6, atol=1e-3)
    if kind in ("las_int16_nifti2", "qform_only_las"):  # the same voxels in world space as the original file
        np.testing.assert_array_equal(mask[::-1], ds0.mask)
    else:
        np.testing.assert_array_equal(mask, ds0.mask)
    assert ds.provenance["bold_xform_code"] == (s_code or q_code)
    saved = ds.save(tmp_path / "prep")
    back = load_prepared(saved)
    m_img = nib.load(saved / "mask.nii.gz")
    np.testing.assert_allclose(m_img.affine, ref.affine, atol=1e-4)
    np.testing.assert_allclose(back.affine, ds.affine, atol=1e-9)
    np.testing.assert_array_equal(back.mask, mask)


# --------------------------------------------------------------------------- resample_bold on non-RAS sources
_SRC_SHAPE = (9, 11, 13, 4)


def _src_affine(kind):
    base = np.array([[3.0, 0, 0, -12.0], [0, 3.5, 0, -20.0], [0, 0, 4.0, -25.0], [0, 0, 0, 1]])
    if kind == "las":
        return np.diag([-1.0, 1, 1, 1]) @ base
    if kind == "lps":
        return np.diag([-1.0, -1, 1, 1]) @ base
    if kind == "oblique_las":
        a = np.diag([-1.0, 1, 1, 1]) @ base
        a[:3, :3] = _rotation(15.0).T @ a[:3, :3]
        return a
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["las", "lps", "oblique_las"])
@pytest.mark.parametrize("kw", [{"target_shape": (6, 8, 7)}, {"voxel_size": 4.6}], ids=["shape", "voxel"])
@pytest.mark.parametrize("qform_only", [False, True], ids=["sform", "qform_only"])
@pytest.mark.filterwarnings("ignore:The provided image has no sform in its header:UserWarning")  # nilearn's, on the qform-only file
def test_resample_bold_non_ras_sources_equal_nilearn(tmp_path, kind, kw, qform_only):
    """resample_bold(file, target_shape | voxel_size) on LAS / LPS / oblique sources (also qform-only, int16 scaled)
    == nilearn.image.resample_img of the same file onto the grid it chose; the grid keeps the source's axis codes and
    world-box centre; the TR is kept."""
    from nilearn.image import resample_img

    from eeg2fmri.preprocessing.volumes import resample_bold, world_box

    rng = np.random.default_rng(11)
    data = rng.standard_normal(_SRC_SHAPE).cumsum(0).cumsum(1) + 100.0
    aff = _src_affine(kind)
    img = nib.Nifti1Image(data, aff)
    img.set_data_dtype(np.int16)  # nibabel scales it
    if qform_only:
        img.set_sform(np.diag([7.0, 7.0, 7.0, 1.0]), code=0)
        img.set_qform(aff, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((3.0, 3.5, 4.0, 1.5))
    nib.save(img, tmp_path / "src.nii.gz")
    src = nib.load(tmp_path / "src.nii.gz")
    np.testing.assert_allclose(src.affine, aff, atol=1e-5)
    out = resample_bold(tmp_path / "src.nii.gz", **kw)
    ref = resample_img(src, target_affine=out.affine, target_shape=out.shape[:3], interpolation="continuous",
                       force_resample=True, copy_header=True)
    r = np.asarray(ref.dataobj, dtype=np.float64)
    assert (np.abs(r) > 0).mean() > 0.3
    np.testing.assert_allclose(out.get_fdata(), r, rtol=0, atol=1e-5 * np.abs(r).max())
    assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(aff)
    lo0, hi0 = world_box(aff, _SRC_SHAPE)
    lo1, hi1 = world_box(out.affine, out.shape)
    np.testing.assert_allclose((lo0 + hi0) / 2, (lo1 + hi1) / 2, atol=1e-4)
    assert out.header.get_zooms()[3] == pytest.approx(1.5)


# --------------------------------------------------------------------------- masks given as files (an audit found both bugs)
def _mask_case(sim_bids, tmp_path, mask_data):
    bold = next(sim_bids.rglob("*_bold.nii.gz"))
    p = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(mask_data, nib.load(bold).affine), p)
    return bold, p


def test_mask_file_with_singleton_4th_dim_equals_nilearn_apply_mask(sim_bids, tmp_path):
    from nilearn.masking import apply_mask

    from eeg2fmri.datasets import prepare_dataset

    gt = np.asarray(nib.load(sim_bids / "derivatives/groundtruth/mask.nii.gz").dataobj) > 0
    bold, p = _mask_case(sim_bids, tmp_path, gt.astype(np.uint8)[..., None])
    want = apply_mask(bold, p)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        ds = prepare_dataset(sim_bids, {"mask": str(p)}, progress_bar=False)
    a, b = ds.provenance["inputs"][ds.runs[0].key]["volumes"]
    np.testing.assert_allclose(np.asarray(ds.runs[0].bold), want[a:b], rtol=1e-6)


def test_empty_mask_file_is_refused_like_nilearn(sim_bids, tmp_path):
    from nilearn.masking import apply_mask

    from eeg2fmri.datasets import prepare_dataset

    bold, p = _mask_case(sim_bids, tmp_path, np.zeros(nib.load(next(sim_bids.rglob("*_bold.nii.gz"))).shape[:3], np.uint8))
    with pytest.raises(ValueError, match="empty"):
        apply_mask(bold, p)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        with pytest.raises(Eeg2fmriInputError, match=r"mask\.nii\.gz: the mask selects no voxel \(no value above 0\); pass a mask"):
            prepare_dataset(sim_bids, {"mask": str(p)}, progress_bar=False)
    # a mask of several volumes: refused with the way on
    _, p2 = _mask_case(sim_bids, tmp_path, np.ones((*nib.load(bold).shape[:3], 2), np.uint8))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        with pytest.raises(Eeg2fmriInputError, match=r"expected a 3D mask \(one volume\), found shape .*img\.slicer\[\.\.\., 0\]"):
            prepare_dataset(sim_bids, {"mask": str(p2)}, progress_bar=False)
    # a mask on another grid: refused with how to resample it (user test 38: the message named no tool)
    shape = nib.load(bold).shape[:3]
    _, p3 = _mask_case(sim_bids, tmp_path, np.ones((shape[0] + 1, *shape[1:]), np.uint8))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only .* head digitization points", category=RuntimeWarning)  # MNE, 8 simulated channels
        with pytest.raises(Eeg2fmriInputError, match=rf"mask\.nii\.gz: mask grid \({shape[0] + 1}, {shape[1]}, {shape[2]}\) differs from the BOLD "
                                                     r"grid .*resample it to the BOLD grid first, with nearest-neighbour interpolation \(nilearn: "
                                                     r"resample_to_img\(mask, bold, interpolation='nearest'"):
            prepare_dataset(sim_bids, {"mask": str(p3)}, progress_bar=False)


@pytest.mark.parametrize("unit", ["hz", "ppm", "rads"])
def test_a_spectral_fourth_axis_is_no_repetition_time(tmp_path, unit):
    """pixdim[4] with a spectral time unit (nibabel reports 'hz', 'ppm' or 'rads') is not a TR: it was read as seconds
    (an audit); now the missing TR is an error that says why, and a TR given or in the sidecar is used."""
    import json

    img = nib.Nifti1Image(np.ones((3, 3, 3, 5), np.float32), np.eye(4))
    img.header.set_zooms((1, 1, 1, 0.5))
    img.header.set_xyzt_units("mm", unit)
    p = tmp_path / "sub-01_task-x_bold.nii"
    nib.save(img, p)
    assert nib.load(p).header.get_xyzt_units()[1] == unit
    with pytest.raises(Eeg2fmriInputError, match=rf"no repetition time in a sidecar or the header \(the header's time unit is '{unit}': its 4th axis is not time\); pass tr="):
        read_bold(p)
    assert read_bold(p, tr=2.0)[1] == 2.0
    (tmp_path / "sub-01_task-x_bold.json").write_text(json.dumps({"RepetitionTime": 1.5}))
    assert read_bold(p)[1] == 1.5
