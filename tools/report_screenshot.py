"""A screenshot of a report page's top (summary, front, selected subnet) in headless Chromium, for the README.

Usage: .venv/bin/python tools/report_screenshot.py runs/demo/report.html --out docs/report.png
Needs Debian's chromium (`make browser`); the PNG is cut to 256 colours to stay small.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    from headless_chromium import HeadlessChromium, chromium_path
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=860)
    parser.add_argument("--select", type=int, help="click this evaluation # of the first run first")
    args = parser.parse_args()
    executable = chromium_path()
    if executable is None:
        raise SystemExit("no chromium installed (apt-get install chromium, or `make browser`)")
    with HeadlessChromium(executable, width=args.width, height=args.height) as browser:
        browser.open(args.page)
        browser.wait_until("document.body.dataset.ready === '1'")
        if args.select:
            browser.evaluate(
                f'document.querySelector(\'#front-chart .pt[data-run="r0"][data-n="{args.select}"]\')'
                ".dispatchEvent(new MouseEvent('click', {bubbles: true}))"
            )
        if browser.errors():
            raise SystemExit(f"errors in the page: {browser.errors()}")
        browser.screenshot(args.out, height=args.height)
    image = Image.open(args.out).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
