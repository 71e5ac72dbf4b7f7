"""One timer per deployment: when it next needs a reconcile although no watch event comes (an
analysis round, a step's end, a registry poll, a retry). Nothing scans every deployment."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Key = tuple[str, str]


class Timers:
    def __init__(self, fire: Callable[[Key], None]) -> None:
        self._fire = fire
        self._handles: dict[Key, asyncio.TimerHandle] = {}

    def set(self, key: Key, delay: float | None) -> None:
        """The deployment's next look in `delay` seconds (None: none), replacing any other."""
        self.cancel(key)
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        self._handles[key] = loop.call_later(max(0.0, delay), self._run, key)

    def cancel(self, key: Key) -> None:
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def pending(self) -> int:
        return len(self._handles)

    def due_in(self, key: Key) -> float | None:
        """Seconds until the deployment's next look (None: none set)."""
        handle = self._handles.get(key)
        return None if handle is None else handle.when() - asyncio.get_running_loop().time()

    def _run(self, key: Key) -> None:
        self._handles.pop(key, None)
        self._fire(key)
