"""Cold start: import and first explanation, with an empty and with a warm on-disk kernel cache.

    python benchmarks/bench_compile.py

Each measurement runs in a fresh process with ``NUMBA_CACHE_DIR`` pointing at a temporary folder:
first empty (every kernel is compiled: "cold"), then again with the kernels that run left there
("warm"). The job is the small CNN's forward pass and gradient at batch 1 in float32, then the same
in float64 (a second set of kernel specialisations).
"""

import json
import os
import subprocess
import sys
import tempfile

JOB = r"""
import json, time
start = time.perf_counter()
import numpy as np
import npxai
imported = time.perf_counter()
model = npxai.models.lenet(num_classes=10, in_channels=1, input_size=28)
x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
npxai.gradient(model, x)
first32 = time.perf_counter()
npxai.gradient(model, x.astype(np.float64))
first64 = time.perf_counter()
npxai.gradient(model, x)
again = time.perf_counter()
print(json.dumps({"import": imported - start, "first float32 gradient": first32 - imported,
                  "first float64 gradient": first64 - first32, "next float32 gradient": again - first64}))
"""


def run(cache: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    out = subprocess.run(
        [sys.executable, "-c", JOB], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def main() -> None:
    with tempfile.TemporaryDirectory() as cache:
        cold = run(cache)
        warm = run(cache)
    print("| seconds | cold cache | warm cache |")
    print("|---|---|---|")
    for key in cold:
        print(f"| {key} | {cold[key]:.3f} | {warm[key]:.4f} |")


if __name__ == "__main__":
    main()
