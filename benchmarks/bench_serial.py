"""Small kernel calls on the calling thread (``kernels/cpu/threads.py``): what a parallel launch
costs, and what the serial twins save on small models and mid-sized layers.

    python benchmarks/bench_serial.py [--calls 300]

1. ReLU, the max pool's forward (3x3, stride 2) and a 3x3 convolution's im2col alone, over sizes
   2^6 .. 2^18 elements, by the parallel build and by its serial twin: microseconds a call (median
   of 2,000 back-to-back calls: the threads stay awake, the launch's least cost).
2. Gradient of the small CNN (npxai.models.lenet, 1x1x28x28) and of ResNet18 (npxai's, random
   weights) at 1x3x224x224, each in a process of its own, with ``SERIAL_BELOW`` as shipped and
   with 0 (every call parallel): median and 90th percentile of ``--calls`` calls (small CNN) or
   of 20 (ResNet18), where the threads may sleep between layers.
"""

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, os, sys, time
import numpy as np
from npxai.kernels.cpu import threads
import npxai
threads.SERIAL_BELOW = int(os.environ["SERIAL_BELOW"])
name, calls = sys.argv[1], int(sys.argv[2])
npxai.manual_seed(0)
if name == "small CNN":
    model = npxai.models.lenet(num_classes=10, in_channels=1, input_size=28)
    x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
else:
    model = npxai.models.resnet18()
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
for _ in range(5):
    npxai.gradient(model, x)
times = []
for _ in range(calls):
    start = time.perf_counter()
    npxai.gradient(model, x)
    times.append(time.perf_counter() - start)
print(json.dumps([float(np.median(times)), float(np.percentile(times, 90))]))
"""


def micro() -> None:
    import time

    import numpy as np
    from npxai.kernels.cpu import activation, conv, pool
    from npxai.kernels.cpu.threads import serial_twin

    def per_call(f, n=2000):
        for _ in range(50):
            f()
        start = time.perf_counter()
        for _ in range(n):
            f()
        return (time.perf_counter() - start) / n * 1e6

    print("| kernel | elements | parallel (us) | serial twin (us) |\n|---|---|---|---|")
    for log in range(6, 19, 2):
        size = 2**log
        x = np.random.default_rng(0).standard_normal(size, dtype=np.float32)
        out = np.empty_like(x)
        side = int(np.sqrt(size / 16))
        planes = x[: 16 * side * side].reshape(16, side, side)
        oh = (side - 1) // 2 + 1
        y = np.empty((16, oh, oh), np.float32)
        image = planes[None]
        cols = np.empty((16 * 9, side * side), np.float32)
        cases = {
            "relu": (activation._relu_vjp, (x, x, out)),
            "max pool 3x3/2": (pool._max_pool, (planes, y, 3, 3, 2, 2, 1, 1, 1, 1)),
            "im2col 3x3": (conv._im2col, (image, cols, 3, 3, 1, 1, 1, 1, 1, 1, side, side)),
        }
        for name, (kernel, args) in cases.items():
            twin = serial_twin(kernel)
            a, b = per_call(lambda k=kernel: k(*args)), per_call(lambda k=twin: k(*args))
            print(f"| {name} | {size:,} | {a:.2f} | {b:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    calls = parser.parse_args().calls
    micro()
    from npxai.kernels.cpu.threads import SERIAL_BELOW

    print("\n| model | SERIAL_BELOW | median (ms) | 90th percentile (ms) |\n|---|---|---|---|")
    for name, n in (("small CNN", calls), ("ResNet18", 20)):
        for serial_below in (SERIAL_BELOW, 0):
            env = dict(os.environ, SERIAL_BELOW=str(serial_below))
            out = subprocess.run([sys.executable, "-c", WORKER, name, str(n)], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            median, p90 = json.loads(out.stdout)
            print(f"| {name} | {serial_below} | {median * 1e3:.3f} | {p90 * 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
