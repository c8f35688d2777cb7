"""Where a training step of a model at NODDI shape spends its time on one GPU.

Prints, for ``--model`` (default calhas2022; STFT 64 x 134 x 10 -> 64x64x30):

1. the copy-bound limit: windows/s of pinned host -> GPU copies of (x, y) batches
   alone, float32 and bfloat16;
2. the compute-bound limit: windows/s of forward + loss + backward + fused AdamW with
   the batch already on the GPU (bf16 autocast), eager and (``--compile``) compiled;
3. the CUDA kernels taking most of an eager step's GPU time (torch.profiler).

    python benchmarks/profile_train_step.py [--model calhas2022] [--batch 256 512] [--compile] [--top 25]
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_train_gpu import _LossWrap, make_model


def copy_rate(batch: int, grid, dtype, dev, reps: int = 20) -> float:
    x = torch.randn((batch, 64, 134, 10)).to(dtype).pin_memory()
    y = torch.randn((batch,) + tuple(grid)).to(dtype).pin_memory()
    for _ in range(3):
        x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
    torch.cuda.synchronize()
    return batch * reps / (time.perf_counter() - t0)


def step_rate(model_name: str, batch: int, grid, dev, *, compile_mode: str | None, steps: int = 30, profile_top: int = 0) -> float:
    torch.manual_seed(0)
    model = make_model(model_name, 64, 134, 10, grid, dev)
    wrap = _LossWrap(model)
    fn = torch.compile(wrap, mode=compile_mode) if compile_mode else wrap
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randn((batch, 64, 134, 10), device=dev)
    y = torch.randn((batch,) + tuple(grid), device=dev)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(8):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    rate = batch * steps / (time.perf_counter() - t0)
    if profile_top:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                step()
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=profile_top, max_name_column_width=70))
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="calhas2022")
    ap.add_argument("--batch", type=int, nargs="*", default=[256, 512])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--modes", nargs="*", default=["default"], help="torch.compile modes tried with --compile")
    args = ap.parse_args()
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    grid = (64, 64, 30)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print("| what | batch | windows/s |")
    print("|---|---|---|")
    for b in args.batch:
        for dt in (torch.float32, torch.bfloat16):
            print(f"| H2D copy of x + y ({str(dt).split('.')[-1]}, pinned) | {b} | {copy_rate(b, grid, dt, dev):.0f} |", flush=True)
    for b in args.batch:
        print(f"| step, data on GPU, eager | {b} | {step_rate(args.model, b, grid, dev, compile_mode=None):.0f} |", flush=True)
        if args.compile:
            for mode in args.modes:
                try:
                    r = step_rate(args.model, b, grid, dev, compile_mode=mode)
                    print(f"| step, data on GPU, compile {mode} | {b} | {r:.0f} |", flush=True)
                except Exception as e:  # noqa: BLE001 - report and go on
                    print(f"| step, compile {mode} | {b} | failed: {type(e).__name__}: {str(e)[:200]} |", flush=True)
    if args.top:
        step_rate(args.model, args.batch[-1], grid, dev, compile_mode=None, steps=5, profile_top=args.top)


if __name__ == "__main__":
    main()
