#!/usr/bin/env python
# ruff: noqa  (a user-testing helper's generator, session 20, written without reading the package; kept as written so that its numbers reproduce)
"""Independent simulated simultaneous EEG-fMRI generator: hidden semi-Markov "brain states".

Written independently of eeg2fmri's own simulators (none of them was read), to test the package on data it was
not designed from.  Only numpy, scipy, mne, mne-bids, nibabel and nilearn (offline template loaders) are used.

Usage:  python sim_user_hmm.py OUT [--subjects 4] [--minutes 6] [--seed 0]

Writes OUT/bids (BIDS: EEG as EDF + channels.tsv/events.tsv via mne-bids, BOLD NIfTI in each subject's oblique
scanner space) and OUT/groundtruth (network atlas per subject in its scanner grid, state sequences, noise-free
EEG-related BOLD, parameters, README.txt).

Generative model (details in OUT/groundtruth/README.txt):
  * K (4-6) discrete brain states; explicit-duration (semi-)Markov chain: durations 2-20 s (gamma, per-state mean),
    next state from a per-subject transition matrix (no self-transitions).
  * EEG: 16 dipoles in a 3-shell sphere head model (mne forward, standard_1020 positions, FCz reference);
    each dipole carries 1-2 AR(2) oscillators (delta/theta/alpha/mu/beta/gamma) plus 1/f background whose
    amplitudes are a state-dependent mixture (smoothed transitions); sensor 1/f + white noise, blinks on EOG and
    frontal channels, slow skin-potential drift, small 50 Hz line.
  * BOLD: 5-8 networks (unions of Gaussian blobs over the MNI152 brain mask, 40-60 % coverage).  Each state
    raises some networks and lowers others; network drive = state mixture -> per-network log-normal-bump HRF
    (peak 4-7 s, variable undershoot).  Plus a non-EEG slow latent per network of similar size, thermal (Rician),
    AR(1) physiological, smooth polynomial drift and global-signal noise; sequential slice timing;
    T1 saturation of the first 3 volumes.  Maps are resampled into an oblique scanner grid (map_coordinates).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import tempfile
import time
import warnings

import numpy as np
from scipy import ndimage, signal

TR = 2.0
VOX = 3.0
FS = 1000.0
GRID_SHAPE = (64, 64, 52)           # scanner matrix (3 mm isotropic): 192 x 192 x 156 mm FOV
SAT = (1.5, 1.2, 1.05)              # T1 saturation of the first volumes
EEG_CH = ['Fp1', 'Fp2', 'F7', 'F3', 'Fz', 'F4', 'F8', 'FC5', 'FC1', 'FC2', 'FC6', 'T7', 'C3', 'Cz', 'C4', 'T8',
          'TP9', 'CP5', 'CP1', 'CP2', 'CP6', 'TP10', 'P7', 'P3', 'Pz', 'P4', 'P8', 'PO9', 'O1', 'Oz', 'O2', 'PO10']
REF = 'FCz'
EOG = 'EOG'

# ---------------------------------------------------------------- EEG source model
# name, region, direction from the sphere centre (head coords: x right, y anterior, z up), oscillators
SOURCES = [
    ('occ_L', 'occ', (-0.35, -0.90, 0.15), ['alpha', 'gamma']),
    ('occ_R', 'occ', (0.35, -0.90, 0.15), ['alpha', 'gamma']),
    ('precuneus', 'par', (0.0, -0.65, 0.55), ['alpha']),
    ('par_L', 'par', (-0.60, -0.50, 0.50), ['alpha', 'beta']),
    ('par_R', 'par', (0.60, -0.50, 0.50), ['alpha', 'beta']),
    ('fm_theta', 'front', (0.0, 0.55, 0.55), ['theta']),
    ('pfc_L', 'front', (-0.40, 0.85, 0.25), ['theta', 'beta']),
    ('pfc_R', 'front', (0.40, 0.85, 0.25), ['theta', 'beta']),
    ('m1_L', 'central', (-0.65, 0.0, 0.70), ['mu', 'beta']),
    ('m1_R', 'central', (0.65, 0.0, 0.70), ['mu', 'beta']),
    ('temp_L', 'temp', (-0.92, -0.10, 0.05), ['theta', 'alpha']),
    ('temp_R', 'temp', (0.92, -0.10, 0.05), ['theta', 'alpha']),
    ('sma', 'central', (0.0, 0.10, 0.95), ['beta']),
    ('pcc', 'deep', (0.0, -0.35, 0.30), ['delta', 'alpha']),
    ('ifg_L', 'front', (-0.75, 0.50, 0.25), ['beta', 'gamma']),
    ('ifg_R', 'front', (0.75, 0.50, 0.25), ['beta', 'gamma']),
]
# band: (centre frequency Hz or None for the subject's IAF-based value, bandwidth Hz, base amplitude)
BANDS = {'delta': (2.5, 1.5, 0.8), 'theta': (6.0, 2.0, 0.7), 'alpha': (None, 1.8, 1.0), 'mu': (None, 2.0, 0.7),
         'beta': (20.0, 4.0, 0.45), 'gamma': (40.0, 8.0, 0.2)}
# state archetypes: multiplier of (band, region); '*' any region; 'bg' = 1/f background of the source
ARCHETYPES = {
    'alpha_rest': {('alpha', 'occ'): 3.0, ('alpha', 'par'): 2.5, ('alpha', 'deep'): 2.0, ('alpha', '*'): 1.5,
                   ('beta', '*'): 0.8, ('gamma', '*'): 0.7, ('theta', '*'): 0.8, ('mu', '*'): 1.2},
    'frontal_theta_beta': {('theta', 'front'): 3.0, ('beta', 'front'): 2.5, ('beta', 'central'): 2.0,
                           ('alpha', '*'): 0.5, ('mu', '*'): 0.6},
    'broadband_high': {('bg', '*'): 2.2, ('gamma', '*'): 3.0, ('beta', '*'): 1.5, ('alpha', '*'): 0.6},
    'drowsy_slow': {('delta', '*'): 3.0, ('theta', 'temp'): 2.5, ('theta', 'deep'): 2.5, ('theta', '*'): 1.6,
                    ('alpha', 'occ'): 0.4, ('alpha', 'par'): 0.5, ('bg', '*'): 1.3, ('beta', '*'): 0.7},
    'sensorimotor_mu': {('mu', 'central'): 3.0, ('beta', 'central'): 0.6, ('beta', '*'): 1.2},
    'desync_task': {('alpha', '*'): 0.35, ('mu', '*'): 0.4, ('beta', 'front'): 1.8, ('gamma', 'occ'): 2.0,
                    ('theta', 'front'): 1.5},
}


def _mult(arch, band, region):
    table = ARCHETYPES[arch]
    return table.get((band, region), table.get((band, '*'), 1.0))


def rotation(rx, ry, rz):
    """Rotation matrix from angles in degrees (x, then y, then z)."""
    ax, ay, az = np.deg2rad([rx, ry, rz])
    Rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    Ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    Rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def pink_noise(rng, n, n_sig, exponent=1.0, f_lo=0.5, fs=FS):
    """n_sig independent 1/f^exponent noise series of n samples (unit std), flat below f_lo."""
    spec = rng.standard_normal((n_sig, n // 2 + 1)) + 1j * rng.standard_normal((n_sig, n // 2 + 1))
    f = np.fft.rfftfreq(n, 1 / fs)
    spec *= (np.maximum(f, f_lo) ** (-exponent / 2))[None]
    spec[:, 0] = 0
    x = np.fft.irfft(spec, n=n, axis=1)
    return x / x.std(axis=1, keepdims=True)


def ar2_oscillator(rng, n, freq, bw, fs=FS):
    r = np.exp(-np.pi * bw / fs)
    a = [1.0, -2 * r * np.cos(2 * np.pi * freq / fs), r * r]
    x = signal.lfilter([1.0], a, rng.standard_normal(n + 2000))[2000:]
    return x / x.std()


def lowpass_noise(rng, n, n_sig, fc, fs):
    sos = signal.butter(2, fc, fs=fs, output='sos')
    x = signal.sosfiltfilt(sos, rng.standard_normal((n_sig, n)), axis=1)
    return x / x.std(axis=1, keepdims=True)


# ---------------------------------------------------------------- HRF family (own design)
def hrf_lognormal(t, peak, width, under_delay, under_width, under_ratio):
    """Difference of two log-normal bumps: main bump peaking at `peak` s (value 1), undershoot peaking
    `under_delay` s later with relative size `under_ratio`."""
    t = np.maximum(t, 1e-6)
    main = np.exp(-np.log(t / peak) ** 2 / (2 * width ** 2))
    und = np.exp(-np.log(t / (peak + under_delay)) ** 2 / (2 * under_width ** 2))
    h = main - under_ratio * und
    return h / h.max()


# ---------------------------------------------------------------- shared ("population") structure
def make_head_model():
    import mne
    info = mne.create_info(EEG_CH + [REF], FS, 'eeg')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            montage = mne.channels.make_standard_montage('standard_1020')
        except ValueError:  # future MNE without the name
            montage = mne.channels.make_standard_montage('colin27_1020')
    info.set_montage(montage)
    sphere = mne.make_sphere_model('auto', 'auto', info, verbose=False)
    src = mne.setup_volume_source_space(pos=10.0, sphere=sphere, mindist=5.0, verbose=False)
    fwd = mne.make_forward_solution(info, None, src, sphere, meg=False, eeg=True, verbose=False)
    gain = fwd['sol']['data']                      # (33, 3 * n_src), potentials at each electrode
    gain = gain[:-1] - gain[-1:]                   # re-reference to FCz, drop it
    ch_pos = np.array([info['chs'][i]['loc'][:3] for i in range(len(EEG_CH) + 1)])
    return dict(gain=gain, src_rr=fwd['source_rr'], r0=np.asarray(sphere['r0']), ch_pos=ch_pos,
                inner_r=np.linalg.norm(fwd['source_rr'] - sphere['r0'], axis=1).max())


def make_population(rng, n_states=None, n_networks=None):
    from nilearn import datasets as nds
    K = int(n_states or rng.integers(4, 7))
    N = int(n_networks or rng.integers(5, 9))
    names = ['alpha_rest'] + [str(a) for a in rng.choice([a for a in ARCHETYPES if a != 'alpha_rest'], K - 1, replace=False)]
    mean_dur = rng.uniform(4.0, 11.0, K)                       # state mean durations (s), clipped 2-20 per visit
    base_P = rng.dirichlet(np.full(K - 1, 1.5), size=K)        # off-diagonal transition structure

    mask_img = nds.load_mni152_brain_mask(resolution=3)
    mask = mask_img.get_fdata() > 0.5
    aff_mni = mask_img.affine
    gm = nds.load_mni152_gm_template(resolution=3).get_fdata()
    wm = nds.load_mni152_wm_template(resolution=3).get_fdata()
    ijk = np.indices(mask.shape).reshape(3, -1).T
    xyz = (ijk @ aff_mni[:3, :3].T + aff_mni[:3, 3]).reshape(mask.shape + (3,))
    mask_xyz = xyz[mask]

    # networks: unions (max) of 1-3 Gaussian blobs, each bilateral with p = 0.6
    coverage = rng.uniform(0.42, 0.58)
    for _attempt in range(50):
        W = np.zeros((N,) + mask.shape, np.float32)
        blobs = []
        for n in range(N):
            nb = int(rng.integers(1, 4))
            for _ in range(nb):
                c = mask_xyz[rng.integers(len(mask_xyz))] * np.array([1.0, 0.9, 0.9])  # a bit inward
                sig = rng.uniform(9.0, 16.0)
                cs = [c] + ([c * np.array([-1, 1, 1])] if rng.random() < 0.6 else [])
                for cc in cs:
                    d2 = ((xyz - cc) ** 2).sum(-1)
                    W[n] = np.maximum(W[n], np.exp(-d2 / (2 * sig ** 2)))
                    blobs.append(dict(network=n + 1, center_mni=[round(float(v), 1) for v in cc],
                                      sigma_mm=round(float(sig), 1)))
        W *= mask
        thr = np.quantile(W.max(0)[mask], 1 - coverage)
        L = np.where(W > thr, 0.4 + 0.6 * W, 0.0)
        L = np.stack([ndimage.gaussian_filter(l, 1.0) for l in L]) * mask
        atlas = np.where((L.max(0) >= 0.2) & mask, L.argmax(0) + 1, 0)
        frac = np.array([(atlas == n + 1).sum() for n in range(N)]) / mask.sum()
        if frac.min() >= 0.03:
            break
    # state -> network activation: each state raises 1-2 networks and lowers 1-2
    A = rng.normal(0, 0.12, (K, N))
    for k in range(K):
        order = rng.permutation(N)
        nu, nd = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        A[k, order[:nu]] += rng.uniform(0.6, 1.0, nu)
        A[k, order[nu:nu + nd]] -= rng.uniform(0.4, 0.8, nd)
    for n in range(N):                     # every network must be state-driven
        if np.abs(A[:, n]).max() < 0.5:
            A[rng.integers(K), n] = rng.choice([-1, 1]) * rng.uniform(0.6, 1.0)
    hrf_peak = rng.uniform(4.0, 7.0, N)
    # baseline EPI intensity (T2*-like contrast: CSF > GM > WM), faint scalp shell
    csf = np.clip(mask - gm - wm, 0, 1)
    s0 = mask * (520 * wm + 720 * gm + 950 * csf + 400 * np.clip(1 - gm - wm - csf, 0, 1))
    shell = ndimage.binary_dilation(mask, iterations=4) & ~ndimage.binary_dilation(mask, iterations=1)
    s0 = ndimage.gaussian_filter(s0 + 90.0 * shell, 0.7)
    return dict(K=K, N=N, state_names=names, mean_dur=mean_dur, base_P=base_P, mask=mask, aff_mni=aff_mni,
                W=W, L=L.astype(np.float32), atlas=atlas, coverage=float((atlas > 0).sum() / mask.sum()),
                net_frac=frac, blobs=blobs, A=A, hrf_peak=hrf_peak, s0=s0.astype(np.float32),
                csf=csf.astype(np.float32))


# ---------------------------------------------------------------- per subject
def sample_states(rng, K, P, mean_dur, t_start, t_end):
    segs, t, k = [], t_start, int(rng.integers(K))
    while t < t_end:
        d = float(np.clip(rng.gamma(4.0, mean_dur[k] / 4.0), 2.0, 20.0))
        segs.append((t, d, k))
        t += d
        k = int(rng.choice(K, p=P[k]))
    return segs


def simulate_subject(sub, rng, pop, head, out, minutes):
    import mne
    import mne_bids
    import nibabel as nib

    K, N = pop['K'], pop['N']
    n_vol = int(round(minutes * 60 / TR))
    t_pre = round(float(rng.uniform(5.0, 10.0)), 3)           # EEG starts 5-10 s before volume 0
    dur = float(np.ceil(t_pre + n_vol * TR + rng.uniform(2.0, 5.0)))   # whole seconds (EDF records)
    n = int(dur * FS)
    onsets = t_pre + np.arange(n_vol) * TR

    # ---- hidden semi-Markov state sequence on a 100 Hz grid from -60 s (BOLD history) to the EEG end
    P = np.zeros((K, K))
    for k in range(K):
        row = rng.dirichlet(40 * pop['base_P'][k] + 0.3)
        P[k, [j for j in range(K) if j != k]] = row
    burn = 60.0
    f_st = 100.0
    segs = sample_states(rng, K, P, pop['mean_dur'] * rng.uniform(0.8, 1.25, K), -burn, dur + 1)
    t_st = -burn + np.arange(int((dur + burn) * f_st)) / f_st
    lab = np.zeros(len(t_st), int)
    for (t0, d, k) in segs:
        lab[(t_st >= t0) & (t_st < t0 + d)] = k
    onehot = np.eye(K)[lab].T                                   # (K, n100)
    win = signal.windows.hann(int(rng.uniform(0.6, 1.5) * f_st) | 1)
    smooth = ndimage.convolve1d(onehot, win / win.sum(), axis=1, mode='nearest')   # rows sum to 1

    # ---- EEG sources
    iaf = rng.uniform(9.0, 11.5)
    t_eeg = np.arange(n) / FS
    in_eeg = t_st >= 0
    sm_eeg = smooth[:, in_eeg]
    t_sm = t_st[in_eeg]
    gain, rr, r0, R = head['gain'], head['src_rr'], head['r0'], head['inner_r']
    S = np.zeros((len(SOURCES), n))
    src_meta = []
    for s, (name, region, direction, oscs) in enumerate(SOURCES):
        u = np.asarray(direction, float) / np.linalg.norm(direction)
        depth = 0.45 if region == 'deep' else 0.82
        target = r0 + u * depth * R + rng.normal(0, 0.004, 3)
        i_src = int(np.argmin(((rr - target) ** 2).sum(1)))
        parts = [(b, None) for b in oscs] + [('bg', None)]
        for band, _ in parts:
            amp0 = (0.5 if band == 'bg' else BANDS[band][2]) * rng.lognormal(0, 0.25)
            mult = np.array([_mult(a, band, region) for a in pop['state_names']]) * rng.lognormal(0, 0.15, K)
            env = np.interp(t_eeg, t_sm, mult @ sm_eeg) * amp0
            if band == 'bg':
                x = pink_noise(rng, n, 1, exponent=rng.uniform(1.0, 1.6))[0]
            else:
                f0, bw, _ = BANDS[band]
                f0 = iaf if band == 'alpha' else (iaf + 1.0 if band == 'mu' else f0 * rng.uniform(0.9, 1.1))
                x = ar2_oscillator(rng, n, f0 * rng.uniform(0.97, 1.03), bw * rng.uniform(0.8, 1.2))
            S[s] += env * x
        ori = u + 0.5 * rng.standard_normal(3)
        ori /= np.linalg.norm(ori)
        lf = gain[:, 3 * i_src:3 * i_src + 3] @ ori
        src_meta.append(dict(name=name, region=region, bands=oscs, pos_head_m=rr[i_src].round(4).tolist(),
                             ori=ori.round(3).tolist(), lead=lf))
    LF = np.stack([m.pop('lead') for m in src_meta], 1)          # (32, n_src)
    brain = LF @ S
    brain *= rng.uniform(8e-6, 14e-6) / np.median(brain.std(1))  # ~8-14 uV typical channel std
    nch = len(EEG_CH)
    eeg = brain + 2.0e-6 * pink_noise(rng, n, nch, 1.0) + 0.7e-6 * rng.standard_normal((nch, n))
    eog = 3e-6 * pink_noise(rng, n, 1, 1.0)[0] + 1e-6 * rng.standard_normal(n)
    # blinks (Poisson, 8-20/min); EOG amplitude ~100-200 uV, spread to frontal channels
    rate = rng.uniform(8, 20) / 60
    blink_t = np.cumsum(rng.exponential(1 / rate, int(dur * rate * 2) + 5))
    blink_t = blink_t[blink_t < dur - 1]
    tau = 0.06
    tk = np.arange(int(0.6 * FS)) / FS
    kern = (tk / tau) ** 2 * np.exp(-tk / tau)
    kern /= kern.max()
    train = np.zeros(n)
    train[(blink_t * FS).astype(int)] = rng.lognormal(np.log(140e-6), 0.25, len(blink_t))
    blinks = signal.fftconvolve(train, kern)[:n]
    eye = head['ch_pos'][:2].mean(0) + np.array([0.0, 0.02, -0.04])
    w = np.exp(-np.linalg.norm(head['ch_pos'] - eye, axis=1) / 0.03)
    w = 0.55 * w / w[:2].max()
    w = w[:-1] - w[-1]                                             # FCz reference
    eeg += w[:, None] * blinks[None]
    eog += blinks
    # slow skin-potential drift (common + per channel, < 0.05 Hz), 10 Hz grid interpolated
    fd = 10.0
    nd = int(dur * fd) + 1
    td = np.arange(nd) / fd
    common = lowpass_noise(rng, nd, 1, 0.02, fd)[0]
    own = lowpass_noise(rng, nd, nch + 1, 0.04, fd)
    dr = (rng.uniform(10, 30, (nch + 1, 1)) * 1e-6) * common + (rng.uniform(5, 15, (nch + 1, 1)) * 1e-6) * own
    dr = np.stack([np.interp(t_eeg, td, d) for d in dr])
    eeg += dr[:-1]
    eog += dr[-1]
    line = rng.uniform(0.5e-6, 2e-6, (nch, 1)) * np.sin(2 * np.pi * 50 * t_eeg + rng.uniform(0, 2 * np.pi, (nch, 1)))
    eeg += line
    data = np.vstack([eeg, eog[None]])
    del S, brain, dr, line

    info = mne.create_info(EEG_CH + [EOG], FS, ['eeg'] * nch + ['eog'])
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.set_meas_date(datetime.datetime(2024, 3, 1, 9, 0, tzinfo=datetime.timezone.utc)
                      + datetime.timedelta(days=int(sub)))
    raw.set_annotations(mne.Annotations(onsets, np.zeros(n_vol), ['TR'] * n_vol))
    tmpdir = tempfile.mkdtemp(dir=out)
    edf = os.path.join(tmpdir, f'sub-{sub}_eeg.edf')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        mne.export.export_raw(edf, raw, fmt='edf', physical_range='channelwise', overwrite=True, verbose=False)
        raw2 = mne.io.read_raw_edf(edf, preload=False, verbose=False)
        raw2.set_channel_types({EOG: 'eog'}, verbose=False)
        raw2.info['line_freq'] = 50.0
        bp = mne_bids.BIDSPath(subject=sub, task='rest', run=1, datatype='eeg', root=os.path.join(out, 'bids'))
        mne_bids.write_raw_bids(raw2, bp, overwrite=True, verbose=False)
    shutil.rmtree(tmpdir)
    del raw, raw2, data

    # ---- BOLD: network drives at 10 Hz
    f_b = 10.0
    step = int(f_st / f_b)
    nb = smooth.shape[1] // step
    sm10 = smooth[:, :nb * step].reshape(K, nb, step).mean(2)
    t10 = t_st[:nb * step].reshape(nb, step).mean(1)
    A = pop['A'] + rng.normal(0, 0.1, pop['A'].shape)
    drive = A.T @ sm10                                              # (N, nb)
    th = np.arange(int(32 * f_b)) / f_b
    hrf_par, H = [], []
    for k in range(N):
        p = dict(peak=float(np.clip(pop['hrf_peak'][k] + rng.normal(0, 0.4), 4.0, 7.0)),
                 width=float(rng.uniform(0.3, 0.45)), under_delay=float(rng.uniform(5, 9)),
                 under_width=float(rng.uniform(0.2, 0.3)), under_ratio=float(rng.uniform(0.05, 0.5)))
        hrf_par.append(p)
        H.append(hrf_lognormal(th, **p))
    scan = (t10 >= onsets[0]) & (t10 <= onsets[-1] + TR)
    E = np.stack([signal.fftconvolve(drive[k], H[k])[:nb] for k in range(N)])
    E = (E - E[:, scan].mean(1, keepdims=True)) / E[:, scan].std(1, keepdims=True)
    xi = lowpass_noise(rng, nb, N + 1, 0.08, f_b)
    xi = 0.8 * xi[:N] + 0.6 * xi[N:]                                # partly shared across networks
    U = np.stack([signal.fftconvolve(xi[k], H[k])[:nb] for k in range(N)])
    U = (U - U[:, scan].mean(1, keepdims=True)) / U[:, scan].std(1, keepdims=True)
    amp = rng.uniform(0.6, 1.1, N)                                  # % signal change (std) of EEG part
    ratio = rng.uniform(0.8, 1.25, N)                               # non-EEG / EEG std
    glob = lowpass_noise(rng, nb, 1, 0.05, f_b)[0]

    # ---- scanner geometry: oblique grid, head nearly aligned to it
    tilt = rng.uniform(5, 15) * rng.choice([-1, 1])
    Rg = rotation(tilt, rng.uniform(-3, 3), rng.uniform(-3, 3))
    Rh = Rg @ rotation(*rng.uniform(-3, 3, 3))
    head_shift = np.array([rng.uniform(-5, 5), rng.uniform(-20, 10), rng.uniform(-10, 20)])
    Hm = np.eye(4)
    Hm[:3, :3], Hm[:3, 3] = Rh, head_shift                          # MNI mm -> scanner mm
    brain_c = np.array([0.0, -17.0, 3.0])                          # MNI brain bounding-box centre
    c_world = Hm[:3, :3] @ brain_c + Hm[:3, 3]
    aff = np.eye(4)
    aff[:3, :3] = Rg * VOX
    aff[:3, 3] = c_world - aff[:3, :3] @ ((np.array(GRID_SHAPE) - 1) / 2) + rng.uniform(-1, 1, 3) * [4, 4, 2]
    T = np.linalg.inv(pop['aff_mni']) @ np.linalg.inv(Hm) @ aff     # scanner voxel -> MNI voxel
    ijk = np.indices(GRID_SHAPE).reshape(3, -1)
    coords = T[:3, :3] @ ijk + T[:3, 3:4]

    def resample(vol, order=1):
        return ndimage.map_coordinates(vol, coords, order=order, mode='constant', cval=0.0).reshape(GRID_SHAPE)

    bmask = resample(pop['mask'].astype(np.float32)) > 0.5
    mijk = np.argwhere(pop['mask']).T                               # MNI brain voxels inside the scanner grid
    sijk = np.linalg.solve(T[:3, :3], mijk - T[:3, 3:4])
    covered = np.mean(np.all((sijk > -0.5) & (sijk < np.array(GRID_SHAPE)[:, None] - 0.5), axis=0))
    Ls = np.stack([resample(l) for l in pop['L']])
    atlas = np.where((Ls.max(0) >= 0.2) & bmask, Ls.argmax(0) + 1, 0).astype(np.int16)
    gx, gy, gz = np.meshgrid(*[np.linspace(-1, 1, s) for s in GRID_SHAPE], indexing='ij')
    bias = 1 + rng.uniform(-0.1, 0.1) * gx + rng.uniform(-0.1, 0.1) * gy + rng.uniform(-0.12, 0.05) * gz
    s0 = resample(pop['s0']) * bias * rng.uniform(0.9, 1.2)
    csf = resample(pop['csf'])
    headm = ndimage.binary_dilation(s0 > 40, iterations=1)
    hv = np.flatnonzero(headm.ravel())
    nh = len(hv)
    s0h = s0.ravel()[hv]
    kslice = np.unravel_index(hv, GRID_SHAPE)[2]

    # percent-signal time courses per head voxel at each voxel's slice time (sequential ascending)
    slice_t = np.arange(GRID_SHAPE[2]) * TR / GRID_SHAPE[2]
    Lh = Ls.reshape(N, -1)[:, hv]                                   # (N, nh)
    clean = np.zeros((nh, n_vol), np.float32)
    other = np.zeros((nh, n_vol), np.float32)
    gfl = ndimage.gaussian_filter(rng.standard_normal(GRID_SHAPE), 4)
    gw = 1 + 0.3 * gfl.ravel()[hv] / gfl.std()
    gw = np.clip(gw, 0.3, 1.7)
    for kz in range(GRID_SHAPE[2]):
        sel = kslice == kz
        if not sel.any():
            continue
        tt = onsets + slice_t[kz]
        Ek = np.stack([np.interp(tt, t10, e) for e in E]) * amp[:, None]
        Uk = np.stack([np.interp(tt, t10, u) for u in U]) * (amp * ratio)[:, None]
        gk = np.interp(tt, t10, glob) * 0.3
        clean[sel] = Lh[:, sel].T @ Ek
        other[sel] = Lh[:, sel].T @ Uk + gw[sel, None] * gk[None]
    # AR(1) physiological noise (rho 0.2-0.6 smooth map), stronger in CSF
    rho_map = ndimage.gaussian_filter(rng.standard_normal(GRID_SHAPE), 5)
    rho = (0.4 + 0.2 * np.clip(rho_map / rho_map.std(), -1, 1)).ravel()[hv]
    phys_sd = rng.uniform(0.5, 0.8) * (1 + 1.0 * csf.ravel()[hv])
    innov = rng.standard_normal((nh, n_vol)).astype(np.float32)
    ph = np.empty_like(innov)
    ph[:, 0] = innov[:, 0]
    a_in = np.sqrt(1 - rho ** 2)
    for i in range(1, n_vol):
        ph[:, i] = rho * ph[:, i - 1] + a_in * innov[:, i]
    other += phys_sd[:, None] * ph
    del innov, ph
    # slow drift: Legendre degree 1-3 with spatially smooth coefficient maps (+ a common part)
    x = np.linspace(-1, 1, n_vol)
    leg = np.stack([x, 0.5 * (3 * x ** 2 - 1), 0.5 * (5 * x ** 3 - 3 * x)])
    for d in range(3):
        fld = ndimage.gaussian_filter(rng.standard_normal(GRID_SHAPE), 6)
        cmap = (fld / fld.std()).ravel()[hv] * 0.4 / (d + 1) + rng.normal(0, 0.5 / (d + 1))
        other += np.outer(cmap, leg[d]).astype(np.float32)
    sigma_th = rng.uniform(0.8, 1.2) * 0.01 * np.median(s0h[bmask.ravel()[hv]])   # thermal (absolute)

    bold = np.empty(GRID_SHAPE + (n_vol,), np.float32)
    flat = bold.reshape(-1, n_vol)
    sat = np.ones(n_vol)
    sat[:len(SAT)] = SAT[:n_vol]
    for i in range(n_vol):
        v = np.zeros(flat.shape[0], np.float32)
        v[hv] = s0h * sat[i] * (1 + 0.01 * (clean[:, i] + other[:, i]))
        re = v + sigma_th * rng.standard_normal(v.shape, dtype=np.float32)
        im = sigma_th * rng.standard_normal(v.shape, dtype=np.float32)
        flat[:, i] = np.sqrt(re * re + im * im)
    clean_sig = np.zeros_like(flat)
    clean_sig[hv] = (s0h[:, None] * 0.01 * clean) * sat[None, :]
    del other

    img = nib.Nifti1Image(bold, aff)
    img.header.set_xyzt_units('mm', 'sec')
    img.header.set_zooms((VOX, VOX, VOX, TR))
    img.set_sform(aff, code=1)
    img.set_qform(aff, code=1)
    func = os.path.join(out, 'bids', f'sub-{sub}', 'func')
    os.makedirs(func, exist_ok=True)
    stem = os.path.join(func, f'sub-{sub}_task-rest_run-1_bold')
    nib.save(img, stem + '.nii.gz')
    with open(stem + '.json', 'w') as f:
        json.dump({'RepetitionTime': TR, 'TaskName': 'rest', 'SliceTiming': [round(float(s), 4) for s in slice_t],
                   'SliceEncodingDirection': 'k', 'EchoTime': 0.030, 'FlipAngle': 90,
                   'MagneticFieldStrength': 3}, f, indent=1)

    # ---- ground truth
    gt = os.path.join(out, 'groundtruth')
    os.makedirs(gt, exist_ok=True)

    def save_nii(arr, name, dtype):
        im = nib.Nifti1Image(arr.astype(dtype), aff)
        im.set_sform(aff, code=1)
        im.set_qform(aff, code=1)
        if arr.ndim == 4:
            im.header.set_zooms((VOX, VOX, VOX, TR))
        nib.save(im, os.path.join(gt, name))

    save_nii(atlas, f'sub-{sub}_atlas.nii.gz', np.int16)
    save_nii(bmask.astype(np.uint8), f'sub-{sub}_brainmask.nii.gz', np.uint8)
    save_nii(Ls.transpose(1, 2, 3, 0), f'sub-{sub}_network_loadings.nii.gz', np.float32)
    save_nii(clean_sig.reshape(GRID_SHAPE + (n_vol,)), f'sub-{sub}_bold_eeg_related.nii.gz', np.float32)
    with open(os.path.join(gt, f'sub-{sub}_states.tsv'), 'w') as f:
        f.write('onset\tduration\tstate\tstate_name\n')
        for (t0, d, k) in segs:
            if t0 + d > 0 and t0 < dur:
                f.write(f'{t0:.3f}\t{d:.3f}\t{k}\t{pop["state_names"][k]}\n')
    lab_vol = lab[np.searchsorted(t_st, onsets)]
    frac_vol = np.stack([sm10[:, np.searchsorted(t10, o):np.searchsorted(t10, o + TR)].mean(1) for o in onsets])
    with open(os.path.join(gt, f'sub-{sub}_volume_states.tsv'), 'w') as f:
        f.write('volume\tonset\tstate_at_onset\t' + '\t'.join(f'frac_state{k}' for k in range(K)) + '\n')
        for i, o in enumerate(onsets):
            f.write(f'{i}\t{o:.3f}\t{lab_vol[i]}\t' + '\t'.join(f'{v:.3f}' for v in frac_vol[i]) + '\n')
    vol_mid = onsets + TR / 2
    np.savez_compressed(
        os.path.join(gt, f'sub-{sub}_truth.npz'), volume_onsets=onsets,
        eeg_related_network=np.stack([np.interp(vol_mid, t10, e) for e in E]) * amp[:, None],
        non_eeg_network=np.stack([np.interp(vol_mid, t10, u) for u in U]) * (amp * ratio)[:, None],
        network_amp_pct=amp, non_eeg_ratio=ratio, activation=A, transition=P, affine=aff, head_pose=Hm,
        hrf_t=th, hrf=np.stack(H), state_label_100hz=lab[in_eeg], iaf=iaf)

    # SNR: corr(noise-free EEG-related BOLD, noisy BOLD) over network voxels, volumes after saturation
    av = np.flatnonzero(atlas.ravel() > 0)
    y = flat[av, len(SAT):].astype(np.float64)
    c = clean_sig[av, len(SAT):].astype(np.float64)

    def corr(a, b):
        a = a - a.mean(1, keepdims=True)
        b = b - b.mean(1, keepdims=True)
        return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-30)

    r_raw = corr(c, y)
    xx = np.linspace(-1, 1, y.shape[1])
    Q = np.linalg.qr(np.vstack([xx ** d for d in range(4)]).T)[0]
    r_dt = corr(c - (c @ Q) @ Q.T, y - (y @ Q) @ Q.T)
    meta = dict(subject=sub, n_volumes=n_vol, eeg_start_before_first_volume_s=t_pre, eeg_duration_s=dur,
                blinks=int(len(blink_t)), iaf_hz=round(iaf, 2), oblique_tilt_deg=round(float(tilt), 2),
                brain_coverage_of_grid=round(float(covered), 4), brain_voxels=int(bmask.sum()),
                network_voxels=int(len(av)), n_state_segments=len(segs),
                state_occupancy=[round(float((lab[in_eeg] == k).mean()), 3) for k in range(K)],
                hrf=hrf_par, network_amp_pct=amp.round(3).tolist(), non_eeg_ratio=ratio.round(3).tolist(),
                thermal_sigma=round(float(sigma_th), 2),
                median_corr_clean_vs_noisy=round(float(np.median(r_raw)), 4),
                median_corr_clean_vs_noisy_cubic_detrended=round(float(np.median(r_dt)), 4),
                sources=src_meta)
    with open(os.path.join(gt, f'sub-{sub}_meta.json'), 'w') as f:
        json.dump(meta, f, indent=1)
    return meta


README = """Simulated simultaneous EEG-fMRI: hidden semi-Markov brain states (sim_user_hmm.py, seed {seed})
====================================================================================
Sizes: {S} subjects x 1 run (task-rest, run-1) x {n_vol} volumes (TR {TR} s); EEG 1000 Hz, 32 EEG (10-20,
FCz reference) + 1 EOG (typed EOG in channels.tsv), EDF via mne.export + mne-bids; annotation "TR" at each volume
onset (events.tsv); the EEG starts 5-10 s before volume 0 and ends 2-5 s after the last volume.
BOLD: {grid} grid, 3 mm isotropic, oblique affine (pitch 5-15 deg, +-3 deg roll/yaw, shifted origin), sform/qform
code 1, float32, _bold.json RepetitionTime; sequential ascending slices along k (SliceTiming in the sidecar;
each voxel is sampled at onset + slice time); first 3 volumes x1.5, x1.2, x1.05 (T1 saturation).

States: K = {K}: {states}. Explicit-duration Markov chain: duration ~ gamma(shape 4, mean = per-state mean
{mean_dur} s x per-subject factor 0.8-1.25) clipped to 2-20 s; next state from a per-subject transition matrix
(no self-transitions, rows ~ Dirichlet around a shared base). State indicators are smoothed with a 0.6-1.5 s Hann
window (smooth transitions) and drive both modalities.

EEG: 3-shell sphere model fitted to the standard_1020 positions (mne.make_sphere_model, volume source space
10 mm, make_forward_solution), 16 dipoles (occipital, parietal, precuneus, frontal-midline, prefrontal, motor,
temporal, SMA, posterior cingulate, IFG) with per-subject orientation jitter. Each dipole: 1-2 AR(2) oscillators
(delta 2.5, theta 6, alpha = IAF 9-11.5, mu = IAF+1, beta 20, gamma 40 Hz) + 1/f^(1-1.6) background; every
component's amplitude = sum_k smoothed_indicator_k(t) x archetype multiplier(state, band, region) (e.g. alpha_rest:
posterior alpha x3; frontal_theta_beta: frontal theta x3 and beta x2.5; broadband_high: background x2.2, gamma x3;
drowsy_slow: delta x3, alpha down; sensorimotor_mu: central mu x3; desync_task: alpha x0.35, beta/gamma up).
Sensor noise: 1/f (2 uV) + white (0.7 uV); blinks 8-20/min (~140 uV on EOG, spread to Fp/F channels); skin-
potential drift < 0.05 Hz (10-30 uV common + per channel); 50 Hz line 0.5-2 uV. No gradient/BCG artefacts.

BOLD: N = {N} networks = unions of Gaussian blobs (sigma 9-16 mm, 60 % bilateral) over the MNI152 3 mm brain mask;
threshold chosen for {cov:.0%} coverage of brain voxels; loading = 0.4 + 0.6 x blob value inside, smoothed 3 mm.
Activation matrix A (K x N; each state raises 1-2 networks by 0.6-1.0 and lowers 1-2 by 0.4-0.8, +- 0.12 noise,
per-subject +- 0.1): EEG-related network signal = HRF_n * (A^T smoothed indicators), z-scored, x amp_n (0.6-1.1 %).
HRF family (own): h(t) = exp(-ln(t/p)^2 / 2w^2) - c exp(-ln(t/(p+d))^2 / 2w2^2), p 4-7 s (network value + subject
jitter 0.4 s), w 0.3-0.45, d 5-9 s, w2 0.2-0.3, c 0.05-0.5 (undershoot).
Non-EEG part per network: HRF_n * low-passed (0.08 Hz) noise, 80 % own + 60 % shared, std = (0.8-1.25) x the EEG
part. Noise: AR(1) physiological (rho 0.2-0.6 smooth map, 0.5-0.8 %, doubled in CSF), drift (Legendre 1-3,
smooth coefficient maps + common), global signal (0.3 %, < 0.05 Hz, voxel weight 0.3-1.7), thermal noise
complex Gaussian (sigma 0.8-1.2 % of median brain intensity) -> magnitude (Rician). Baseline intensity:
CSF 950 > GM 720 > WM 520 from the MNI152 tissue templates, faint scalp shell, linear bias field.
All MNI-space maps are resampled into each subject's oblique scanner grid (scipy.ndimage.map_coordinates, order 1);
the head pose is the grid rotation + residual +-3 deg, shifted.

Ground-truth files (per subject XX):
  sub-XX_atlas.nii.gz              label image in the subject's scanner grid (argmax network, 0 = none)
  sub-XX_network_loadings.nii.gz   4D loadings (one volume per network)
  sub-XX_brainmask.nii.gz          brain mask in the scanner grid
  sub-XX_bold_eeg_related.nii.gz   noise-free EEG-related BOLD (intensity units, baseline removed; saturation incl.)
  sub-XX_states.tsv                state segments (onset s from EEG start; may start before it)
  sub-XX_volume_states.tsv         state at each volume onset + fraction of each state within the TR
  sub-XX_truth.npz                 network time courses (EEG-related, non-EEG), A, transition matrix, HRFs, pose
  sub-XX_meta.json                 per-subject parameters and the SNR (median over network voxels of
                                   corr(noise-free EEG-related BOLD, noisy BOLD), volumes 3.., raw and cubic-detrended)
  networks_mni.nii.gz, atlas_mni.nii.gz  population maps in MNI152 3 mm space
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out')
    ap.add_argument('--subjects', type=int, default=4)
    ap.add_argument('--minutes', type=float, default=6.0)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--states', type=int, default=None, help='number of states (default: 4-6 from the seed)')
    ap.add_argument('--networks', type=int, default=None, help='number of networks (default: 5-8 from the seed)')
    args = ap.parse_args(argv)
    t0 = time.time()
    out = os.path.abspath(args.out)
    for d in ('bids', 'groundtruth'):
        if os.path.isdir(os.path.join(out, d)):
            shutil.rmtree(os.path.join(out, d))
    os.makedirs(out, exist_ok=True)
    import nibabel as nib
    rng = np.random.default_rng([args.seed, 12345])
    pop = make_population(rng, args.states, args.networks)
    head = make_head_model()
    print(f'population: K={pop["K"]} states {pop["state_names"]}, N={pop["N"]} networks, '
          f'coverage {pop["coverage"]:.2f}  ({time.time() - t0:.1f} s)', flush=True)
    gt = os.path.join(out, 'groundtruth')
    os.makedirs(gt, exist_ok=True)
    nib.save(nib.Nifti1Image(pop['L'].transpose(1, 2, 3, 0), pop['aff_mni']), os.path.join(gt, 'networks_mni.nii.gz'))
    nib.save(nib.Nifti1Image(pop['atlas'].astype(np.int16), pop['aff_mni']), os.path.join(gt, 'atlas_mni.nii.gz'))
    metas = []
    for s in range(args.subjects):
        sub = f'{s + 1:02d}'
        m = simulate_subject(sub, np.random.default_rng([args.seed, s + 1]), pop, head, out, args.minutes)
        metas.append(m)
        print(f'sub-{sub}: {m["n_volumes"]} vols, {m["network_voxels"]} network voxels of {m["brain_voxels"]}, '
              f'median corr(clean, noisy) {m["median_corr_clean_vs_noisy"]:.3f} '
              f'(detrended {m["median_corr_clean_vs_noisy_cubic_detrended"]:.3f})  ({time.time() - t0:.1f} s)',
              flush=True)
    with open(os.path.join(gt, 'README.txt'), 'w') as f:
        f.write(README.format(seed=args.seed, S=args.subjects, n_vol=metas[0]['n_volumes'] if metas else 0, TR=TR,
                              grid='x'.join(map(str, GRID_SHAPE)), K=pop['K'], states=', '.join(pop['state_names']),
                              mean_dur=np.round(pop['mean_dur'], 1).tolist(), N=pop['N'], cov=pop['coverage']))
    with open(os.path.join(gt, 'population.json'), 'w') as f:
        json.dump(dict(seed=args.seed, states=pop['state_names'], mean_duration_s=pop['mean_dur'].round(2).tolist(),
                       base_transition=pop['base_P'].round(3).tolist(), activation=pop['A'].round(3).tolist(),
                       hrf_peak_s=pop['hrf_peak'].round(2).tolist(), coverage=pop['coverage'],
                       network_fraction=pop['net_frac'].round(3).tolist(), blobs=pop['blobs'],
                       snr=[dict(subject=m['subject'], median_corr=m['median_corr_clean_vs_noisy'],
                                 median_corr_detrended=m['median_corr_clean_vs_noisy_cubic_detrended'])
                            for m in metas]), f, indent=1)
    print(f'done in {time.time() - t0:.1f} s -> {out}')


if __name__ == '__main__':
    main()
