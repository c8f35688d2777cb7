"""calhas2022 training step on the CPU: banded 2D convolutions (the default) vs plain ``F.conv3d``.

Times forward + loss + backward + AdamW of one batch, for the leaderboard's shape (simulated
4 x 10 min data: STFT 32 x 65 x 10 -> 33x39x32) and NODDI's (64 x 134 x 10 -> 64x64x30).

    python benchmarks/bench_calhas_cpu.py [--threads 2] [--batch 32] [--steps 6]
"""

from __future__ import annotations

import argparse
import time

import torch


def step_time(inp, grid, batch: int, steps: int, banded: bool) -> float:
    import eeg2fmri.models.calhas2022 as cal
    from eeg2fmri.models import DataSpec, build_model

    spec = DataSpec(input_kind="stft", input_shape=inp, output_shape=grid, sfreq=250.0, tr=2.0, frame_rate=0.5,
                    freqs=tuple(float(f) for f in torch.linspace(0.5, 60, inp[1])))
    torch.manual_seed(0)
    model = build_model("calhas2022", spec)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.randn(batch, *inp), torch.randn(batch, *grid)
    saved = cal._BANDED_MAX_CHANNELS
    cal._BANDED_MAX_CHANNELS = saved if banded else 0
    try:
        def step():
            t = model.training_terms(x, y)
            loss = (t["pred"] - y).abs().mean() + t["latent_cosine"]
            opt.zero_grad()
            loss.backward()
            opt.step()

        for _ in range(2):
            step()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - t0) / steps
    finally:
        cal._BANDED_MAX_CHANNELS = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch}")
    print("| input (C, F, T) | output grid | F.conv3d ms/step | banded ms/step | speed-up |")
    print("|---|---|---:|---:|---:|")
    for inp, grid in [((32, 65, 10), (33, 39, 32)), ((64, 134, 10), (64, 64, 30))]:
        a = step_time(inp, grid, args.batch, args.steps, banded=False)
        b = step_time(inp, grid, args.batch, args.steps, banded=True)
        print(f"| {inp} | {grid} | {a * 1e3:.0f} | {b * 1e3:.0f} | {a / b:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
