"""Profile calhas2022 training step and micro-benchmark first-stage variants (scratch)."""
import sys, time, statistics
import torch, torch.nn.functional as F
sys.path.insert(0, "benchmarks")
from bench_train_gpu import make_model, _LossWrap

dev = torch.device("cuda")
torch.backends.cudnn.benchmark = True
B = int(sys.argv[1]) if len(sys.argv) > 1 else 512

def bench(fn, n=20, warm=5):
    for _ in range(warm): fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e))
    return statistics.median(ts)

# ---------------- full step profile
model = make_model("calhas2022", 64, 134, 10, (64, 64, 30), dev)
wrap = _LossWrap(model)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
x = torch.randn(B, 64, 134, 10, device=dev); y = torch.randn(B, 64, 64, 30, device=dev)
def step():
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = wrap(x, y)
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
ms = bench(step, n=10)
print(f"full step B={B}: {ms:.1f} ms -> {B/ms*1e3:.0f} windows/s (data already on GPU)")
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CUDA]) as prof:
    for _ in range(3): step()
    torch.cuda.synchronize()
print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=90))

import sys as _s; _s.exit(0) if True else None
# ---------------- micro-benchmarks of the first stage: conv 1->8 k3, pool 2, at EEG and fMRI shapes
def banded_weight(w3, W):
    # w3: (O,1,3,3,k) -> (W*O, W, 3, 3) with out channel (w_out, o), in channel w_in
    O, _, kd, kh, kw = w3.shape
    r = kw // 2
    wp = torch.cat([w3[:, 0], w3.new_zeros(O, kd, kh, 1)], dim=-1)  # (O,kd,kh,kw+1)
    wo = torch.arange(W).view(W, 1); wi = torch.arange(W).view(1, W)
    d = wi - wo + r
    idx = torch.where((d >= 0) & (d < kw), d, torch.full_like(d, kw)).to(w3.device)
    g = wp[..., idx]  # (O,kd,kh,W_out,W_in)
    return g.permute(3, 0, 4, 1, 2).reshape(W * O, W, kd, kh)

def conv_banded(x, w3):
    b, _, D, H, W = x.shape
    xc = x.reshape(b, D, H, W).permute(0, 3, 1, 2)  # channels-last 2D view, C=W
    wb = banded_weight(w3, W).contiguous(memory_format=torch.channels_last)
    out = F.conv2d(xc, wb, padding=(w3.shape[2] // 2, w3.shape[3] // 2))  # (b, W*O, D, H)
    O = w3.shape[0]
    return out.permute(0, 2, 3, 1).reshape(b, D, H, W, O).permute(0, 4, 1, 2, 3)

def conv_plain(x, w3):
    return F.conv3d(x, w3.contiguous(memory_format=torch.channels_last_3d), padding=1)

def conv_pad8(x, w3):
    xp = torch.cat([x, x.new_zeros(x.shape[0], 7, *x.shape[2:])], 1).contiguous(memory_format=torch.channels_last_3d)
    wp = torch.cat([w3, w3.new_zeros(w3.shape[0], 7, *w3.shape[2:])], 1).contiguous(memory_format=torch.channels_last_3d)
    return F.conv3d(xp, wp, padding=1)

def pool_native(h):
    return F.max_pool3d(h, 2, 2, ceil_mode=True)

def pool_amax(h):
    b, c, D, H, W = h.shape
    v = h.permute(0, 2, 3, 4, 1)  # (b,D,H,W,c) contiguous for channels-last
    return v.reshape(b, D // 2, 2, H // 2, 2, W // 2, 2, c).amax(dim=(2, 4, 6)).permute(0, 4, 1, 2, 3)

rows = []
for name_shape, shape, need_dx in (("eeg", (64, 134, 10), True), ("fmri", (64, 64, 30), False)):
    xin = torch.randn(B, 1, *shape, device=dev, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last_3d).requires_grad_(need_dx)
    w3 = (torch.randn(8, 1, 3, 3, 3, device=dev) * 0.2).requires_grad_(True)
    ref = None
    for cname, conv in (("plain", conv_plain), ("pad8", conv_pad8), ("banded", conv_banded)):
        for pname, pool in (("native", pool_native), ("amax", pool_amax)):
            def f():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out = pool(conv(xin, w3))
                out.float().square().mean().backward()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                o = pool(conv(xin, w3)).float()
            if ref is None: ref = o
            err = (o - ref).abs().max().item()
            fwd = bench(lambda: pool(conv(xin.detach(), w3.detach().bfloat16())), n=10)
            tot = bench(f, n=10)
            rows.append((name_shape, cname, pname, fwd, tot, err))
            print(rows[-1], flush=True)
    # BN channels-last on pooled
    hp = torch.randn(B, 8, *[s // 2 for s in shape], device=dev, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last_3d).requires_grad_(True)
    bn = torch.nn.BatchNorm3d(8).to(dev)
    def fb():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            o = bn(hp)
        o.float().mean().backward()
    print(name_shape, "bn pooled fwd+bwd ms", bench(fb, n=10))
print("| shape | conv | pool | fwd ms | fwd+bwd ms | max err |")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.3g} |")
