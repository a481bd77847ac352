"""npxai's VGG16 gradient per image at several batch sizes, with the process's peak memory.

    python benchmarks/bench_batch.py [--batches 4 8 16 32]

What the batch size of SmoothGrad and IntegratedGradients (``batch_size``: path points or noisy
copies per pass) buys: float32, numba backend, torchvision's VGG16 (random weights), inputs
uniform in [0, 1); after an untimed call, one timed call per batch size, in increasing order (so
the peak resident memory printed after each is that batch's, or a smaller one's)."""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch
import torchvision

import npxai


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[4, 8, 16, 32])
    args = parser.parse_args()
    torch.manual_seed(0)
    model = npxai.from_torch(torchvision.models.vgg16().eval())
    rng = np.random.default_rng(0)
    print("| batch | s per image | peak RSS (MB) |\n|---|---|---|")
    for batch in sorted(args.batches):
        x = rng.random((batch, 3, 224, 224), dtype=np.float32)
        npxai.gradient(model, x)
        start = time.perf_counter()
        npxai.gradient(model, x)
        per_image = (time.perf_counter() - start) / batch
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {batch} | {per_image:.3f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
