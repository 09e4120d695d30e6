"""``python -m dashboards.builder [--check]``: write or verify the dashboard JSON files."""

from __future__ import annotations

import argparse
import sys

from dashboards.builder import BUILDERS, OUTPUT_DIR
from dashboards.builder.model import render

__all__ = ["main", "render"]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.builder")
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed dashboard is out of date")
    args = parser.parse_args()
    stale = []
    for name, build in BUILDERS.items():
        path = OUTPUT_DIR / name
        text = render(build())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run python -m dashboards.builder): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
