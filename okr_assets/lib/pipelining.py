"""Overlap a step's warehouse waits with its pandas work: a producer in a background thread.

A run's steps alternate between waiting on the warehouse (DuckDB and psycopg2 release the GIL
while a statement runs) and pandas work (which mostly holds it), so one of this machine's two
cores sat idle. ``read_ahead`` runs an iterator in a background thread a bounded number of items
ahead of its consumer: while one month is written and committed, the next is read and validated.
The standard library has the parts (a thread, a bounded queue) but no iterator that also closes
its producer when the consumer stops early, so this small one is written here.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing, contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.1  # how often a producer waiting for a free slot looks for a stopped consumer


def read_ahead(items: Iterable[T], depth: int = 1, name: str = "okr-read-ahead") -> Iterator[T]:
    """Yield ``items`` in order, produced by a background thread at most ``depth`` items ahead.

    The producer starts on an item only when fewer than ``depth`` items wait for the consumer, so
    besides the item the consumer holds, at most ``depth`` more exist (ready or being made): with
    the default, the next month is read while this one is written, and no more. An exception
    raised while producing reaches the consumer where that item would have. When the consumer
    stops early (an error of its own, or it leaves the loop), the producer stops after the item
    in hand and its generator is closed in its own thread; this generator returns only once that
    thread has ended, so no work outlives the caller. Steps use it through ``overlapped``, which
    also closes it when the consuming loop fails.
    """
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    ready: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
    slots = threading.Semaphore(depth)  # one per item ahead of the consumer
    stop = threading.Event()

    def claim_slot() -> bool:
        while not stop.is_set():
            if slots.acquire(timeout=_POLL_SECONDS):
                return not stop.is_set()
        return False

    def produce() -> None:
        iterator = iter(items)
        try:
            while claim_slot():
                try:
                    item = next(iterator)
                except StopIteration:
                    ready.put(("done", None))
                    return
                ready.put(("item", item))
                del item  # the consumer's now: it must not outlive its use here
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(("error", exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, value = ready.get()
            if kind == "item":
                slots.release()  # the producer may start on the next item while this one is used
                yield value  # type: ignore[misc]
                del value
            elif kind == "error":
                raise value  # type: ignore[misc]
            else:
                return
    finally:
        stop.set()
        thread.join()


@contextmanager
def overlapped(
    items: Iterable[Any], *stages: Callable[[Iterator[Any]], Iterable[Any]], name: str,
) -> Iterator[Iterator[Any]]:
    """The last of a chain of stages, each run by ``read_ahead`` in its own thread one item ahead
    of the next: ``items`` first, then each of ``stages`` over the one before (for example: read
    a month, validate it, while the caller writes the month before). Threads are named
    ``{name}-1``, ``{name}-2``, ...

    Every stage is closed when the block ends, last first, also when it ends with an error: an
    exception's traceback keeps the suspended generators, and with them their threads, alive
    until the exception itself is gone.
    """
    with ExitStack() as stack:
        current: Iterator[Any] = stack.enter_context(closing(read_ahead(items, name=f"{name}-1")))
        for number, stage in enumerate(stages, start=2):
            current = stack.enter_context(closing(read_ahead(stage(current), name=f"{name}-{number}")))
        yield current
