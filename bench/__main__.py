"""``python -m bench``: run every benchmark module in turn, each in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULES = [
    "bench.flow",
    "bench.engine",
    "bench.throughput",
    "bench.widgets",
    "bench.startup",
    "bench.latency",
    "bench.recording",
    "bench.analytics",
    "bench.growth",
    "bench.waiting",
    "bench.cancel",
    "bench.steering",
    "bench.hostile",
    "bench.graph",
]
"""In order; each prints a markdown table and writes bench/results/<name>.json."""


def main() -> int:
    failed = 0
    for module in MODULES:
        print(f"\n## {module}\n", flush=True)
        failed += subprocess.call([sys.executable, "-m", module], cwd=Path(__file__).parent.parent) != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
