"""Render an eeg2fmri report in a real headless browser and save a screenshot (issue 13: "check it in a real headless browser").

Builds ``report.html`` for FOLDER (a quickstart, evaluate or benchmark output) unless it exists, then
runs headless Chromium (``/usr/bin/chromium``; Debian package ``chromium``) on the ``file://`` URL
and writes a PNG. Prints the file's size and the browser's exit status; fails when the browser is
missing or writes no image.

    python benchmarks/screenshot_report.py /tmp/qs --out docs/img/report.png [--width 1280] [--height 2600]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--out", type=Path, default=Path("docs/img/report.png"))
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=2600)
    args = ap.parse_args(argv)
    from eeg2fmri.workflows.report import build_report

    html = args.folder / "report.html"
    if not html.exists():
        html = build_report(args.folder)
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        print("no Chromium found: apt-get install -y chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                               f"--window-size={args.width},{args.height}", f"--screenshot={shot}", html.absolute().as_uri()],
                              capture_output=True, text=True, timeout=120)
        if not shot.exists() or shot.read_bytes()[:8] != b"\x89PNG\r\n\x1a\n":
            print(proc.stderr[-2000:], file=sys.stderr)
            return 1
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(shot), args.out)
    print(f"{browser} exited {proc.returncode}; wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB) from {html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
