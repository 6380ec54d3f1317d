"""Work on daemon threads, for requests that may still be in flight when a run must end.

A run ends by its deadline even when a request never gets an answer: the main thread
stops waiting (lbscrape.core.budget) and the process exits. A ThreadPoolExecutor's
threads would hold that exit until their request timed out (AWS 10 s, Kubernetes 20 s);
daemon threads do not. Results come back as concurrent.futures Futures.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def _run(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn(*args))
    except BaseException as e:  # handed to whoever takes the result
        future.set_exception(e)


def background(fn: Callable[..., T], *args: Any) -> Future[T]:
    """fn(*args) on a daemon thread of its own."""
    future: Future[T] = Future()
    threading.Thread(target=_run, args=(future, fn, args), daemon=True).start()
    return future


class Workers:
    """Up to `n` daemon threads that take work in the order it is submitted. A thread is
    started only when none is idle: each thread that allocates gets a malloc arena of its
    own, and ten threads taking turns at a backfill's large answers kept 100 MB more
    resident than the few that are busy at a time."""

    def __init__(self, n: int, name: str) -> None:
        self._todo: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any],
                                            tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._pending: list[Future[Any]] = []
        self._idle = threading.Semaphore(0)
        self._n, self._name, self._threads = n, name, 0

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(future)
        self._todo.put((future, fn, args))
        if not self._idle.acquire(blocking=False) and self._threads < self._n:
            threading.Thread(target=self._work, name=f"{self._name}-{self._threads}",
                             daemon=True).start()
            self._threads += 1
        return future

    def stop(self) -> None:
        """Start nothing more; work in progress ends on its own (its result unread)."""
        for f in self._pending:
            f.cancel()
        for _ in range(self._threads):
            self._todo.put(None)

    def _work(self) -> None:
        while (item := self._todo.get()) is not None:
            _run(*item)
            self._idle.release()
