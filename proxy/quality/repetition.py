"""The ``repetition`` check: is the output's tail a degenerate loop?

A model stuck in a loop (Holtzman et al. 2019; common in small and quantized models at
low temperature) repeats one unit of text until ``max_tokens``. The check keeps only
the last ``WINDOW`` characters of the output (``content.Content``: bounded memory, a
list append per delta) and decides once, when the response ends:

1. the window must hold at least ``MIN_CHARS`` characters (short answers cannot burn a
   GPU to ``max_tokens``, and a few repeats in them are more often lists than loops);
2. a candidate unit length ``p`` is the distance back to an earlier occurrence of the
   window's last ``PROBE`` characters (the nearest ``CANDIDATES``): a periodic text
   recurs at its period, and ``rfind`` is one C-level scan, so normal text (where the
   probe seldom recurs) costs nothing more;
3. the unit must fit at least ``MIN_REPEATS`` times in the window;
4. at least ``MIN_COVER`` of the characters of the window's end (its last ``MIN_LOOP``
   characters, or ``MIN_REPEATS`` units when longer) must equal the character ``p``
   before them: the repeating unit covers the end of the output. A tolerance, not exact
   equality, so loops with a counter in them ("Step 7: ...", "Step 8: ...") still count.

The constants were chosen on real outputs (SmolLM2-135M through llama-server, and a
normal-text corpus from the standard library's docs, licence and source): docs/quality.md
gives the measurement and the false-positive rate.
"""

from __future__ import annotations

from operator import eq

WINDOW = 1024
MIN_CHARS = 256
PROBE = 24
MIN_REPEATS = 4
MIN_LOOP = 384
MIN_COVER = 0.9
CANDIDATES = 8


def loop_period(text: str) -> int | None:
    """The length of the repeating unit when ``text``'s tail is a loop, else None."""
    found = measure(text)
    return found[0] if found is not None and found[1] >= MIN_COVER else None


def measure(text: str) -> tuple[int, float] | None:
    """The best candidate unit length of ``text``'s tail and the share of the window's end
    it covers; None when the tail is too short or has no candidate unit (steps 1 to 3)."""
    s = text[-WINDOW:]
    n = len(s)
    if n < MIN_CHARS:
        return None
    probe = s[-PROBE:]
    best: tuple[int, float] | None = None
    # Earlier occurrences of the last PROBE characters, nearest first (overlapping the
    # probe allowed: "aaaa" has period 1). A unit can hold the probe's text more than once
    # (a paragraph whose sentences end alike), so a few candidates are tried, not only
    # the nearest.
    end = n - 1
    for _ in range(CANDIDATES):
        j = s.rfind(probe, 0, end)
        if j < 0:
            break
        p = n - PROBE - j
        if p * MIN_REPEATS > n:
            break
        # The loop is judged on the window's end: a loop that began late is still a loop.
        span = min(n, max(MIN_LOOP, MIN_REPEATS * p))
        tail = s[-span:]
        cover = sum(map(eq, tail[p:], tail[:-p])) / (span - p)
        if best is None or cover > best[1]:
            best = (p, cover)
        if cover >= MIN_COVER:
            break
        end = j + PROBE - 1
    return best
