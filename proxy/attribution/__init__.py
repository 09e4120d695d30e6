"""GPU time and energy attribution (DESIGN.md section 14, docs/attribution.md).

- ``inflight``: the requests in flight in one relay process and their work per interval;
- ``meter``: the GPUs' busy time and energy per sampling interval, split among the parties
  that hold requests (this process, or every worker of ``--workers``);
- ``series``: the attributed and unattributed counters and the cost gauges;
- ``remote``: the hand-off between the supervisor's sampler and its workers.
"""
