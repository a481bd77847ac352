"""The one timing helper of the benchmark scripts."""

import statistics
import time


def median_time(f, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``f``, after one untimed warm-up call."""
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
