"""Host, GPU, upstream and Ollama collectors, each enabled by name in ``--collectors``.

System and GPU are read by the sampler thread and served from its cache; the upstream
probe is an asyncio task. None of them can block ``/metrics`` or take it down.

- ``catalog``: the table of collectors by name, and ``build_collectors``;
- ``running``: ``CollectorSet``, what an app starts and stops;
- ``sampler`` and ``cached``: the thread that reads, and what the registry yields;
- one module per collector: ``system``, ``gpu``, ``upstream``, ``ollama`` (and ``locator``,
  which finds the upstream's process for system and gpu).
"""

from proxy.collectors.catalog import build_collectors
from proxy.collectors.running import CollectorSet

__all__ = ["CollectorSet", "build_collectors"]
