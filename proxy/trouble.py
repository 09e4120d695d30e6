"""A trouble that comes and goes: counted each time, logged when it begins or ends.

A full span or log queue, failing writes or exports, a failing collector, a down upstream:
each may happen thousands of times a minute, and the log must say so once, not each time.
``Trouble`` is that rule written once: ``hit`` counts an occurrence (when given a counter)
and logs its message only when the trouble begins or turns into another one (a new key);
``clear`` logs its message only when a trouble was under way.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter


class Trouble:
    """One kind of trouble of one part; safe to hit and clear from several threads.

    The messages are passed at each call (with their arguments, formatted only when
    logged), so one trouble can say what it is each time it changes."""

    def __init__(self, log: logging.Logger, counter: Counter | None = None, state: object = None) -> None:
        self._log = log
        self._counter = counter
        self._lock = threading.Lock()
        # The key of the trouble under way, None while all is well. A part that must log
        # its first state either way (the probe's first up) starts with a key of its own.
        self.state = state

    @property
    def active(self) -> bool:
        return self.state is not None

    def hit(self, key: object, message: str, *args: object, n: int = 1, exc_info: bool = False) -> bool:
        """It happened ``n`` times: count them; log ``message`` (a warning) if the trouble
        begins or ``key`` differs from the one under way. Whether it logged."""
        if self._counter is not None:
            self._counter.inc(n)
        if key == self.state:  # the common case while in trouble: no lock
            return False
        with self._lock:
            if key == self.state:
                return False
            self.state = key
        self._log.warning(message, *args, exc_info=exc_info)
        return True

    def clear(self, message: str | None = None, *args: object) -> bool:
        """All is well: log ``message`` (info) if a trouble was under way. Whether one was."""
        if self.state is None:  # the common case, once per request for some parts: no lock
            return False
        with self._lock:
            if self.state is None:
                return False
            self.state = None
        if message is not None:
            self._log.info(message, *args)
        return True
