"""``CollectorSet``: one app's running collectors, the sampler thread and the probe task.

Either runtime starts it in its lifespan (the single process, or the supervisor of
``--workers``) and stops it at shutdown; ``/readyz`` reads the probe through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from proxy.collectors.base import Status, log
from proxy.collectors.sampler import Sampler
from proxy.collectors.upstream import UpstreamProbe

# A hung NVML read is left behind rather than waited for: shutdown takes at most this.
_STOP_TIMEOUT = 2.0


class CollectorSet:
    def __init__(self, sampler: Sampler, probe: UpstreamProbe | None) -> None:
        self.sampler = sampler
        self.probe = probe

    async def start(self) -> None:
        """Start sampling and probing. Never raises: a collector must never keep the relay
        from serving, so a failure is logged and the proxy starts without it."""
        try:
            if self.sampler.names:
                self.sampler.start()
            if self.probe is not None:
                await self.probe.start()
        except Exception as exc:
            log.exception("collectors failed to start: %s", exc)

    async def stop(self) -> None:
        if self.probe is not None:
            await self.probe.stop()
        # Joining threads blocks, so it happens off the event loop.
        await asyncio.to_thread(self.sampler.stop, _STOP_TIMEOUT)

    def upstream_ready(self) -> bool:
        """For ``/readyz``: the last probe succeeded (always True with the probe disabled)."""
        return self.probe is None or self.probe.ready()

    def statuses(self) -> Iterator[tuple[str, Status]]:
        for name in self.sampler.names:
            yield name, self.sampler.status(name)
        if self.probe is not None:
            yield self.probe.name, self.probe.status()
