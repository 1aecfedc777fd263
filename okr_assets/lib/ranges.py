"""Half-open integer ranges (``start``, ``end`` exclusive): Kafka offsets that landed, are in
flight or are missing. Pure functions the sensors and the landing asset share."""

from __future__ import annotations

from collections.abc import Iterable

Range = tuple[int, int]


def merged(ranges: Iterable[Range]) -> list[Range]:
    """The ranges sorted, with overlapping and adjacent ones joined; empty ranges dropped."""
    out: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def uncovered(start: int, end: int, covered: Iterable[Range]) -> list[Range]:
    """The parts of ``start`` .. ``end`` that no range of ``covered`` contains."""
    gaps: list[Range] = []
    position = start
    for lo, hi in merged(covered):
        if hi <= position:
            continue
        if lo >= end:
            break
        if lo > position:
            gaps.append((position, lo))
        position = max(position, hi)
    if position < end:
        gaps.append((position, end))
    return gaps


def advanced(watermark: int, covered: Iterable[Range]) -> int:
    """``watermark`` moved over every range of ``covered`` that starts at or before it: the first
    offset from which something is not covered."""
    for lo, hi in merged(covered):
        if lo > watermark:
            break
        watermark = max(watermark, hi)
    return watermark
