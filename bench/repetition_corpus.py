"""Calibrate the repetition check on normal text: the false-positive rate of
``proxy.quality.repetition.loop_period`` on windows of text that is not a loop.

    python bench/repetition_corpus.py [--windows 20000] [--seed 1]

The corpus is built offline from what every Python ships: the standard library's
module and function docstrings (prose, lists, examples), its source files (code, with
the repetitive shapes code has: tables, similar lines), the licence text and the Zen
of Python. Each sample is the tail of a random prefix, as the check sees a response's
tail when it ends. Prints the rate per kind and each false positive found.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import inspect
import io
import pkgutil
import random
import sys
import sysconfig
import warnings
from pathlib import Path

from proxy.quality import repetition


def docstrings(limit: int = 400) -> list[str]:
    texts: list[str] = []
    names = sorted(m.name for m in pkgutil.iter_modules() if not m.name.startswith("_"))
    for name in names:
        if name in {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo"} or name not in sys.stdlib_module_names:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:
            continue
        parts = [inspect.getdoc(module) or ""]
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj) if callable(obj) else None
            if doc:
                parts.append(doc)
        text = "\n\n".join(p for p in parts if p)
        if len(text) > repetition.MIN_CHARS:
            texts.append(text)
        if len(texts) >= limit:
            break
    return texts


def sources(limit: int = 400) -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py"))[:limit]
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def prose() -> list[str]:
    with contextlib.redirect_stdout(io.StringIO()):  # importing it prints the Zen
        import this

    zen = codecs.decode(this.s, "rot13")
    root = Path(sysconfig.get_paths()["stdlib"])
    licence = [p.read_text(encoding="utf-8", errors="replace") for p in root.glob("LICENSE*")]
    return [zen * 1, *licence]


def sample(texts: list[str], n: int, rng: random.Random) -> list[str]:
    usable = [t for t in texts if len(t) >= repetition.MIN_CHARS]
    out: list[str] = []
    for _ in range(n):
        text = rng.choice(usable)
        end = rng.randrange(repetition.MIN_CHARS, len(text) + 1)
        out.append(text[max(0, end - repetition.WINDOW) : end])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    kinds = {"docstrings": docstrings(), "source": sources(), "licence+zen": prose()}
    for kind, texts in kinds.items():
        windows = sample(texts, args.windows, rng)
        hits = [w for w in windows if repetition.loop_period(w) is not None]
        covers = sorted(m[1] for m in map(repetition.measure, windows) if m is not None)
        top = f"highest cover {covers[-1]:.2f}, p99 {covers[int(0.99 * (len(covers) - 1))]:.2f}" if covers else "no candidate"
        print(f"{kind}: {len(texts)} texts, {len(windows)} windows, {len(hits)} flagged "
              f"({100 * len(hits) / len(windows):.3f} %); {len(covers)} had a candidate unit, {top}")
        for w in hits[: args.show]:
            print("   ", repr(w[-200:]))


if __name__ == "__main__":
    main()
