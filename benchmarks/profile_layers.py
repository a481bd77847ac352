"""Where a gradient's time goes, per kind of layer: npxai's numba backend beside PyTorch autograd.

    python benchmarks/profile_layers.py [--model resnet18] [--batch 1] [--method Gradient]

Models: torchvision's ``vgg16``, ``resnet18``, ``resnet50`` (random weights after
``torch.manual_seed(0)``, npxai's twin built by ``npxai.from_torch``) and ``mobilenet_v2``
(exported by torch's TorchScript exporter and imported by ``npxai.from_onnx``, batch norms folded
by the exporter, as bench_suite.py runs it), float32, 1x3x224x224 by default. ``--method LRP``
profiles ``npxai.compat.zennit``'s EpsilonPlusFlat instead (npxai alone).

npxai: every leaf's forward call (``Layer._run``, its input check included) and backward step
(``Layer._backward``) timed with ``time.perf_counter`` in a call after a warm-up call, grouped by
kind: convolutions by shape (``conv 1x1``, ``conv 3x3``, ``conv 3x3 stride 2``, ``depthwise``,
...), then the layer class; "between layers" is the rest of the call (the target, the output
seed, the walk itself). Each group's floor is its multiply-adds x 2 over the GEMM rate of this
run (bench_cpu.gemm_rate). torch: ``torch.profiler`` over one call after a warm-up, the
self CPU time of its ten costliest operator names. Medians of ``--repeats`` calls per side; the
two sides run one after the other in this process (a profile, not the suite's comparison).
"""

from __future__ import annotations

import argparse
import collections
import io
import statistics
import time
import warnings
from unittest import mock

import numpy as np
import torch
import torchvision
from bench_cpu import gemm_rate
from bench_suite import layer_macs
from timing import match_threads, median_time, torch_gradient

import npxai
from npxai.compat import zennit as nz
from npxai.module import Layer


def conv_kind(layer: npxai.layers.Conv2d) -> str:
    kh, kw = layer.kernel_size
    if layer.groups > 1 and layer.groups == layer.in_channels:
        kind = f"depthwise {kh}x{kw}"
    else:
        kind = f"conv {kh}x{kw}" + (" grouped" if layer.groups > 1 else "")
    return kind + (f" stride {layer.stride[0]}" if layer.stride != (1, 1) else "")


def kind(layer: Layer) -> str:
    return conv_kind(layer) if isinstance(layer, npxai.layers.Conv2d) else type(layer).__name__


def build(name: str) -> tuple[torch.nn.Module, npxai.Module]:
    torch.manual_seed(0)
    net = getattr(torchvision.models, name)().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if name != "mobilenet_v2":
        return net, npxai.from_torch(net)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), buffer, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return net, npxai.from_onnx(buffer.getvalue())


def profile_npxai(explain, repeats: int) -> tuple[dict, float]:
    """Median seconds per (kind, phase) and of the whole call, leaf calls timed by patching."""
    spent: dict = collections.defaultdict(float)
    run, backward = Layer._run, Layer._backward

    def timed_run(self, x, key, trace, backend):
        start = time.perf_counter()
        y = run(self, x, key, trace, backend)
        spent[kind(self), "forward"] += time.perf_counter() - start
        return y

    def timed_backward(self, trace, key, signal, step):
        start = time.perf_counter()
        g = backward(self, trace, key, signal, step)
        spent[kind(self), "backward"] += time.perf_counter() - start
        return g

    explain()
    samples, totals = collections.defaultdict(list), []
    with (
        mock.patch.object(Layer, "_run", timed_run),
        mock.patch.object(Layer, "_backward", timed_backward),
    ):
        for _ in range(repeats):
            spent.clear()
            start = time.perf_counter()
            explain()
            totals.append(time.perf_counter() - start)
            for key, seconds in spent.items():
                samples[key].append(seconds)
    return {key: statistics.median(v) for key, v in samples.items()}, statistics.median(totals)


def profile_torch(explain, repeats: int) -> tuple[list, float]:
    total = median_time(explain, repeats)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        explain()
    ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:10]
    return [(e.key, e.self_cpu_time_total / 1e6) for e in ops], total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18",
                        choices=["vgg16", "resnet18", "resnet50", "mobilenet_v2"])  # fmt: skip
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--method", default="Gradient", choices=["Gradient", "LRP"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(match_threads())
    rate = gemm_rate(3)
    net, model = build(args.model)
    x = np.random.default_rng(1).random((args.batch, 3, 224, 224), dtype=np.float32)
    target = net(torch.from_numpy(x)).argmax(1).numpy()
    if args.method == "LRP":
        analyzer = nz.lrp(model, nz.EpsilonPlusFlat(), backend="numba")
    else:
        analyzer = npxai.Gradient(model, backend="numba")
    per_kind, total = profile_npxai(lambda: analyzer(x, target), args.repeats)
    kind_macs: dict = collections.defaultdict(int)
    for record in model.trace(x, backend="numba").values():
        kind_macs[kind(record.layer)] += layer_macs(record)
    print(f"\n{args.model}, {args.method}, batch {args.batch}, float32; GEMM rate "
          f"{rate / 1e9:.0f} GFLOP/s; npxai call {total * 1e3:.1f} ms (median of "
          f"{args.repeats})\n\n| kind | forward (ms) | backward (ms) | floor of one map (ms) |"
          "\n|---|---|---|---|")  # fmt: skip
    kinds = sorted({k for k, _ in per_kind}, key=lambda k: -sum(per_kind.get((k, p), 0)
                   for p in ("forward", "backward")))  # fmt: skip
    for k in kinds:
        f, b = per_kind.get((k, "forward"), 0), per_kind.get((k, "backward"), 0)
        floor = 2 * kind_macs[k] / rate
        print(f"| {k} | {f * 1e3:.1f} | {b * 1e3:.1f} | {floor * 1e3:.1f} |")
    between = total - sum(per_kind.values())
    print(f"\nbetween layers (the call outside the leaves' calls): {between * 1e3:.1f} ms")
    if args.method == "LRP":
        return
    ops, torch_total = profile_torch(
        lambda: torch_gradient(net, torch.from_numpy(x), target), args.repeats
    )
    print(f"\nPyTorch autograd call {torch_total * 1e3:.1f} ms (median of {args.repeats}); "
          "its costliest operators (self CPU, one profiled call):\n\n| operator | ms |\n|---|---|")  # fmt: skip
    for name, seconds in ops:
        print(f"| {name} | {seconds * 1e3:.1f} |")


if __name__ == "__main__":
    main()
