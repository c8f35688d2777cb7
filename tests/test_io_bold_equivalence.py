"""The BOLD reader and the prepared BOLD, checked against nibabel and nilearn on the same files.

Every prepared voxel time series must equal what nibabel reads at that voxel
(``np.asarray(img.dataobj)[mask]``) and what nilearn's ``apply_mask`` returns; the
automatic ("data") mask must equal nilearn's ``compute_epi_mask`` of the mean image.
The files cover the cases where a hand-written reader goes wrong: ``.nii`` and
``.nii.gz``, float32 and int16 with ``scl_slope``/``scl_inter``, big-endian data, a
header extension (data offset past 352 bytes) and a last chunk shorter than the others.
"""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from eeg2fmri.io.bold import iter_bold_chunks, load_masked_bold, read_bold
from eeg2fmri.utils.validation import Eeg2fmriInputError

SHAPE = (13, 11, 9, 23)  # a different size on every axis; 23 volumes = chunks of 4 leave a short last one
AFFINE = np.array([[3.0, 0, 0, -10], [0, 3.5, 0, -12], [0, 0, 4.0, -8], [0, 0, 0, 1]])


def _data(seed: int = 0) -> np.ndarray:
    """A bright ellipsoid ("brain", varying intensity) in a dark field, plus noise over time."""
    rng = np.random.default_rng(seed)
    ijk = np.indices(SHAPE[:3]).astype(float)
    centre = np.array([6.0, 5.0, 4.0])[:, None, None, None]
    inside = (((ijk - centre) / np.array([5.5, 4.5, 3.6])[:, None, None, None]) ** 2).sum(0) <= 1
    base = np.where(inside, 800.0 + 300.0 * rng.random(SHAPE[:3]), 40.0)
    return (base[..., None] + 20.0 * rng.standard_normal(SHAPE)).astype(np.float32)


def _write(tmp_path, name: str, kind: str):
    """Write one test image; return its path and the loaded nibabel image."""
    data = _data()
    if kind == "bigendian":
        hdr = nib.Nifti1Header(endianness=">")
        img = nib.Nifti1Image(data, AFFINE, hdr)
    else:
        img = nib.Nifti1Image(data, AFFINE)
    if kind == "int16_scaled":
        img.set_data_dtype(np.int16)  # nibabel writes scl_slope / scl_inter to fit the float range
    if kind == "extension":
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", b"eeg2fmri test extension " * 9))
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = 2.0
    path = tmp_path / name
    nib.save(img, path)
    return path, nib.load(path)


CASES = [
    ("f32.nii", "float32"),
    ("f32.nii.gz", "float32"),
    ("i16.nii", "int16_scaled"),
    ("i16.nii.gz", "int16_scaled"),
    ("be.nii", "bigendian"),
    ("be.nii.gz", "bigendian"),
    ("ext.nii", "extension"),
    ("ext.nii.gz", "extension"),
]


@pytest.mark.parametrize("name,kind", CASES)
def test_chunks_equal_nibabel(tmp_path, name, kind):
    """``iter_bold_chunks`` == ``np.asarray(img.dataobj, float32)`` (nibabel), chunk by chunk."""
    path, img = _write(tmp_path, name, kind)
    # the file really has the property the case is about
    if kind == "int16_scaled":
        assert img.dataobj.dtype == np.int16 and img.dataobj.slope != 1.0 and img.dataobj.inter != 0.0
    if kind == "bigendian":
        assert img.header.endianness == ">"
    if kind == "extension":
        assert img.dataobj.offset > 352
    ref = np.asarray(img.dataobj, dtype=np.float32)
    starts, blocks = [], []
    for a, x in iter_bold_chunks(img, chunk_volumes=4, where=str(path)):
        assert x.dtype == np.float32 and x.shape[:3] == SHAPE[:3]
        starts.append(a)
        blocks.append(x)
    assert starts == list(range(0, SHAPE[3], 4)) and blocks[-1].shape[3] == SHAPE[3] % 4
    got = np.concatenate(blocks, axis=3)
    # float32 precision: nibabel's own float32 reading, so equal up to the last bit of the scaling
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0)
    # and the values are the ones written (int16 scaling quantises: half a step at most)
    tol = float(img.dataobj.slope) / 2 + 1e-3 if kind == "int16_scaled" else 1e-4
    assert np.max(np.abs(got - _data())) <= tol


@pytest.mark.parametrize("name,kind", CASES)
def test_masked_bold_equals_nilearn_apply_mask(tmp_path, name, kind):
    """``load_masked_bold`` with a given mask == ``nilearn.masking.apply_mask`` == ``dataobj[mask]``."""
    from nilearn.masking import apply_mask

    path, img = _write(tmp_path, name, kind)
    mask = np.zeros(SHAPE[:3], bool)
    mask[1:6, 2:5, 1:4] = True
    mask[0, 0, 0] = True  # a corner voxel: any offset error moves it
    got, _, mean = load_masked_bold(img, mask, chunk_volumes=5, where=str(path))
    ref = apply_mask(img, nib.Nifti1Image(mask.astype(np.uint8), AFFINE))
    assert got.shape == ref.shape == (SHAPE[3], int(mask.sum()))
    np.testing.assert_allclose(got, ref, rtol=1e-6)
    np.testing.assert_allclose(got, np.asarray(img.dataobj, dtype=np.float32)[mask].T, rtol=1e-6)
    np.testing.assert_allclose(mean, np.asarray(img.dataobj, dtype=np.float64).mean(axis=3), rtol=1e-5)
    r = [np.corrcoef(got[:, j], ref[:, j])[0, 1] for j in range(got.shape[1])]
    assert np.median(r) > 0.999


@pytest.mark.parametrize("name,kind", [("f32.nii.gz", "float32"), ("i16.nii", "int16_scaled"), ("be.nii.gz", "bigendian")])
def test_data_mask_equals_nilearn_epi_mask(tmp_path, name, kind):
    """The automatic mask == ``nilearn.masking.compute_epi_mask`` of nilearn's mean image (same opening) inside the grid; on
    the outer layers of the faces, which nilearn's opening always erodes, nilearn's mask of the mean image padded with its
    faces repeated (this brain reaches the faces: user test 44's cropped field of view)."""
    from nilearn.image import mean_img
    from nilearn.masking import apply_mask, compute_epi_mask

    path, img = _write(tmp_path, name, kind)
    got, mask, _ = load_masked_bold(img, None, chunk_volumes=6, where=str(path))
    # compute_mask's opening for voxels of at most 4 mm (these are 3-4 mm) is 2
    mean = mean_img(img, copy_header=True)
    ref = compute_epi_mask(mean, opening=2).get_fdata() > 0
    band = np.ones(SHAPE[:3], bool)
    band[2:-2, 2:-2, 2:-2] = False
    np.testing.assert_array_equal(mask[~band], ref[~band])
    assert not ref[band].any()  # nilearn: nothing on the outer two layers
    aff = mean.affine.copy()
    aff[:3, 3] -= aff[:3, :3] @ np.full(3, 2.0)
    padded = compute_epi_mask(nib.Nifti1Image(np.pad(mean.get_fdata(), 2, mode="edge"), aff), opening=2).get_fdata() > 0
    # ... within nilearn's threshold of the image itself (no opening): the padded histogram's threshold would add a ring of background
    own = compute_epi_mask(mean, opening=False).get_fdata() > 0
    np.testing.assert_array_equal(mask[band], (padded[2:-2, 2:-2, 2:-2] & own)[band])
    assert mask[band].sum() > 20  # the brain on the faces is kept
    ref = mask
    np.testing.assert_allclose(got, apply_mask(img, nib.Nifti1Image(ref.astype(np.uint8), AFFINE)), rtol=1e-6)


def test_data_mask_finds_the_brain(tmp_path):
    """On a brain-like image the EPI mask is the bright object (not a shifted, scrambled one)."""
    from nilearn.masking import compute_epi_mask

    shape = (13, 11, 9, 17)
    ijk = np.indices(shape[:3]).astype(float)
    centre = np.array([6.0, 4.5, 4.0])[:, None, None, None]
    inside = (((ijk - centre) / np.array([5.0, 4.0, 3.3])[:, None, None, None]) ** 2).sum(0) <= 1
    rng = np.random.default_rng(3)
    data = np.where(inside[..., None], 1000.0, 30.0) + 5 * rng.standard_normal(shape)
    path = tmp_path / "brain.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([6.0, 6.0, 6.0, 1.0])), path)
    img = nib.load(path)
    _, mask, _ = load_masked_bold(img, None, chunk_volumes=5, where=str(path))
    ref = compute_epi_mask(nib.Nifti1Image(np.asarray(img.dataobj).mean(3), img.affine), opening=1).get_fdata() > 0
    np.testing.assert_array_equal(mask, ref)
    dice = 2 * (mask & inside).sum() / (mask.sum() + inside.sum())
    assert dice > 0.95


def test_in_memory_image_is_sliced(tmp_path):
    """An image built in memory (no file) is read from its array, like nibabel does."""
    data = _data(5)
    img = nib.Nifti1Image(data, AFFINE)
    got = np.concatenate([x for _, x in iter_bold_chunks(img, 6)], axis=3)
    np.testing.assert_array_equal(got, data)


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_file_is_a_clear_error(tmp_path, name):
    path, _ = _write(tmp_path, name, "float32")
    raw = path.read_bytes()
    if name.endswith(".gz"):
        import gzip

        raw = gzip.compress(gzip.decompress(raw)[: 352 + 4 * 13 * 11 * 9 * 10])
    else:
        raw = raw[: 352 + 4 * 13 * 11 * 9 * 10]
    path.write_bytes(raw)
    img = nib.load(path)
    with pytest.raises(Eeg2fmriInputError, match=rf"{name}: could not read volumes .* of 23 .*the file may be truncated, re-copy or re-export it"):
        for _ in iter_bold_chunks(img, 4, where=str(path)):
            pass


def test_prepared_bold_equals_nibabel(tiny_bids, tiny_prepared):
    """End to end: what ``prepare`` stores per run == nibabel's masked reading of the BIDS file."""
    from nilearn.masking import apply_mask, compute_epi_mask

    ds = tiny_prepared
    mask = np.asarray(ds.mask, bool)
    assert len(ds.runs) >= 2
    for run in ds.runs:
        prov = ds.provenance["inputs"][run.key]
        img, _ = read_bold(prov["bold"])
        a, b = prov["volumes"]
        ref = np.asarray(img.dataobj, dtype=np.float32)[mask].T[a:b]
        got = np.asarray(run.bold)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-6)
        np.testing.assert_allclose(got, apply_mask(img, nib.Nifti1Image(mask.astype(np.uint8), img.affine))[a:b], rtol=1e-6)
        r = [np.corrcoef(got[:, j], ref[:, j])[0, 1] for j in range(0, got.shape[1], 7)]
        assert np.median(r) > 0.999
    # the data mask is nilearn's EPI mask of the first run's mean image (12 mm voxels: opening=False)
    first = read_bold(ds.provenance["inputs"][ds.runs[0].key]["bold"])[0]
    mean = nib.Nifti1Image(np.asarray(first.dataobj, dtype=np.float64).mean(3), first.affine)
    np.testing.assert_array_equal(mask, compute_epi_mask(mean, opening=False).get_fdata() > 0)
    # and it covers the simulator's brain: a shifted reader gave a scrambled, half-brain mask
    gt = tiny_bids / "derivatives" / "groundtruth"
    brain = np.asarray(nib.load(next(gt.rglob("mask.nii.gz"))).dataobj) > 0
    dice = 2 * (mask & brain).sum() / (mask.sum() + brain.sum())
    assert dice > 0.8, dice
    meta = json.loads(next(tiny_bids.rglob("*_bold.json")).read_text())
    assert meta["RepetitionTime"] == ds.tr


@pytest.mark.parametrize(("tr", "unit", "text"), [(1.8, "sec", "1.8"), (0.72, "sec", "0.72"), (2.1, "sec", "2.1"), (2.0, "sec", "2.0"),
                                                 (1800.0, "msec", "1.8"), (1.23456789, "sec", "1.2345679")])
def test_header_tr_is_the_shortest_decimal_of_the_float32_pixdim(tmp_path, tr, unit, text):
    """The header TR is the float32 pixdim[4] (as nibabel reads it) written as its shortest round-tripping decimal: 1.8,
    not 1.7999999523162842 (user test: manifests and synthesis sidecars carried the float32 rounding)."""
    img = nib.Nifti1Image(np.zeros((2, 3, 4, 5), np.float32), np.eye(4))
    img.header.set_zooms((1.0, 1.0, 1.0, tr))
    img.header.set_xyzt_units("mm", unit)
    nib.save(img, tmp_path / "b.nii")
    _, got = read_bold(tmp_path / "b.nii")
    scale = 1000.0 if unit == "msec" else 1.0
    assert np.float32(got * scale) == np.float32(nib.load(tmp_path / "b.nii").header.get_zooms()[3])  # nibabel's float32
    assert repr(got) == text


def test_damaged_gzip_stream_is_refused_once_read(tmp_path):
    """User test 35: 64 flipped bytes inside a .nii.gz were prepared silently (values up to 4e36; nibabel never reads the
    gzip trailer with the checksum). Reading every volume now reads the trailer too: gzip's CRC check fails, and the
    error names the file; an intact file still equals nibabel's reading (test_chunks_equal_nibabel)."""
    import gzip
    import zlib

    path, _ = _write(tmp_path, "bad.nii.gz", "float32")
    raw = bytearray(gzip.decompress(path.read_bytes()))
    # a valid deflate stream whose content differs from what the trailer's CRC covers: the damage gzip can find only
    # at the end (flipped bytes in the compressed data often give valid deflate data, as in the user test)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = bytes(raw)
    raw[352 + 4000 : 352 + 4064] = bytes(b ^ 0xFF for b in raw[352 + 4000 : 352 + 4064])
    stream = comp.compress(bytes(raw)) + comp.flush()
    crc_of_intact = zlib.crc32(body).to_bytes(4, "little")
    path.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + stream + crc_of_intact + (len(body) % 2**32).to_bytes(4, "little"))
    img = nib.load(path)
    with pytest.raises(Eeg2fmriInputError, match=r"bad\.nii\.gz: expected an intact gzip stream, got a damaged one \(BadGzipFile: CRC check failed.*re-copy or re-export"):
        for _ in iter_bold_chunks(img, 4, where=str(path)):
            pass
    with pytest.raises(Eeg2fmriInputError, match=r"bad\.nii\.gz: expected an intact gzip stream, got a damaged one"):
        load_masked_bold(img, where=str(path))


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz", "whole.nii", "whole.nii.gz"])
def test_file_size_check_without_reading_the_data(tmp_path, name):
    """datasets --check reported truncated files OK (user test 35): the size a header implies against the file's (.nii)
    or the gzip trailer's length field (.nii.gz), without decompressing."""
    import gzip

    from eeg2fmri.io.bold import bold_file_size_problem

    path, _ = _write(tmp_path, name, "float32")
    need = 352 + 4 * int(np.prod(SHAPE))
    if name.startswith("cut"):
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) * 2 // 3])
        msg = bold_file_size_problem(path, nib.load(path))
        want = (rf"{name}: expected at least {need} bytes .*found \d+: the file is truncated" if name.endswith(".nii") else
                rf"{name}: expected {need} bytes once decompressed .*the gzip trailer says \d+ and reading it fails \(EOFError: .*the file "
                "is truncated or damaged")
        assert msg is not None and __import__("re").search(want, msg)
    else:
        assert bold_file_size_problem(path, nib.load(path)) is None
        if name.endswith(".gz"):
            assert len(gzip.decompress(path.read_bytes())) == need


def test_a_data_mask_of_a_tiny_share_of_the_grid_is_warned(tmp_path, caplog):
    """User test 39: the automatic mask kept 5 of 210 voxels without a word; a brain fills 10-40 % of an EPI grid."""
    import logging

    from eeg2fmri.io.bold import SMALL_MASK_FRACTION, compute_mask

    shape = (23, 19, 17, 6)
    rng = np.random.default_rng(2)
    data = 30.0 + 5 * rng.standard_normal(shape)
    data[10:13, 8:11, 7:10] += 1000.0  # 27 bright voxels of 7,429: 0.4 %
    img = nib.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        mask = compute_mask(img, where="tiny.nii.gz")
    assert mask.mean() < SMALL_MASK_FRACTION
    assert f"tiny.nii.gz: the automatic brain mask (EPI mask of the mean image) keeps {int(mask.sum())} of 7429 voxels" in caplog.text
    assert "pass a mask image on the BOLD grid (prepare option mask=<path>, or mask='mni')" in caplog.text
    caplog.clear()
    data[3:20, 3:16, 3:14] += 1000.0  # a brain-sized object: no warning
    with caplog.at_level(logging.WARNING, logger="eeg2fmri"):
        compute_mask(nib.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0])), where="brain.nii.gz")
    assert "automatic brain mask" not in caplog.text


@pytest.mark.parametrize("voxel,p", [(6.0, 1), (3.0, 2)])
def test_data_mask_keeps_brain_cut_by_the_grid_faces(tmp_path, voxel, p):
    """User test 44: a cropped field of view (brain through two faces of the grid) lost every face voxel to nilearn's
    opening (30 % of an occipital region); now the brain on the faces is kept, no background added, the rest nilearn's."""
    from nilearn.masking import compute_epi_mask

    shape = (14, 12, 10, 7)
    ijk = np.indices(shape[:3]).astype(float)
    centre = np.array([2.0, 6.0, 7.5])[:, None, None, None]  # through the x = 0 face and the top z face
    inside = (((ijk - centre) / np.array([8.0, 4.6, 5.0])[:, None, None, None]) ** 2).sum(0) <= 1
    rng = np.random.default_rng(5)
    data = np.where(inside[..., None], 900.0 + 100 * rng.random(shape[:3])[..., None], 20.0) + 4 * rng.standard_normal(shape)
    img = nib.Nifti1Image(data.astype(np.float32), np.diag([voxel, voxel, voxel, 1.0]))
    _, mask, mean = load_masked_bold(img, None, chunk_volumes=3, where="cropped.nii")
    ref = compute_epi_mask(nib.Nifti1Image(mean, img.affine), opening=p).get_fdata() > 0
    band = np.ones(shape[:3], bool)
    band[p:-p, p:-p, p:-p] = False
    assert not ref[band].any() and (inside & band).sum() > 20  # nilearn drops the brain on the faces
    np.testing.assert_array_equal(mask[~band], ref[~band])
    assert (mask & band).sum() >= 0.9 * (inside & band & (ijk[0] < 14)).sum()  # kept (nearly all: the opening rounds corners)
    assert not (mask & ~inside).any()  # nothing of the background


def test_data_mask_off_the_faces_is_nilearns_exactly(tmp_path):
    """A brain well inside the grid: the face step adds nothing (the mask is nilearn's, bit for bit)."""
    from nilearn.masking import compute_epi_mask

    shape = (17, 15, 13, 6)
    ijk = np.indices(shape[:3]).astype(float)
    inside = (((ijk - np.array([8.0, 7.0, 6.0])[:, None, None, None]) / np.array([5.0, 4.0, 3.5])[:, None, None, None]) ** 2).sum(0) <= 1
    rng = np.random.default_rng(6)
    data = np.where(inside[..., None], 1000.0, 25.0) + 5 * rng.standard_normal(shape)
    img = nib.Nifti1Image(data.astype(np.float32), np.diag([3.0, 3.0, 3.0, 1.0]))
    _, mask, mean = load_masked_bold(img, None, chunk_volumes=4, where="inner.nii")
    ref = compute_epi_mask(nib.Nifti1Image(mean, img.affine), opening=2).get_fdata() > 0
    np.testing.assert_array_equal(mask, ref)
