"""Histogram bucket families (DESIGN.md section 6), in one place.

The latency families (and tokens per second) are cut for accuracy: PromQL's
``histogram_quantile`` interpolates linearly inside a bucket, so its error is set by how
far apart neighbouring bounds are. Across each family's range no two neighbours are more
than 1.14x apart. That ratio is set by the hardest realistic case, a distribution with a
hard edge (the simulator's uniform jitter, 0.15 s +- 30 %): its p99 sits next to the edge,
and the estimate can land anywhere up to the next bound. At 1.14 the worst p99 error, over
every placement of the distribution, is 9.1 %; log-normal traffic (sigma 0.1 to 1) stays
under 5 %, bimodal mixes under 3.5 % (tests/metrics/test_bucket_accuracy.py holds every
family to 10 %). The OpenTelemetry GenAI metrics' advisory boundaries
(gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token,
gen_ai.client.operation.duration, as the semantic conventions list them) are kept where
they fall in a family's range, so ``le`` queries on them stay exact; between them the
ladder is geometric, rounded to two or three significant digits. docs/metrics.md lists the price.

SLO thresholds given by flags join their family so PromQL can compute attainment
exactly from ``_bucket{le="<threshold>"}``.
"""

from __future__ import annotations

from collections.abc import Iterable

# Most neighbouring bounds may differ inside a family's range (see above).
MAX_RATIO = 1.14

# Time to first token, dense over 10 ms - 60 s, plus OTel's 1 ms and 5 ms below. Also the
# family of upstream response headers: both measure a wait from arrival.
TTFT = (0.001, 0.005, 0.01, 0.0112, 0.0126, 0.0141, 0.0159, 0.0178, 0.02, 0.0224, 0.0252, 0.0283, 0.0317,
        0.0356, 0.04, 0.044, 0.049, 0.054, 0.06, 0.066, 0.073, 0.08, 0.089, 0.1, 0.112, 0.126, 0.141, 0.158,
        0.177, 0.199, 0.223, 0.25, 0.281, 0.315, 0.354, 0.397, 0.445, 0.5, 0.55, 0.61, 0.68, 0.75, 0.83,
        0.91, 1, 1.12, 1.26, 1.41, 1.58, 1.77, 1.99, 2.23, 2.5, 2.81, 3.15, 3.54, 3.97, 4.45, 5, 5.5, 6.1,
        6.8, 7.5, 8.3, 9.1, 10, 11.4, 12.9, 14.7, 16.7, 19, 21.6, 24.5, 27.8, 31.6, 36, 40.9, 46.5, 52.8,
        60)
# Time between tokens and time per output token share one family: dense over 1 ms - 2.5 s.
INTER_TOKEN = (0.001, 0.00114, 0.00129, 0.00147, 0.00167, 0.0019, 0.00215, 0.00245, 0.00278, 0.00316,
               0.00359, 0.00408, 0.00464, 0.00527, 0.00599, 0.00681, 0.00774, 0.0088, 0.01, 0.0112, 0.0126,
               0.0141, 0.0158, 0.0177, 0.0199, 0.0223, 0.025, 0.0281, 0.0315, 0.0354, 0.0397, 0.0445, 0.05,
               0.055, 0.061, 0.068, 0.075, 0.083, 0.091, 0.1, 0.111, 0.122, 0.136, 0.15, 0.17, 0.18, 0.2,
               0.22, 0.24, 0.27, 0.3, 0.33, 0.36, 0.4, 0.45, 0.5, 0.55, 0.61, 0.68, 0.75, 0.83, 0.91, 1,
               1.12, 1.26, 1.41, 1.58, 1.77, 1.99, 2.23, 2.5)
# Request duration, dense over 50 ms - 10 min, plus OTel's 10, 20 and 40 ms below.
REQUEST_DURATION = (0.01, 0.02, 0.04, 0.05, 0.056, 0.063, 0.071, 0.08, 0.0898, 0.101, 0.113, 0.127, 0.143,
                    0.16, 0.18, 0.202, 0.226, 0.254, 0.285, 0.32, 0.36, 0.4, 0.45, 0.51, 0.57, 0.64, 0.718,
                    0.806, 0.905, 1.02, 1.14, 1.28, 1.44, 1.61, 1.81, 2.03, 2.28, 2.56, 2.9, 3.2, 3.6, 4.1,
                    4.6, 5.12, 5.75, 6.45, 7.24, 8.13, 9.12, 10.24, 11.5, 12.9, 14.5, 16.3, 18.2, 20.48, 23,
                    26, 29, 33, 36, 40.96, 46, 52, 58, 65, 73, 81.92, 92.8, 105, 119, 135, 153, 173, 196,
                    222, 251, 284, 322, 365, 413, 468, 530, 600)
# What a server reports for its own phases (queue, load, prefill, decode): dense over
# 1 ms - 60 s, the TTFT ladder from 10 ms up.
PHASE = (0.001, 0.00113, 0.00128, 0.00145, 0.00164, 0.00186, 0.0021, 0.00238, 0.00269, 0.00305, 0.00345,
         0.0039, 0.00442, 0.005, 0.0056, 0.0063, 0.0071, 0.0079, 0.0089) + TTFT[TTFT.index(0.01):]
TOKENS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000)
# Tokens per second spans ~1 (a huge model on CPU) to ~10^4 (a cached tiny model): dense
# over all of it, geometric between the powers of ten.
TOKENS_PER_SECOND = (1, 1.14, 1.29, 1.47, 1.67, 1.9, 2.15, 2.45, 2.78, 3.16, 3.59, 4.08, 4.64, 5.27, 5.99,
                     6.81, 7.74, 8.8, 10, 11.4, 12.9, 14.7, 16.7, 19, 21.5, 24.5, 27.8, 31.6, 35.9, 40.8,
                     46.4, 52.7, 59.9, 68.1, 77.4, 88, 100, 114, 129, 147, 167, 190, 215, 245, 278, 316,
                     359, 408, 464, 527, 599, 681, 774, 880, 1000, 1140, 1290, 1470, 1670, 1900, 2150, 2450,
                     2780, 3160, 3590, 4080, 4640, 5270, 5990, 6810, 7740, 8800, 10000)
PROBE_DURATION = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def with_thresholds(family: Iterable[float], *thresholds: float | None) -> tuple[float, ...]:
    """The family plus any thresholds, sorted; rejects a family that is not strictly increasing."""
    base = tuple(float(b) for b in family)
    if any(b <= a for a, b in zip(base, base[1:])):
        raise ValueError(f"bucket family must be strictly increasing: {base}")
    extra = {float(t) for t in thresholds if t is not None}
    return tuple(sorted(set(base) | extra))
