"""The timing helpers of the benchmark scripts, and PyTorch autograd's input gradient, their
yardstick. Numba is imported inside match_threads, not here: bench_suite.py's peer processes import
this module and time torch alone, with no Numba loaded."""

import statistics
import time

import numpy as np
import torch


def median_time(f, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``f``, after one untimed warm-up call."""
    f()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


#: Seconds of quiet before each timed call of paired_medians.
PAUSE = 0.3


def paired_medians(ours, theirs, repeats: int) -> tuple[float, float]:
    """Medians of two callables, taken alternately. Before each timed call: a pause, then one
    untimed call of the same library. The pause lets the other library's thread pools (OpenBLAS,
    TBB, torch's OpenMP) stop spinning: right after npxai's ResNet18 forward pass torch's took
    about twice as long as after a pause. The untimed call wakes the library's own threads, so
    that a tiny model is not timed on their wake-up."""
    a, b = [], []
    for _ in range(repeats):
        for f, out in ((ours, a), (theirs, b)):
            time.sleep(PAUSE)
            f()
            start = time.perf_counter()
            f()
            out.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def paired_long_medians(ours, theirs, repeats: int) -> tuple[float, float]:
    """paired_medians without the untimed calls, for calls of a second or more: the pause still
    keeps each library off the other's spinning threads, waking its own threads is a negligible
    part of such a call, and the untimed calls would double the run time."""
    a, b = [], []
    for _ in range(repeats):
        for f, out in ((ours, a), (theirs, b)):
            time.sleep(PAUSE)
            start = time.perf_counter()
            f()
            out.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def match_threads() -> str:
    """Give torch as many threads as Numba has; the header line naming them and the versions.
    npxai's kernels are imported first: they choose Numba's TBB layer, which must happen before
    ``get_num_threads`` starts Numba's threads (on another layer, otherwise)."""
    import npxai.kernels.cpu  # noqa: F401
    import numba

    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    return (
        f"threads: {threads} (numba on {numba.threading_layer()}, and torch)\n"
        f"numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__}"
    )


def torch_gradient(model: torch.nn.Module, x: torch.Tensor, target: np.ndarray) -> torch.Tensor:
    """The gradient of the target logits' sum with respect to ``x``, by torch's autograd."""
    x = x.clone().requires_grad_(True)
    model(x)[torch.arange(len(x)), torch.tensor(target)].sum().backward()
    return x.grad
