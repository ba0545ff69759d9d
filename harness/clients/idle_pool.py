"""What requests lacks and Go's transport has: a global idle cap and an idle timeout.

``IdleLimitedPoolManager`` is a urllib3 ``PoolManager`` whose pools share one
``IdlePolicy``:

* at most ``max_idle_per_host`` idle connections per host (the pool's maxsize;
  surplus connections are closed when returned, quietly);
* at most ``max_idle_total`` idle connections across all hosts;
* an idle connection older than ``idle_timeout`` seconds is closed, by a reaper
  thread even when no traffic comes (Go's ``IdleConnTimeout``);
* ``close_idle()`` closes every idle connection (Go's ``CloseIdleConnections``).

Only *idle* connections are touched: one in use belongs to its request. (With
urllib3 2.x ``PoolManager.clear()`` would not close a socket a live response
still references anyway.)
"""
from __future__ import annotations

import queue
import threading
import time
import weakref

from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection

_IDLE_SINCE = "_harness_idle_since"


class IdlePolicy:
    """Shared idle bookkeeping for all pools of one client."""

    def __init__(self, max_idle_total: int, idle_timeout: float) -> None:
        self.max_idle_total = max_idle_total
        self.idle_timeout = idle_timeout
        self.lock = threading.Lock()
        self._pools: weakref.WeakSet[HTTPConnectionPool] = weakref.WeakSet()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="idle-reaper", daemon=True)
        self._reaper.start()

    def register(self, pool: HTTPConnectionPool) -> None:
        with self.lock:
            self._pools.add(pool)

    def _idle_connections(self):
        """(pool, conn) for every open idle connection; caller holds ``self.lock``."""
        for pool in list(self._pools):
            q = pool.pool
            if q is None:
                continue
            with q.mutex:
                for conn in list(q.queue):
                    if conn is not None and conn.sock is not None:
                        yield pool, conn

    def put(self, conn: HTTPConnection | None, put_back) -> None:
        """Return ``conn`` to its pool through ``put_back``, within the caps.

        Over the total cap the connection is closed but its object still goes
        back: a closed connection in the queue is an empty slot that urllib3
        reconnects on use. Over the per-host cap (queue full) ``put_back``
        closes it.
        """
        with self.lock:
            if conn is not None and conn.sock is not None:
                if sum(1 for _ in self._idle_connections()) >= self.max_idle_total:
                    conn.close()
                else:
                    setattr(conn, _IDLE_SINCE, time.monotonic())
            put_back(conn)
        self._wake.set()

    def taken(self, conn: HTTPConnection | None) -> None:
        """A pooled connection is about to be used: close it first if it expired."""
        if conn is None:
            return
        since = getattr(conn, _IDLE_SINCE, None)
        if since is not None and time.monotonic() - since >= self.idle_timeout and conn.sock is not None:
            conn.close()  # urllib3 opens a fresh socket for it
        setattr(conn, _IDLE_SINCE, None)

    def close_idle(self) -> int:
        """Close every idle connection now; returns how many were closed."""
        closed = 0
        with self.lock:
            for _, conn in self._idle_connections():  # closed while its pool's lock is held
                conn.close()
                closed += 1
        return closed

    def _reap_expired(self) -> float:
        """Close expired idle connections; return seconds until the next expiry."""
        now = time.monotonic()
        next_in = self.idle_timeout
        with self.lock:
            for _, conn in self._idle_connections():
                since = getattr(conn, _IDLE_SINCE, None)
                if since is None:
                    continue
                age = now - since
                if age >= self.idle_timeout:
                    conn.close()
                else:
                    next_in = min(next_in, self.idle_timeout - age)
        return next_in

    def _reap_loop(self) -> None:
        while not self._closed.is_set():
            next_in = self._reap_expired()
            self._wake.wait(timeout=next_in)
            self._wake.clear()

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        self._reaper.join(timeout=5)


class _IdleAwareMixin:
    idle_policy: IdlePolicy

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        self.idle_policy.taken(conn)
        return conn

    def _put_conn(self, conn) -> None:
        if self.pool is None:  # type: ignore[attr-defined]
            super()._put_conn(conn)  # type: ignore[misc]
            return
        self.idle_policy.put(conn, self._put_back)

    def _put_back(self, conn) -> None:
        try:
            self.pool.put(conn, block=False)  # type: ignore[attr-defined]
        except (AttributeError, queue.Full):  # pool closed meanwhile, or full
            if conn is not None:
                conn.close()


class IdleLimitedHTTPPool(_IdleAwareMixin, HTTPConnectionPool):
    pass


class IdleLimitedHTTPSPool(_IdleAwareMixin, HTTPSConnectionPool):
    pass


class IdleLimitedPoolManager(PoolManager):
    """A PoolManager whose pools obey one ``IdlePolicy``."""

    def __init__(self, idle_policy: IdlePolicy, **kwargs) -> None:
        super().__init__(**kwargs)
        self.idle_policy = idle_policy
        self.pool_classes_by_scheme = {"http": IdleLimitedHTTPPool, "https": IdleLimitedHTTPSPool}

    def _new_pool(self, scheme, host, port, request_context=None):
        pool = super()._new_pool(scheme, host, port, request_context)
        pool.idle_policy = self.idle_policy
        self.idle_policy.register(pool)
        return pool
