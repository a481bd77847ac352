"""Max pooling alone (numba backend, float32): the forward pass and the input gradient of the pools
of VGG16 (2x2, stride 2) and ResNet (3x3, stride 2, padding 1), at batch 1 and 8, beside torch's
``max_pool2d`` (with and without indices) and its backward, as many threads as Numba. Medians in
ms of ``--repeats`` calls after a warm-up; a quiet machine, or the numbers mean little.

    python benchmarks/profile_pool.py [--repeats 15]
"""

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from npxai.kernels.cpu import pool
from timing import match_threads, median_time

#: (name, input shape per sample, kernel, stride, padding)
LAYERS = [
    ("VGG16 pool 1", (64, 224, 224), 2, 2, 0),
    ("VGG16 pool 3", (256, 56, 56), 2, 2, 0),
    ("ResNet stem pool", (64, 112, 112), 3, 2, 1),
]


def time_pool(x: np.ndarray, k: int, s: int, p: int, repeats: int) -> list[float]:
    """Seconds: npxai's forward, torch's without and with indices, npxai's input gradient,
    torch's backward (from the indices)."""
    args = ((k, k), (s, s), (p, p), (1, 1), False)
    y = pool.max_pool2d(x, *args)
    g = np.random.default_rng(1).standard_normal(y.shape, dtype=np.float32)
    xt, gt = torch.tensor(x), torch.tensor(g)
    _, indices = F.max_pool2d(xt, k, s, p, return_indices=True)
    return [
        median_time(lambda: pool.max_pool2d(x, *args), repeats),
        median_time(lambda: F.max_pool2d(xt, k, s, p), repeats),
        median_time(lambda: F.max_pool2d(xt, k, s, p, return_indices=True), repeats),
        median_time(lambda: pool.max_pool2d_vjp(g, x, *args), repeats),
        median_time(
            lambda: torch.ops.aten.max_pool2d_with_indices_backward(
                gt, xt, [k, k], [s, s], [p, p], [1, 1], False, indices
            ),
            repeats,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    repeats = parser.parse_args().repeats
    print(match_threads())
    print(
        f"\nmax pooling, float32, ms (medians of {repeats})\n\n| layer | batch | npxai forward "
        "| torch forward | torch forward with indices | npxai input gradient | torch backward "
        "|\n" + "|---" * 7 + "|"
    )
    rng = np.random.default_rng(0)
    for name, shape, k, s, p in LAYERS:
        for batch in (1, 8):
            x = rng.standard_normal((batch, *shape), dtype=np.float32)
            cells = " | ".join(f"{t * 1e3:.2f}" for t in time_pool(x, k, s, p, repeats))
            print(f"| {name} {'x'.join(map(str, shape))} | {batch} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
