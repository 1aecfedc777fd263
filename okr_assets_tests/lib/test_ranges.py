"""Offset range arithmetic of the Kafka landing ledger, and what a stalled read counts as lost."""

import pytest

from okr_assets.lib.ranges import advanced, merged, uncovered
from okr_assets.resources.kafka import unreadable_span


def test_merged_joins_overlapping_and_adjacent_ranges() -> None:
    assert merged([(5, 9), (0, 3), (3, 4), (8, 12), (20, 20)]) == [(0, 4), (5, 12)]
    assert merged([]) == []


@pytest.mark.parametrize("start, end, covered, gaps", [
    (0, 10, [], [(0, 10)]),
    (0, 10, [(0, 10)], []),
    (0, 10, [(2, 4), (6, 8)], [(0, 2), (4, 6), (8, 10)]),
    (5, 10, [(0, 7)], [(7, 10)]),
    (0, 10, [(12, 20)], [(0, 10)]),
    (0, 10, [(3, 5), (4, 12)], [(0, 3)]),
])
def test_uncovered_is_what_no_range_contains(start: int, end: int, covered: list, gaps: list) -> None:
    assert uncovered(start, end, covered) == gaps


def test_the_watermark_moves_over_contiguous_ranges_only() -> None:
    assert advanced(0, [(0, 5), (5, 9), (12, 20)]) == 9
    assert advanced(3, [(0, 5)]) == 5
    assert advanced(4, [(6, 9)]) == 4


@pytest.mark.parametrize("position, end, log_start, log_end, lost", [
    (10, 30, 0, 40, None),        # in the log: not here yet (a slow broker), nothing is lost
    (10, 30, 25, 40, (10, 25)),   # retention moved the log start past the position: the rest is read
    (10, 30, 35, 40, (10, 30)),   # the whole rest of the range was deleted
    (10, 30, 0, 10, (10, 30)),    # the log ends before the position: the broker lost what it reported
    (30, 30, 40, 50, None),       # nothing left to read
])
def test_what_a_stalled_read_counts_as_lost(position: int, end: int, log_start: int, log_end: int,
                                            lost: tuple[int, int] | None) -> None:
    assert unreadable_span(position, end, log_start, log_end) == lost
