"""Dispatch over several replicas of one model: least outstanding requests, failover, cooldown.

:class:`ServerPool` decides which server gets the next request; it does no I/O, so it is tested
with a fake clock. The openai engine asks it for a server before every attempt
(:meth:`ServerPool.acquire`) and reports the outcome (:meth:`ServerPool.release`):

- **Least outstanding requests**: the available server with the fewest requests in flight
  gets the next one; ties go to the one that was sent fewer requests so far, then to the first
  in the list, so idle replicas take turns.
- **Failover**: a server whose attempt failed in a way a retry may fix (connection error,
  timeout, 5xx, 429, malformed reply) is *avoided* for ``cooldown`` seconds, doubled for every
  failure in a row (at most ``MAX_COOLDOWN_FACTOR`` times ``cooldown``), or for as long as the
  server asked with ``Retry-After`` if that is longer. The retry goes to another server at once.
  A success ends the streak. When every server is avoided, the one free soonest is used (the
  engine's ordinary backoff then paces the retries), so a pool never refuses work.
- A pool of one server never avoids it: retries are paced by the engine's backoff alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

#: a failed server is avoided for at most this many times the base cooldown
MAX_COOLDOWN_FACTOR = 10


def cooldown_seconds(base: float, failures_in_a_row: int, asked: float | None = None) -> float:
    """How long to avoid a server after its ``failures_in_a_row``-th consecutive failure.

    >>> [cooldown_seconds(30.0, k) for k in (1, 2, 3, 4, 5)]
    [30.0, 60.0, 120.0, 240.0, 300.0]
    >>> cooldown_seconds(30.0, 1, asked=90.0)
    90.0
    """
    if failures_in_a_row < 1:
        return 0.0
    wait = min(base * 2 ** (failures_in_a_row - 1), base * MAX_COOLDOWN_FACTOR)
    return max(wait, asked or 0.0)


@dataclass
class Server:
    """One replica: its URL (``None`` = the OpenAI API), its client, and dispatch state."""

    index: int
    url: str | None
    client: Any
    outstanding: int = 0  # requests in flight
    sent: int = 0  # requests given to it so far
    failures_in_a_row: int = 0
    avoid_until: float = 0.0  # monotonic time before which it is avoided

    @property
    def label(self) -> str:
        return self.url or "the OpenAI API"


class ServerPool:
    """Choose a server per attempt; see the module docstring. Thread-safe."""

    def __init__(
        self,
        servers: Sequence[tuple[str | None, Any]],
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not servers:
            raise ValueError("a server pool needs at least one server")
        if cooldown <= 0:
            raise ValueError(f"cooldown must be > 0, got {cooldown}")
        self.servers = [Server(i, url, client) for i, (url, client) in enumerate(servers)]
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.servers)

    def acquire(self) -> Server:
        """The server for the next attempt (its outstanding count is raised by one)."""
        with self._lock:
            now = self._clock()
            ready = [s for s in self.servers if s.avoid_until <= now]
            if ready:
                server = min(ready, key=lambda s: (s.outstanding, s.sent, s.index))
            else:
                server = min(self.servers, key=lambda s: (s.avoid_until, s.outstanding, s.index))
            server.outstanding += 1
            server.sent += 1
            return server

    def release(self, server: Server, *, failed: bool = False, asked: float | None = None) -> float:
        """Report the end of an attempt on ``server``; ``failed`` = it failed in a way another
        server may not (see the module docstring), ``asked`` = the server's ``Retry-After``.

        Returns how long the server is now avoided (0 when it is not).
        """
        with self._lock:
            server.outstanding -= 1
            if not failed:
                server.failures_in_a_row = 0
                return 0.0
            server.failures_in_a_row += 1
            if len(self.servers) == 1:
                return 0.0
            wait = cooldown_seconds(self.cooldown, server.failures_in_a_row, asked)
            server.avoid_until = max(server.avoid_until, self._clock() + wait)
            return wait

    def available_besides(self, server: Server) -> bool:
        """Whether another server than ``server`` may take a request now."""
        with self._lock:
            now = self._clock()
            return any(s is not server and s.avoid_until <= now for s in self.servers)

    def close(self) -> None:
        for s in self.servers:
            close = getattr(s.client, "close", None)
            if close is not None:
                close()
