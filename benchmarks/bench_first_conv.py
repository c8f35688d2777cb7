"""Why calhas2022 runs its one-feature-map 3D convolutions as banded 2D convolutions on CUDA.

Prints (1) the time of one calhas2022 training step at NODDI shape (bf16, data already on the
GPU) and, with ``--profile``, its top CUDA kernels; (2) forward and forward + backward times of
the first stage of a residual block (conv 1 -> 8 maps, 3x3x3, then 2x2x2 max-pool) at the EEG
(64 x 134 x 10) and fMRI (64 x 64 x 30) shapes for three convolutions -- cuDNN's direct 3D
convolution ("plain"), the input zero-padded to 8 maps ("pad8") and the banded 2D form used by
the model ("banded") -- and two poolings (``max_pool3d``, reshape + ``amax``), with the largest
difference to the first variant (bf16 rounding).

    python benchmarks/bench_first_conv.py [--batch 512] [--profile] [--sweep]

``--sweep`` adds the crossover behind ``_BANDED_MAX_AXIS``: forward + backward of the first
convolution alone (input gradient included) on (64, 64, W) volumes at batch 64, banded vs pad8,
for W from 8 to 128.

Measured on an H100 (torch 2.11, batch 512), fwd + bwd ms with max_pool3d: EEG plain 40.3,
pad8 32.9, banded 7.7; fMRI plain 33.2, pad8 35.1, banded 7.7.
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from bench_train_gpu import _LossWrap, make_model  # noqa: E402

_ap = argparse.ArgumentParser(description=__doc__)
_ap.add_argument("--batch", type=int, default=512)
_ap.add_argument("--profile", action="store_true", help="print the top CUDA kernels of a training step")
_ap.add_argument("--sweep", action="store_true", help="banded vs pad8 over the length of the last axis")
ARGS = _ap.parse_args()
dev = torch.device("cuda")
torch.backends.cudnn.benchmark = True
B = ARGS.batch

def bench(fn, n: int = 20, warm: int = 5) -> float:
    """Median milliseconds of ``fn()`` over ``n`` runs, timed with CUDA events."""
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(n):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


# ---------------- one full training step
model = make_model("calhas2022", 64, 134, 10, (64, 64, 30), dev)
wrap = _LossWrap(model)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
x = torch.randn(B, 64, 134, 10, device=dev)
y = torch.randn(B, 64, 64, 30, device=dev)


def step() -> None:
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = wrap(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


ms = bench(step, n=10)
print(f"full step, batch {B}: {ms:.1f} ms -> {B / ms * 1e3:.0f} windows/s (data already on the GPU)")
if ARGS.profile:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=90))


# ---------------- the first stage of a block: conv 1 -> 8 maps (3x3x3), 2x2x2 max-pool
# (the model's implementation is eeg2fmri.models.calhas2022._conv3d_banded; this standalone copy
# keeps the comparison runnable on its own)
def banded_weight(w3: torch.Tensor, n: int) -> torch.Tensor:
    """(O, 1, kd, kh, kw) -> (n * O, n, kd, kh): output channel (w_out, o), input channel w_in."""
    n_out, _, kd, kh, kw = w3.shape
    padded = torch.cat([w3[:, 0], w3.new_zeros(n_out, kd, kh, 1)], dim=-1)
    pos = torch.arange(n, device=w3.device)
    off = pos.view(1, n) - pos.view(n, 1) + kw // 2
    idx = torch.where((off >= 0) & (off < kw), off, torch.full_like(off, kw))
    return padded[..., idx].permute(3, 0, 4, 1, 2).reshape(n * n_out, n, kd, kh)


def conv_banded(v: torch.Tensor, w3: torch.Tensor) -> torch.Tensor:
    b, _, d, h, w = v.shape
    v2d = v.reshape(b, d, h, w).permute(0, 3, 1, 2)  # channels-last 2D view, channels = last axis
    wb = banded_weight(w3, w).contiguous(memory_format=torch.channels_last)
    out = F.conv2d(v2d, wb, padding=(w3.shape[2] // 2, w3.shape[3] // 2))
    return out.permute(0, 2, 3, 1).reshape(b, d, h, w, w3.shape[0]).permute(0, 4, 1, 2, 3)


def conv_plain(v: torch.Tensor, w3: torch.Tensor) -> torch.Tensor:
    return F.conv3d(v, w3.contiguous(memory_format=torch.channels_last_3d), padding=1)


def conv_pad8(v: torch.Tensor, w3: torch.Tensor) -> torch.Tensor:
    vp = torch.cat([v, v.new_zeros(v.shape[0], 7, *v.shape[2:])], 1)
    wp = torch.cat([w3, w3.new_zeros(w3.shape[0], 7, *w3.shape[2:])], 1)
    cl = torch.channels_last_3d
    return F.conv3d(vp.contiguous(memory_format=cl), wp.contiguous(memory_format=cl), padding=1)


def pool_native(h: torch.Tensor) -> torch.Tensor:
    return F.max_pool3d(h, 2, 2, ceil_mode=True)


def pool_amax(h: torch.Tensor) -> torch.Tensor:
    b, c, d, hh, w = h.shape
    v = h.permute(0, 2, 3, 4, 1).reshape(b, d // 2, 2, hh // 2, 2, w // 2, 2, c)
    return v.amax(dim=(2, 4, 6)).permute(0, 4, 1, 2, 3)


rows = []
for shape_name, shape, need_dx in (("eeg", (64, 134, 10), True), ("fmri", (64, 64, 30), False)):
    xin = torch.randn(B, 1, *shape, device=dev, dtype=torch.bfloat16)
    xin = xin.contiguous(memory_format=torch.channels_last_3d).requires_grad_(need_dx)
    w3 = (torch.randn(8, 1, 3, 3, 3, device=dev) * 0.2).requires_grad_(True)
    ref = None
    for conv_name, conv in (("plain", conv_plain), ("pad8", conv_pad8), ("banded", conv_banded)):
        for pool_name, pool in (("max_pool3d", pool_native), ("amax", pool_amax)):

            def forward(conv=conv, pool=pool, xin=xin, w3=w3) -> torch.Tensor:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    return pool(conv(xin, w3))

            def forward_backward(forward=forward) -> None:
                forward().float().square().mean().backward()

            with torch.no_grad():
                out = forward().float()
                ref = out if ref is None else ref
                err = (out - ref).abs().max().item()
                fwd = bench(forward, n=10)
            rows.append((shape_name, conv_name, pool_name, fwd, bench(forward_backward, n=10), err))
print("| shape | conv | pool | forward ms | forward + backward ms | max abs diff |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.3g} |")

if ARGS.sweep:
    print()
    print("| last axis W | banded fwd+bwd ms | pad8 fwd+bwd ms | banded / pad8 |")
    print("|---|---|---|---|")
    for n in (8, 16, 32, 48, 64, 96, 128):
        v = torch.randn(64, 1, 64, 64, n, device=dev, dtype=torch.bfloat16)
        v = v.contiguous(memory_format=torch.channels_last_3d).requires_grad_(True)
        w3 = (torch.randn(8, 1, 3, 3, 3, device=dev) * 0.2).requires_grad_(True)
        times = []
        for conv in (conv_banded, conv_pad8):

            def fb(conv=conv, v=v, w3=w3) -> None:
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out = conv(v, w3)
                out.float().square().mean().backward()

            times.append(bench(fb, n=10))
        print(f"| {n} | {times[0]:.2f} | {times[1]:.2f} | {times[0] / times[1]:.2f} |")
