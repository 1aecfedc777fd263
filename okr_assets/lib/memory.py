"""Keep a long step's memory down to what it uses: reference cycles freed while it runs, and
Arrow's freed memory handed back when landing ends.

Landing makes many fresh containers (a list per CSV row, a record per Kafka message, pandas
Series whose cached ``.str`` and ``.dt`` accessors are reference cycles). In a run process the
oldest generation holds every object of Dagster and the libraries, so full collections are both
slow (~0.15 s) and rare, and such cycles would outlive their batch. Standard library only: the
code location imports this module.
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def older_objects_frozen() -> Iterator[None]:
    """Keep the objects that existed before the block out of Python's full garbage collections.

    A step that makes many fresh containers (a record and a dict per Kafka message, a list per
    CSV row, a cached accessor per pandas column) triggers full collections, and each one walked
    every object of the process: ~0.15 s each, ~1 s per 100,000 messages. Frozen, the older
    objects are skipped, so full collections are cheap and, counted against the fresh objects
    only, frequent enough to free the step's cycles soon after their use. ``gc.unfreeze`` hands
    the older objects back to the collector when the block ends (unless the process had frozen
    objects of its own before: those stay frozen, as it chose).
    """
    frozen_before = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen_before:
            gc.unfreeze()


def release_arrow_memory() -> None:
    """Hand the memory Arrow's allocator (mimalloc in the pyarrow wheels) still keeps from freed
    batches back to the system. Landing's Arrow batches peak at ~300 MB, of which the allocator
    keeps ~120 MB once they are freed; the warehouse engine's own memory in the later steps
    (DuckDB, in the same process) would come on top of it."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
