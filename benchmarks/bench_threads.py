"""How npxai's products share the cores with its kernels, and what folding batch norms saves:
Gradient under three BLAS settings and with its batch norms unfolded.

    python benchmarks/bench_threads.py [--model resnet18 ...] [--batch 1] [--rounds 2]
        [--setting split ...]

torchvision's models (random weights after ``torch.manual_seed(0)``; npxai's twin from
``npxai.models`` with torchvision's state dict, MobileNetV2 through ONNX, as bench_suite.py runs
them; before issue 23's third session the twins came from ``npxai.from_torch``, whose ONNX
exporter folds the batch norms), float32, 1x3x224x224,
the input gradient of class 0. Each setting in a process of its own (warm-up, then the median of
9 calls), the processes alternating, ``--rounds`` rounds; the median over rounds and the range:

- ``split``: npxai as it runs (``kernels/cpu/blas.py``: products split between npxai's own
  threads, OpenBLAS on one thread each);
- ``OpenBLAS's threads``: the products handed to NumPy as they are (``blas.CONTROLLED`` off):
  OpenBLAS's own pool, whose threads spin between products while Numba's TBB threads run the
  kernels;
- ``OPENBLAS_NUM_THREADS=1``: every product on one thread;
- ``batch norms unfolded``: as ``split``, but through the model as given, every batch norm a
  pass of its own each way (the gradient family otherwise runs through
  ``npxai.lrp.canonize.folded``, the batch norms folded into the convolutions before them;
  torchvision's VGG16 has none, and the ONNX exporter folds MobileNetV2's itself);

beside PyTorch autograd with as many threads as Numba (``--setting`` picks some of them).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import warnings

SETTINGS = {
    "split": {},
    "OpenBLAS's threads": {"NPXAI_BENCH_UNCONTROLLED": "1"},
    "OPENBLAS_NUM_THREADS=1": {"OPENBLAS_NUM_THREADS": "1"},
    "batch norms unfolded": {"NPXAI_BENCH_UNFOLDED": "1"},
    "PyTorch": {"NPXAI_BENCH_TORCH": "1"},
}
CALLS = 9


def worker(name: str, batch: int) -> None:
    """Print the median seconds of CALLS calls of this process's setting (see SETTINGS)."""
    import numpy as np
    import torch
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = np.random.default_rng(1).random((batch, 3, 224, 224), dtype=np.float32)
    from timing import median_time

    if os.environ.get("NPXAI_BENCH_TORCH"):
        from timing import match_threads, torch_gradient

        match_threads()
        target = np.zeros(batch, int)
        explain = lambda: torch_gradient(net, torch.from_numpy(x), target)  # noqa: E731
    else:
        from npxai.kernels.cpu import blas

        import npxai

        blas.CONTROLLED = not os.environ.get("NPXAI_BENCH_UNCONTROLLED")
        if os.environ.get("NPXAI_BENCH_UNFOLDED"):
            sys.modules["npxai.analyzers.base"].folded = lambda model, dtype: model
        if name == "mobilenet_v2":
            buffer = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), buffer, dynamo=False,
                                  input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
            model = npxai.from_onnx(buffer.getvalue())
        else:  # npxai's twin, which has the batch norms (from_torch's ONNX exporter folds them)
            model = getattr(npxai.models, name)()
            model.load_state_dict({k: v.numpy() for k, v in net.state_dict().items()})
        gradient = npxai.Gradient(model, backend="numba")
        explain = lambda: gradient(x, 0)  # noqa: E731
    explain()  # and median_time's own warm-up call
    print(median_time(explain, CALLS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append",
                        choices=["vgg16", "resnet18", "resnet50", "mobilenet_v2"])  # fmt: skip
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--setting", action="append", choices=list(SETTINGS))
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], int(args.worker[1]))
        return
    settings = {name: SETTINGS[name] for name in args.setting or SETTINGS}
    print(f"batch {args.batch}, float32, Gradient, median of {CALLS} calls per process; "
          f"medians over {args.rounds} rounds (range)\n\n| model | "
          + " | ".join(f"{s} (s)" for s in settings) + " |\n" + "|---" * (len(settings) + 1)
          + "|")  # fmt: skip
    for name in args.model or ["resnet18", "resnet50", "mobilenet_v2", "vgg16"]:
        seconds: dict[str, list[float]] = {setting: [] for setting in settings}
        for _ in range(args.rounds):
            for setting, env in settings.items():
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", name, str(args.batch)],
                    env=dict(os.environ, **env), capture_output=True, text=True, check=True,
                )  # fmt: skip
                seconds[setting].append(float(out.stdout.split()[-1]))
        cells = [f"{statistics.median(v):.4f} ({min(v):.4f}-{max(v):.4f})"
                 for v in seconds.values()]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
