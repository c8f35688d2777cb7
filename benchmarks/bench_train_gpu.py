"""Training throughput of a registered model at NODDI shape, inputs streamed from host memory.

Windows (default STFT 64 x 134 x 10 -> 64x64x30 volumes, ~0.8 MB each, float32) live in pinned
host memory and are copied to the GPU every step, as a DataLoader would deliver them: by default
the next batch is copied on a side CUDA stream while the current step computes (``--no-prefetch``:
copied on the compute stream, serialised with the step);
the step is forward + loss (``training_terms``: MAE + latent cosine + channel regulariser) +
backward + fused AdamW, in bf16 autocast. With ``--devices N`` the same step runs under
DistributedDataParallel on N GPUs (one process each, NCCL) and the table shows the speed-up.

    python benchmarks/bench_train_gpu.py [--model calhas2022] [--batch 256] [--steps 60] [--devices 1 2] [--compile] [--no-prefetch]
                                         [--deterministic]

``--deterministic`` runs with ``torch.use_deterministic_algorithms(True)`` and cuDNN autotuning off,
as ``trainer.deterministic: true`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch


def make_model(name: str, n_ch: int, n_freq: int, n_frames: int, grid, device):
    from eeg2fmri.models import DataSpec, build_model

    spec = DataSpec(input_kind="stft", input_shape=(n_ch, n_freq, n_frames), output_shape=tuple(grid), sfreq=250.0, tr=2.16,
                    frame_rate=1 / 2.16, freqs=tuple(float(f) for f in torch.linspace(0.46, 62, n_freq)))
    return build_model(name, spec).to(device)


class _LossWrap(torch.nn.Module):
    """forward(x, y) -> training loss, so DDP sees one forward per step."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        if hasattr(self.model, "training_terms"):
            t = self.model.training_terms(x, y)
            return (t["pred"] - y).abs().mean() + t.get("latent_cosine", 0.0) + 1e-3 * t.get("organize_channels", 0.0)
        return (self.model(x) - y).abs().mean()


def run(rank: int, world: int, args, out_q=None) -> dict:
    if world > 1:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", "29517")
        torch.distributed.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    dev = torch.device("cuda", rank)
    torch.backends.cudnn.benchmark = not args.deterministic
    if args.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    grid = (64, 64, 30)
    model = make_model(args.model, 64, 134, 10, grid, dev)
    n_params = sum(p.numel() for p in model.parameters())
    step_model = _LossWrap(model)
    if world > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(step_model, device_ids=[rank], gradient_as_bucket_view=True, static_graph=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    g = torch.Generator().manual_seed(rank)
    pool = 8
    xs = torch.randn((pool, args.batch, 64, 134, 10), generator=g).pin_memory()
    ys = torch.randn((pool, args.batch) + grid, generator=g).pin_memory()

    fn = torch.compile(step_model) if args.compile else step_model
    copy_stream = torch.cuda.Stream(dev)
    pending = {}

    def fetch(i):
        """Start copying batch ``i`` to the GPU (side stream when prefetching)."""
        if not args.prefetch:
            return xs[i % pool].to(dev, non_blocking=True), ys[i % pool].to(dev, non_blocking=True)
        with torch.cuda.stream(copy_stream):
            x = xs[i % pool].to(dev, non_blocking=True)
            y = ys[i % pool].to(dev, non_blocking=True)
            done = torch.cuda.Event()
            done.record(copy_stream)
        pending[i] = (x, y, done)
        return None

    def get(i):
        """Batch ``i`` on the GPU, ready for the compute stream; starts copying batch ``i + 1``."""
        if not args.prefetch:
            return fetch(i)
        if i not in pending:
            fetch(i)
        x, y, done = pending.pop(i)
        compute = torch.cuda.current_stream(dev)
        compute.wait_event(done)
        x.record_stream(compute)  # the copy stream's allocations are used on the compute stream
        y.record_stream(compute)
        fetch(i + 1)
        return x, y

    def step(i):
        x, y = get(i)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(args.warmup):
        step(i)
    torch.cuda.synchronize()
    if world > 1:
        torch.distributed.barrier()
    t0 = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        step(i)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    res = dict(model=args.model, devices=world, batch_per_gpu=args.batch, compile=bool(args.compile), prefetch=bool(args.prefetch),
               deterministic=bool(args.deterministic), params=n_params,
               windows_per_s=world * args.batch * args.steps / dt, peak_mem_gb=torch.cuda.max_memory_allocated(dev) / 1e9)
    if world > 1:
        torch.distributed.destroy_process_group()
    if rank == 0 and out_q is not None:
        out_q.put(res)
    return res


def _spawn_entry(rank, world, args, q):
    run(rank, world, args, q)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="calhas2022")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=15)
    ap.add_argument("--devices", type=int, nargs="*", default=[1])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--deterministic", action="store_true", help="deterministic algorithms (trainer.deterministic: true)")
    ap.add_argument("--no-prefetch", dest="prefetch", action="store_false",
                    help="copy each batch on the compute stream instead of prefetching it on a side stream")
    args = ap.parse_args()
    rows = []
    for n in args.devices:
        if n > torch.cuda.device_count():
            print(f"skipping {n} devices: only {torch.cuda.device_count()} visible")
            continue
        if n == 1:
            rows.append(run(0, 1, args))
        else:
            import torch.multiprocessing as mp

            ctx = mp.get_context("spawn")
            q = ctx.SimpleQueue()
            mp.spawn(_spawn_entry, args=(n, args, q), nprocs=n, join=True)
            rows.append(q.get())
    base = next((r["windows_per_s"] for r in rows if r["devices"] == 1), None)
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    print("| model | devices | batch/GPU | compile | prefetch | deterministic | params | windows/s | speed-up | peak GPU mem |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sp = f"{r['windows_per_s'] / base:.2f}x" if base else "-"
        print(f"| {r['model']} | {r['devices']} | {r['batch_per_gpu']} | {r['compile']} | {r['prefetch']} | {r['deterministic']} | {r['params'] / 1e6:.1f} M | {r['windows_per_s']:.0f} | {sp} | {r['peak_mem_gb']:.1f} GB |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
