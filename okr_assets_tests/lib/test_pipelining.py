"""read_ahead: order kept, producer runs ahead in another thread, errors and early stops handled."""

import threading
from collections.abc import Iterator
from itertools import islice

import pytest

from okr_assets.lib.pipelining import overlapped, read_ahead


def test_items_arrive_in_order_from_another_thread() -> None:
    threads: list[str] = []

    def produce() -> Iterator[int]:
        for i in range(50):
            threads.append(threading.current_thread().name)
            yield i

    assert list(read_ahead(produce(), depth=3, name="producer")) == list(range(50))
    assert set(threads) == {"producer"}


def test_producer_works_one_item_ahead_while_the_consumer_holds_one() -> None:
    second_started, third_started = threading.Event(), threading.Event()

    def produce() -> Iterator[int]:
        yield 1
        second_started.set()  # reached only while item 1 is still with the consumer
        yield 2
        third_started.set()
        yield 3

    items = read_ahead(produce(), depth=1)
    assert next(items) == 1
    assert second_started.wait(timeout=10), "the producer did not work ahead of the consumer"
    # With item 1 held and item 2 made, the producer waits: memory stays at two items.
    assert not third_started.wait(timeout=0.5)
    assert list(items) == [2, 3]


def test_an_error_while_producing_reaches_the_consumer_after_the_items_before_it() -> None:
    def produce() -> Iterator[int]:
        yield 1
        raise RuntimeError("bad month")

    items = read_ahead(produce())
    assert next(items) == 1
    with pytest.raises(RuntimeError, match="bad month"):
        next(items)


def test_a_consumer_that_stops_early_stops_and_closes_the_producer() -> None:
    closed = threading.Event()
    made: list[int] = []

    def produce() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                made.append(i)
                yield i
        finally:
            closed.set()

    items = read_ahead(produce(), depth=2)
    assert list(islice(items, 3)) == [0, 1, 2]
    items.close()  # what a for loop leaving early (or an exception in its body) amounts to
    assert closed.is_set()  # closed before close() returned: nothing runs on behind the caller
    assert len(made) <= 3 + 2  # taken + at most depth ahead
    assert not [t for t in threading.enumerate() if t.name == "okr-read-ahead"]


def test_depth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="depth"):
        list(read_ahead([1], depth=0))


def test_overlapped_chains_stages_each_in_its_own_thread() -> None:
    seen: dict[str, set[str]] = {"read": set(), "double": set()}

    def read() -> Iterator[int]:
        for i in range(20):
            seen["read"].add(threading.current_thread().name)
            yield i

    def double(items: Iterator[int]) -> Iterator[int]:
        for i in items:
            seen["double"].add(threading.current_thread().name)
            yield 2 * i

    with overlapped(read(), double, name="chain") as out:
        assert list(out) == [2 * i for i in range(20)]
    assert seen == {"read": {"chain-1"}, "double": {"chain-2"}}


def test_overlapped_closes_every_stage_when_the_block_fails() -> None:
    """Even with the error's traceback still alive (it holds the stages' frames), no thread is
    left running once the block has ended."""
    closed: list[str] = []

    def read() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.append("read")

    def double(items: Iterator[int]) -> Iterator[int]:
        try:
            for i in items:
                yield 2 * i
        finally:
            closed.append("double")

    with pytest.raises(RuntimeError, match="write failed") as caught, \
            overlapped(read(), double, name="failing") as out:
        next(out)
        raise RuntimeError("write failed")
    assert caught.value.__traceback__ is not None
    assert closed == ["double", "read"]  # the last stage first, then the one it reads from
    assert not [t for t in threading.enumerate() if t.name.startswith("failing-")]


def test_overlapped_raises_an_error_of_the_first_stage_in_the_caller() -> None:
    def read() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    with overlapped(read(), lambda items: (i + 1 for i in items), name="broken") as out:
        assert next(out) == 2
        with pytest.raises(OSError, match="disk gone"):
            next(out)
    assert not [t for t in threading.enumerate() if t.name.startswith("broken-")]
