"""Screenshot a run's report.html in headless Chromium (for the README): `report_screenshot.py DIR OUT.png`.

The page is checked the way tests/test_report.py checks it (no console errors, every image loaded); the
screenshot is the top --height CSS pixels at --width, reduced to a 256-colour palette to stay small.
Needs Debian's chromium (/usr/bin/chromium) and playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from common import print_machine
from PIL import Image

from finetext.artifacts import REPORT
from finetext.evaluation.report_browser import check_page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="output directory of a training run (with report.html)")
    parser.add_argument("output", type=Path, help="PNG to write")
    parser.add_argument("--width", type=int, default=1200, help="viewport width in CSS pixels")
    parser.add_argument("--height", type=int, default=2400, help="CSS pixels from the top of the page")
    args = parser.parse_args()
    print_machine(args)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "page.png"
        check = check_page(args.run_dir / REPORT, raw, width=args.width, height=args.height)
        problems = check.console_errors + check.page_errors + check.broken_images + check.requests
        if problems:
            print(f"the page has problems: {problems}", file=sys.stderr)
            return 1
        args.output.parent.mkdir(parents=True, exist_ok=True)
        Image.open(raw).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(args.output, optimize=True)
    print(f"{args.output}: {args.output.stat().st_size / 1024:.0f} KB, {check.images} images, no errors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
