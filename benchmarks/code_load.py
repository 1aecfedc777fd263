"""Code location load time: loading ``okr_assets.definitions.defs`` versus ``import dagster``.

Each measurement is a fresh interpreter (what every run worker and the code server pay), timed
inside the interpreter from before the import to after it; ``defs`` also builds its repository
(``defs.get_repository_def()``), as loading a code location does. ``OKR_BENCH_LOAD_REPEATS``
fresh interpreters each (default 7), alternating, median. Target: <= 1.5x. One JSON line:

    python -m benchmarks.code_load
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from benchmarks._common import REPO, emit, median, size

TARGET = 1.5
_TIMER = "import time; t = time.perf_counter(); {body}; print(time.perf_counter() - t)"
DAGSTER = "import dagster"
DEFS = "from okr_assets.definitions import defs; defs.get_repository_def()"


def fresh(body: str) -> float:
    out = subprocess.run([sys.executable, "-c", _TIMER.format(body=body)], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> dict[str, Any]:
    repeats = size("load_repeats", 7)
    fresh(DEFS)  # warm the file system cache and the .pyc files; not counted
    dagster, defs = [], []
    for _ in range(repeats):
        dagster.append(fresh(DAGSTER))
        defs.append(fresh(DEFS))
    ratio = median(defs) / median(dagster)
    return emit({
        "name": "code_location_load", "ratio": round(ratio, 3), "target": f"<= {TARGET}x import dagster",
        "met": ratio <= TARGET, "repeats": repeats,
        "defs_seconds_median": round(median(defs), 3), "import_dagster_seconds_median": round(median(dagster), 3),
        "defs_seconds": [round(s, 3) for s in defs], "import_dagster_seconds": [round(s, 3) for s in dagster],
    })


if __name__ == "__main__":
    main()
