"""Every analyzer of npxai (numba backend) beside its peer, each library timed in a process of its
own: time with its spread, floor, peak memory, agreement.

    python benchmarks/bench_suite.py [--rounds 2] [--calls 9] [--quick] [--only TEXT ...]

One command, one run: about 55 minutes on a quiet 2-core machine, estimated, not measured (51
rows, 204 processes of some 4 s each to start, load and warm up, plus their calls at the per-call
times of the README's last table; the batch-8 rows take more than half of it). The rows, named
"model input method" (``--only TEXT``, repeatable, keeps the rows whose name contains one of the
texts, e.g. "VGG16 8x3x224x224 LRP EpsilonPlus", "(ONNX)", "cold start"):

- VGG16 at 1x3x224x224 and 8x3x224x224: Gradient, InputTimesGradient, LRP with each of Zennit's
  presets EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat and
  EpsilonGammaBox(0, 1), GradCAM; IntegratedGradients and SmoothGrad (n = 50) at batch 1 only
  (at batch 8 one call takes about 150 s per library, some 10 minutes a row over two rounds);
- ResNet18 at batch 1 and 8: Gradient, InputTimesGradient, LRP EpsilonPlusFlat;
- ResNet50 at batch 1 and 8: Gradient, InputTimesGradient, the five LRP presets;
  IntegratedGradients and SmoothGrad at batch 1;
- MobileNetV2 (ONNX) at batch 1 and 8: Gradient, InputTimesGradient, LRP EpsilonPlusFlat;
- DenseNet121 (ONNX) at batch 1: Gradient;
- the small CNN of bench_cpu.py at 1x1x28x28 and 256x1x28x28: Gradient, LRP EpsilonPlusFlat
  (per-call overhead);
- cold start.

``--quick`` runs the batch-1 rows at 1x3x64x64 (the small CNN at 1x1x28x28), one round of at
most 2 timed calls: a check of the script.

Same computation. The torch models are torchvision's (and bench_cpu.small_cnn), random
initialisation after ``torch.manual_seed(0)``, in evaluation mode. The main process builds each
once and writes it to a temporary folder: the pickled module (``torch.save(net)``), which the
peer's process loads, and for npxai either the state dict, which npxai reads with its own loader
(``npxai.load``, no torch) into its twin (``npxai.models.vgg16``, ``resnet18``, ``resnet50``, with
torchvision's keys; ``lenet()`` for the small CNN), or, for the rows marked (ONNX), the model
exported by torch's TorchScript exporter (``torch.onnx.export(..., dynamo=False)``, 224 pixels, a
free batch axis) and imported by ``npxai.from_onnx`` as an ``npxai.Graph`` (the exporter folds
batch norms into the convolutions, which the gradient does not see). Per model and input it
writes the input, uniform in [0, 1) (NumPy's ``default_rng(1)``, float32), and torch's arg-max,
which every method explains. The peers:

- LRP: Zennit 0.5.1 (``zennit.attribution.Gradient`` with the preset and a one-hot output
  relevance; on the ResNets with ``zennit.torchvision.ResNetCanonizer``, on MobileNetV2 with
  ``zennit.canonizers.SequentialMergeBatchNorm``) beside ``npxai.compat.zennit.lrp`` with the
  preset's twin, which canonizes as Zennit's canonizers do (as bench_lrp.py). On MobileNetV2 the
  two do not compute the same: torchvision's MobileNetV2 adds its residuals and averages its last
  feature map with torch functions, not modules, so that Zennit hooks nothing there and the
  gradient passes (each summand gets the whole relevance), while npxai's imported graph has Add
  and AdaptiveAvgPool2d layers, which take Zennit's Norm rule (the relevance split by the
  summands' shares); and Zennit's folded batch norms still divide by ``sqrt(1 + eps)`` where the
  exporter folds exactly. So that row's difference column is no correctness check (†): the two
  differ by 1.0 (relative), and by 7.5e-4 in float64 at 1x3x64x64 once npxai's composite gives
  those Add and AdaptiveAvgPool2d layers ``GradientRule`` instead (the batch norms' remnant).
- Gradient, InputTimesGradient: PyTorch autograd (timing.torch_gradient, times the input).
- IntegratedGradients: Captum 0.9.0's IntegratedGradients with its default quadrature,
  Gauss-Legendre, whose points and weights are npxai's ``method="gauss_legendre"``; baseline 0;
  both run the path points 32 rows per pass (npxai's ``batch_size``, Captum's
  ``internal_batch_size``).
- SmoothGrad: Captum's NoiseTunnel(Saliency(abs=False)), ``nt_type="smoothgrad"``, 50 samples, 32
  rows per pass (``nt_samples_batch_size``), as npxai. npxai's standard deviation is ``0.1 (max x
  - min x)`` per sample; Captum takes one absolute value, the mean of npxai's (computed in the
  main process; for these inputs the samples' values differ by less than 1e-5 relative). The
  noise comes from different generators (NumPy's, torch's), so the two results differ by sampling
  noise: the difference column is no correctness check in this row (†).
- GradCAM: Captum's LayerGradCam(relu_attributions=True) on layer ``features.29``, VGG16's last
  ReLU, the layer npxai's GradCAM is given.

Time. Per row, ``--rounds`` rounds (default 2), each running npxai's process and then the
peer's (A B A B): in one process the libraries' thread pools slow each other on a small machine,
and a user runs one library at a time (../shared/notes/benchmarking.md). Each is a fresh
interpreter, ``python benchmarks/bench_suite.py --worker JOB.json`` (a subprocess, not a fork):
npxai's imports NumPy and npxai only (this module imports nothing else at its top; the process
checks at its end that torch is not in ``sys.modules``), the peer's torch and Zennit or Captum (no
Numba: checked alike), with ``torch.set_num_threads`` given Numba's thread count in the main
process (timing.match_threads). It loads its model, input and targets, resets its resident-memory
high-water mark, makes the analyzer or attributor, warms up on a small input (the first sample's
32x32 corner, 28x28 for the small CNN) and with one untimed call on the full input, then times
calls on the full input: up to ``--calls`` (default 9), ending earlier once at least 3 calls sum to
over 20 s. If the untimed call took over 10 s, it is the only measurement (‡ in the calls column;
IntegratedGradients and SmoothGrad on VGG16 take 15-20 s a call). A library's time is the median
over rounds of its round medians (the median of one process's timed calls), with their range in
brackets; npxai / peer is the median of the rounds' ratios (npxai's round median over the peer's
in the same round), with their range.

Peak memory. The largest over rounds of the process's peak resident memory from the reset on
(``VmHWM`` in ``/proc/self/status``, which ``/proc/self/clear_refs`` resets) and, in brackets, its
increase over the process's resident memory at the reset (interpreter, library, model, input).
Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries the parent's peak across fork and exec
into it, and the reset does not lower it (every process of a small-CNN row showed the main
process's 788 MB). The increase includes what the analyzer holds (``npxai.compat.zennit.lrp``
canonizes a copy of the model, while Zennit hooks the torch model in place) and what the warm-up
loads (Numba's kernels, torch's).

Floor. The multiply-adds the method needs x 2 FLOP over the GEMM rate measured in this run (the
faster of NumPy's and torch's 2048^3 float32 matmul, bench_cpu.gemm_rate). The multiply-adds are
counted from each layer's shapes (a trace of the first sample of npxai's model, built as its
process builds it, times the batch): a convolution's forward map costs N C_out H_out W_out
(C_in / groups) kh kw, a linear layer's N in out, and its transposed map (input gradient,
relevance backward) the same; pooling, batch norm, activations and residual sums count 0. Per
method:

- Gradient, InputTimesGradient: the forward pass and one transposed map per layer, the first
  layer's included (the input gradient is needed).
- IntegratedGradients, SmoothGrad: 50 gradients (forward and transposed maps at each point or
  noisy copy) and one forward pass (npxai's, choosing the target on ``x``).
- GradCAM: the forward pass and the transposed maps of the layers after ``features.29``.
- LRP: the forward pass and, per dense layer, what its rule really needs, read from the rule's
  terms (``npxai.rules``): each group of terms costs one forward map per term (a modified layer's
  denominator) and one transposed map per term, except that a term on an all-zero input and
  without a bias adds nothing (the negative-input terms after a ReLU, and ZBox's lower bound when
  it is 0) and a group that is the unmodified layer alone takes its denominator from the forward
  pass. So Epsilon and Zero cost one transposed map; z+ and Flat (input-independent, counted) one
  forward and one transposed; alpha-beta and Zennit's two-group Gamma after a ReLU two of each
  (npxai runs them stacked: one of each at twice the outputs, the same count); ZBox three of each,
  two when ``low = 0`` (EpsilonGammaBox(0, 1) here). The "MACs" column prints the count.

The count is of direct convolutions. npxai computes its 3x3 stride-1 convolutions with 16 or more
channels (all of VGG16's but the first, most of the ResNets') by Winograd's F(2x2, 3x3), whose
GEMMs do 4/9 of those multiply-adds (kernels/cpu/winograd.py), so a ratio to this floor below 1 is
possible; the floor stays the issue's measure, the same for both libraries.

Agreement: max abs difference over max abs value of the peer's float32 attribution, both from the
last round's processes (bench_lrp.relative_difference). As in bench_cpu.py and bench_lrp.py, a
float32 gradient or relevance through VGG16's ReLUs and max pools may differ by percents between
correct implementations (rounding flips ReLU and max-pool decisions), more at batch 8; in float64
the tests check npxai's LRP against Zennit's and its gradient against torch's to 1e-10
(tests/test_lrp_zennit.py, test_models.py).

Cold start: ``python -c`` importing npxai, building the small CNN (npxai.models.lenet) and running
its first explanation (LRP EpsilonPlusFlat, batch 1, float32), timed from the process's start, in
a fresh process with ``NUMBA_CACHE_DIR`` an empty temporary folder, then again with the kernels
that run left there; the import of npxai alone is timed inside.

Targets (issue 23's; the "target" column, judged on the medians): Gradient and InputTimesGradient
at most 1.0x PyTorch autograd on VGG16, ResNet18, ResNet50 and MobileNetV2; IntegratedGradients
and SmoothGrad at most 0.8x Captum; every LRP preset at most 0.5x Zennit on VGG16 and ResNet50,
and at most 1.5x the floor on VGG16, 2.5x on ResNet50 and MobileNetV2; the peak memory of LRP,
IntegratedGradients and SmoothGrad at most the peer's; on the small CNN at batch 1, Gradient at
most 0.5x PyTorch; the first explanation of a cold start under 4 s with an empty kernel cache,
under 1 s with a warm one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The LRP presets (Zennit's names, and npxai.compat.zennit's) and their arguments; inputs lie in
#: [0, 1], the z-box bounds.
PRESETS = {
    "EpsilonPlus": (),
    "EpsilonPlusFlat": (),
    "EpsilonAlpha2Beta1": (),
    "EpsilonAlpha2Beta1Flat": (),
    "EpsilonGammaBox": (0.0, 1.0),
}
LRP_PRESETS = tuple(f"LRP {name}" for name in PRESETS)
SAMPLED = ("IntegratedGradients", "SmoothGrad")  # 50 gradients per sample
N = 50  # IntegratedGradients' path points, SmoothGrad's noisy copies
BATCH = 32  # rows per pass for both: npxai's default batch_size
NOISE_LEVEL = 0.1  # SmoothGrad's sigma over each sample's value range, npxai's default
GRADCAM_LAYER = "features.29"  # VGG16's last ReLU
LONG = 10.0  # seconds: an untimed full-size call this long is the only measurement
BUDGET = 20.0  # seconds: a process ends its timed calls once at least 3 sum to more
MIN_CALLS = 3


@dataclass(frozen=True)
class Model:
    torch: str  # torchvision.models' constructor, or "small_cnn" (bench_cpu's)
    npxai: str | None  # npxai.models' twin, reading the state dict; None: imported from ONNX
    canonizer: str | None  # Zennit's, for its composites: "ResNetCanonizer", ...
    tiny: int  # side of the warm-up input


MODELS = {
    "VGG16": Model("vgg16", "vgg16", None, 32),
    "ResNet18": Model("resnet18", "resnet18", "ResNetCanonizer", 32),
    "ResNet50": Model("resnet50", "resnet50", "ResNetCanonizer", 32),
    "MobileNetV2 (ONNX)": Model("mobilenet_v2", None, "SequentialMergeBatchNorm", 32),
    "DenseNet121 (ONNX)": Model("densenet121", None, None, 32),
    "small CNN": Model("small_cnn", "lenet", None, 28),
}
GRADIENTS = ("Gradient", "InputTimesGradient")
CASES = [
    ("VGG16", (1, 3, 224, 224), (*GRADIENTS, *LRP_PRESETS, "GradCAM", *SAMPLED)),
    ("VGG16", (8, 3, 224, 224), (*GRADIENTS, *LRP_PRESETS, "GradCAM")),
    ("ResNet18", (1, 3, 224, 224), (*GRADIENTS, "LRP EpsilonPlusFlat")),
    ("ResNet18", (8, 3, 224, 224), (*GRADIENTS, "LRP EpsilonPlusFlat")),
    ("ResNet50", (1, 3, 224, 224), (*GRADIENTS, *LRP_PRESETS, *SAMPLED)),
    ("ResNet50", (8, 3, 224, 224), (*GRADIENTS, *LRP_PRESETS)),
    ("MobileNetV2 (ONNX)", (1, 3, 224, 224), (*GRADIENTS, "LRP EpsilonPlusFlat")),
    ("MobileNetV2 (ONNX)", (8, 3, 224, 224), (*GRADIENTS, "LRP EpsilonPlusFlat")),
    ("DenseNet121 (ONNX)", (1, 3, 224, 224), ("Gradient",)),
    ("small CNN", (1, 1, 28, 28), ("Gradient", "LRP EpsilonPlusFlat")),
    ("small CNN", (256, 1, 28, 28), ("Gradient", "LRP EpsilonPlusFlat")),
]
QUICK_CASES = [
    (name, shape[:2] + (64, 64) if shape[2] > 64 else shape, methods)
    for name, shape, methods in CASES
    if shape[0] == 1
]
LIBRARIES = ("npxai", "peer")

#: An explanation as a function of the input and the targets, returning a float32 array.
Explain = Callable[[np.ndarray, np.ndarray], np.ndarray]


def peer_name(method: str) -> str:
    if method.startswith("LRP "):
        return "Zennit"
    return "PyTorch" if method in GRADIENTS else "Captum"


# The main process: the files, the multiply-adds, the rows.


def write_model(name: str, folder: Path):
    """Build the torch model and write it for both libraries (see the docstring); the model."""
    import torch
    import torchvision
    from bench_cpu import small_cnn

    spec = MODELS[name]
    torch.manual_seed(0)
    net = (small_cnn if spec.torch == "small_cnn" else getattr(torchvision.models, spec.torch))()
    net.eval().requires_grad_(False)
    torch.save(net, folder / f"{spec.torch}.torch.pt")
    if spec.npxai is not None:
        torch.save(net.state_dict(), folder / f"{spec.torch}.pt")
    else:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation notes
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), folder / f"{spec.torch}.onnx",
                              dynamo=False, input_names=["x"],
                              dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return net


def write_case(net, shape: tuple, folder: Path, case: str) -> np.ndarray:
    """Write the input and torch's arg-max for it; the input."""
    import torch

    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    with torch.no_grad():
        target = net(torch.from_numpy(x)).argmax(1).numpy()
    np.save(folder / f"{case}.x.npy", x)
    np.save(folder / f"{case}.target.npy", target)
    return x


def layer_macs(record) -> int:
    """Multiply-adds of a convolution's or linear layer's forward (or transposed) map; else 0."""
    import npxai

    layer, y = record.layer, record.output
    if isinstance(layer, npxai.layers.Conv2d):
        kh, kw = layer.kernel_size
        return y.size * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, npxai.layers.Linear):
        return y.size * layer.in_features
    return 0


def lrp_maps(rule, record) -> int:
    """Forward and transposed maps that ``rule`` needs on a dense layer (see the docstring)."""
    from npxai.rules import LinearRule, Term

    if not isinstance(rule, LinearRule) or not layer_macs(record):
        return 0
    maps = 0
    for group in rule.groups():
        terms = [term for term in group.terms if not vanishes(term, record)]
        maps += len(terms) if terms == [Term()] else 2 * len(terms)
    return maps


def vanishes(term, record) -> bool:
    """Whether the term adds exactly 0: an all-zero input and no bias (npxai skips it)."""
    no_bias = term.bias is None or record.layer.bias is None
    return no_bias and not np.any(term.input(record.input))


def row_macs(model, x: np.ndarray, method: str) -> int:
    """The multiply-adds ``method`` needs on ``x`` (its first sample's, times the batch)."""
    trace = model.trace(x[:1], backend="numba")
    per_layer = {key: layer_macs(record) for key, record in trace.items()}
    forward = sum(per_layer.values())
    if method in GRADIENTS:
        once = 2 * forward
    elif method in SAMPLED:
        once = N * 2 * forward + forward
    elif method == "GradCAM":
        keys = list(trace)
        once = forward + sum(per_layer[k] for k in keys[keys.index(GRADCAM_LAYER) + 1 :])
    else:
        rules = npxai_preset(method).assign(model)
        once = forward + sum(
            lrp_maps(rules[key], record) * per_layer[key] for key, record in trace.items()
        )
    return len(x) * once


def run_worker(job: dict, folder: Path) -> dict:
    """One worker process (``--worker``) for ``job``; its result."""
    path = folder / f"{job['out']}.job.json"
    path.write_text(json.dumps(job))
    done = subprocess.run(
        [sys.executable, __file__, "--worker", str(path)], capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"worker {job} failed:\n{done.stderr}")
    return json.loads((folder / f"{job['out']}.json").read_text())


def run_row(job: dict, folder: Path, rounds: int) -> dict[str, list[dict]]:
    """Each library's results, round by round, npxai's process then the peer's in each round."""
    results: dict[str, list[dict]] = {library: [] for library in LIBRARIES}
    for _ in range(rounds):
        for library in LIBRARIES:
            out = f"{job['case']} {job['method']} {library}"
            results[library].append(run_worker(job | {"library": library, "out": out}, folder))
    return results


def spread(values: list[float], digits: str) -> str:
    """The median and, in brackets, the range."""
    return f"{statistics.median(values):{digits}} ({min(values):{digits}}-{max(values):{digits}})"


def calls(results: list[dict]) -> str:
    """Timed calls per process: a number, a range over rounds, or 1‡ (the untimed call alone)."""
    if any(r["untimed_only"] for r in results):
        return "1‡"
    counts = [len(r["times"]) for r in results]
    return str(counts[0]) if min(counts) == max(counts) else f"{min(counts)}-{max(counts)}"


def verdict(label: str, value: float, limit: float) -> str:
    return f"{label} {value:.2f} {'<=' if value <= limit else '>'} {limit}: " + (
        "met" if value <= limit else "missed"
    )


def targets(name: str, shape: tuple, method: str, ratio: float, to_floor: float, more: float):
    """The row's targets, met or missed, with the measured value beside the limit (``more``:
    npxai's peak memory minus the peer's)."""
    checks = []
    peer = peer_name(method)
    if method in GRADIENTS and name in ("VGG16", "ResNet18", "ResNet50", "MobileNetV2 (ONNX)"):
        checks.append(verdict("x PyTorch", ratio, 1.0))
    if method == "Gradient" and name == "small CNN" and shape[0] == 1:
        checks.append(verdict("x PyTorch", ratio, 0.5))
    if method in SAMPLED:
        checks.append(verdict("x Captum", ratio, 0.8))
    if method.startswith("LRP ") and name in ("VGG16", "ResNet50"):
        checks.append(verdict("x Zennit", ratio, 0.5))
    floor_limit = {"VGG16": 1.5, "ResNet50": 2.5, "MobileNetV2 (ONNX)": 2.5}.get(name)
    if method.startswith("LRP ") and floor_limit is not None:
        checks.append(verdict("x floor", to_floor, floor_limit))
    if method.startswith("LRP ") or method in SAMPLED:
        checks.append(f"peak RSS {more:+.0f} MB vs {peer}: {'met' if more <= 0 else 'missed'}")
    return "; ".join(checks) or "-"


def table_row(name: str, shape: tuple, method: str, macs: int, rate: float, results, folder):
    """One row of the table from both libraries' results (see the docstring)."""
    from bench_lrp import relative_difference

    ours, theirs = ([statistics.median(r["times"]) for r in results[lib]] for lib in LIBRARIES)
    ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
    floor = 2 * macs / rate
    peaks = [max(results[lib], key=lambda r: r["peak"]) for lib in LIBRARIES]
    ours_last, theirs_last = (
        np.load(folder / f"{results[lib][-1]['out']}.npy") for lib in LIBRARIES
    )
    unchecked = method == "SmoothGrad" or (
        name.startswith("MobileNetV2") and method.startswith("LRP")
    )
    ratio, to_floor = statistics.median(ratios), statistics.median(ours) / floor
    cells = [
        name, "x".join(map(str, shape)), method, f"{macs:,}",
        " / ".join(calls(results[lib]) for lib in LIBRARIES),
        spread(ours, ".3g"), peer_name(method), spread(theirs, ".3g"), spread(ratios, ".2f"),
        f"{floor:.3g}", f"{to_floor:.2f}", f"{statistics.median(theirs) / floor:.2f}",
        *(f"{r['peak']:.0f} (+{r['peak'] - r['before']:.0f})" for r in peaks),
        f"{relative_difference(ours_last, theirs_last):.1e}" + (" †" if unchecked else ""),
        targets(name, shape, method, ratio, to_floor, peaks[0]["peak"] - peaks[1]["peak"]),
    ]  # fmt: skip
    return "| " + " | ".join(map(str, cells)) + " |"


COLD_JOB = r"""
import json, time
start = time.time()
import npxai
imported = time.time()
import numpy as np
model = npxai.models.lenet(num_classes=10, in_channels=1, input_size=28)
x = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
npxai.LRP(model, npxai.composites.EpsilonPlusFlat(), backend="numba")(x)
print(json.dumps({"start": start, "imported": imported, "explained": time.time()}))
"""


def cold_start(cache: str) -> dict:
    """Seconds of one fresh ``python -c COLD_JOB`` with ``NUMBA_CACHE_DIR=cache``."""
    launched = time.time()
    out = subprocess.run(
        [sys.executable, "-c", COLD_JOB],
        env=dict(os.environ, NUMBA_CACHE_DIR=cache),
        capture_output=True,
        text=True,
        check=True,
    )
    stamps = json.loads(out.stdout)
    return {
        "import npxai (inside the process)": stamps["imported"] - stamps["start"],
        "python start to npxai imported": stamps["imported"] - launched,
        "python start to first explanation done": stamps["explained"] - launched,
    }


def print_cold_start() -> None:
    with tempfile.TemporaryDirectory() as cache:
        empty, warm = cold_start(cache), cold_start(cache)
    print("\n| cold start (s) | empty kernel cache | warm kernel cache |\n|---|---|---|")
    for key in empty:
        print(f"| {key} | {empty[key]:.3f} | {warm[key]:.3f} |")
    first = "python start to first explanation done"
    print(
        "\ntargets: first explanation "
        + verdict("with an empty cache (s)", empty[first], 4.0)
        + "; "
        + verdict("with a warm cache (s)", warm[first], 1.0)
    )


def header(threads_and_versions: str, rate: float) -> str:
    import importlib.metadata

    threads, versions = threads_and_versions.split("\n")
    others = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("npxai", "torchvision", "zennit", "captum")
    )
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    return (
        f"{threads}; GEMM rate: {rate / 1e9:.0f} GFLOP/s; OPENBLAS_CORETYPE: {coretype}; "
        f"OPENBLAS_NUM_THREADS: {blas_threads}; {openblas_kernel()}\n"
        f"{versions}, {others}"
    )


def openblas_kernel() -> str:
    """The kernel NumPy's OpenBLAS runs (threadpoolctl's "architecture"): OPENBLAS_CORETYPE,
    which some machines set for older builds' sake, picks it (Haswell, AVX2, where this build
    would take SkylakeX, AVX-512, and multiply at about half the rate)."""
    try:
        import threadpoolctl
    except ImportError:
        return "OpenBLAS kernel: unknown (threadpoolctl not installed)"
    kernels = [i.get("architecture") for i in threadpoolctl.threadpool_info()
               if i.get("internal_api") == "openblas"]  # fmt: skip
    return f"OpenBLAS kernel: {', '.join(map(str, kernels)) or 'none'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, help="alternating process rounds (default 2)")
    parser.add_argument("--calls", type=int, help="most timed calls per process (default 9)")
    parser.add_argument("--quick", action="store_true", help="small inputs: checks the script")
    parser.add_argument(
        "--only", action="append", help="rows whose name contains this text (repeatable)"
    )
    parser.add_argument("--worker", metavar="JOB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(Path(args.worker).read_text()))
        return
    import torch
    from bench_cpu import gemm_rate
    from timing import match_threads

    from npxai.analyzers.smoothgrad import noise_scale

    rounds = args.rounds or (1 if args.quick else 2)
    most_calls = args.calls or (2 if args.quick else 9)

    def selected(row: str) -> bool:
        return not args.only or any(text in row for text in args.only)

    started = time.perf_counter()
    threads_and_versions = match_threads()
    rate = gemm_rate(1 if args.quick else 3)
    print(header(threads_and_versions, rate) + "\n")
    print(
        "| model | input | method | MACs | calls | npxai (s) | peer | peer (s) | npxai / peer "
        "| floor (s) | npxai / floor | peer / floor | peak RSS npxai (MB) | peak RSS peer (MB) "
        "| max rel. diff | target |\n" + "|---" * 16 + "|",
        flush=True,
    )
    any_row = False
    with tempfile.TemporaryDirectory() as name:
        folder, written = Path(name), None
        for model_name, shape, methods in QUICK_CASES if args.quick else CASES:
            case = f"{model_name} {'x'.join(map(str, shape))}"
            methods = [m for m in methods if selected(f"{case} {m}")]
            if not methods:
                continue
            if written != model_name:
                net, written = write_model(model_name, folder), model_name
            x = write_case(net, shape, folder, case)
            model = npxai_model(model_name, folder)
            job = {
                "model": model_name, "case": case, "folder": str(folder), "calls": most_calls,
                "threads": torch.get_num_threads(),
                "stdev": float(noise_scale(x, NOISE_LEVEL).mean()),  # SmoothGrad's, for Captum
            }  # fmt: skip
            for method in methods:
                results = run_row(job | {"method": method}, folder, rounds)
                macs = row_macs(model, x, method)
                print(table_row(model_name, shape, method, macs, rate, results, folder), flush=True)
                any_row = True
    if any_row:
        print(
            "\ncalls: timed calls per process, npxai / peer; ‡: the untimed full-size call took "
            f"over {LONG:.0f} s and is the only measurement.\n"
            "†: different computations (sampling noise, or MobileNetV2's sums): no correctness "
            "check.\n"
            "peak RSS: of the process, from the reset of its high-water mark (after loading the "
            "model and the input) on; (+N): over its resident memory at the reset."
        )
    if selected("cold start"):
        print_cold_start()
    print(f"\nrun time: {time.perf_counter() - started:.0f} s")


# The worker process: one library, one row.


def status_mb(field: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``, ``VmHWM``: kB) in MB."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024


def resident_mb() -> float:
    """This process's resident memory now, its peak (high-water mark, ``VmHWM``) reset to it."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_mb("VmRSS")


def npxai_model(name: str, folder: Path):
    """npxai's model of ``MODELS[name]``, read from the files of write_model."""
    import npxai

    spec = MODELS[name]
    if spec.npxai is None:
        return npxai.from_onnx(folder / f"{spec.torch}.onnx")
    model = getattr(npxai.models, spec.npxai)()
    model.load_state_dict(npxai.load(folder / f"{spec.torch}.pt"))
    return model


def npxai_preset(method: str):
    """npxai.compat.zennit's twin of the LRP row's preset."""
    from npxai.compat import zennit as nz

    preset = method.removeprefix("LRP ")
    return getattr(nz, preset)(*PRESETS[preset])


def npxai_explain(method: str, model) -> Explain:
    import npxai
    from npxai.compat import zennit as nz

    if method.startswith("LRP "):
        analyzer = nz.lrp(model, npxai_preset(method), backend="numba")
    elif method == "IntegratedGradients":
        analyzer = npxai.IntegratedGradients(
            model, n=N, method="gauss_legendre", batch_size=BATCH, backend="numba"
        )
    elif method == "SmoothGrad":
        analyzer = npxai.SmoothGrad(
            model, n=N, noise_level=NOISE_LEVEL, seed=0, batch_size=BATCH, backend="numba"
        )
    elif method == "GradCAM":
        analyzer = npxai.GradCAM(model, layer=GRADCAM_LAYER, backend="numba")
    else:
        analyzer = getattr(npxai, method)(model, backend="numba")
    return lambda x, t: analyzer(x, t).attribution


def peer_explain(job: dict, net, stack: ExitStack) -> Explain:
    """The peer's explanation of the row (see the docstring); Zennit's hooks stay on ``net``
    until ``stack`` closes."""
    import torch
    from timing import torch_gradient

    method = job["method"]
    if method.startswith("LRP "):
        from zennit import canonizers, composites, torchvision
        from zennit.attribution import Gradient

        canonizer = {
            None: None,
            "ResNetCanonizer": torchvision.ResNetCanonizer,
            "SequentialMergeBatchNorm": canonizers.SequentialMergeBatchNorm,
        }[MODELS[job["model"]].canonizer]
        preset = method.removeprefix("LRP ")
        composite = getattr(composites, preset)(
            *PRESETS[preset], canonizers=None if canonizer is None else [canonizer()]
        )
        attributor = stack.enter_context(Gradient(model=net, composite=composite))

        def one_hot(t: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
            return lambda y: torch.nn.functional.one_hot(torch.from_numpy(t), y.shape[1]).to(
                y.dtype
            )

        return lambda x, t: attributor(torch.tensor(x, requires_grad=True), one_hot(t))[1].numpy()
    if method == "Gradient":
        return lambda x, t: torch_gradient(net, torch.from_numpy(x), t).numpy()
    if method == "InputTimesGradient":
        return lambda x, t: x * torch_gradient(net, torch.from_numpy(x), t).numpy()
    import captum.attr

    # Captum notes every input it sets requires_grad on: at each call.
    warnings.filterwarnings("ignore", "Input Tensor .* did not already require gradients")
    if method == "IntegratedGradients":
        attribution = captum.attr.IntegratedGradients(net)
        kwargs = {"baselines": 0.0, "n_steps": N, "method": "gausslegendre",
                  "internal_batch_size": BATCH}  # fmt: skip
    elif method == "SmoothGrad":
        attribution = captum.attr.NoiseTunnel(captum.attr.Saliency(net))
        kwargs = {"nt_type": "smoothgrad", "nt_samples": N, "stdevs": job["stdev"], "abs": False}
    else:
        attribution = captum.attr.LayerGradCam(net, net.get_submodule(GRADCAM_LAYER))
        kwargs = {"relu_attributions": True}

    def explain(x: np.ndarray, t: np.ndarray) -> np.ndarray:
        rows = {"nt_samples_batch_size": max(1, BATCH // len(x))} if method == "SmoothGrad" else {}
        xt, tt = torch.from_numpy(x), torch.from_numpy(t)
        return attribution.attribute(xt, target=tt, **kwargs, **rows).detach().numpy()

    return explain


def worker(job: dict) -> None:
    """Load, reset the memory high-water mark, warm up, time the calls (see the docstring); write
    the result (``OUT.json``) and the last attribution (``OUT.npy``)."""
    folder, library = Path(job["folder"]), job["library"]
    x = np.load(folder / f"{job['case']}.x.npy")
    target = np.load(folder / f"{job['case']}.target.npy")
    if library == "npxai":
        model = npxai_model(job["model"], folder)
    else:
        import torch

        torch.set_num_threads(job["threads"])
        net = torch.load(folder / f"{MODELS[job['model']].torch}.torch.pt", weights_only=False)
    with ExitStack() as stack:
        before = resident_mb()
        if library == "npxai":
            explain = npxai_explain(job["method"], model)
        else:
            explain = peer_explain(job, net, stack)
        side = MODELS[job["model"]].tiny
        explain(np.ascontiguousarray(x[:1, :, :side, :side]), target[:1])
        start = time.perf_counter()
        attribution = explain(x, target)
        times = [time.perf_counter() - start]
        untimed_only = times[0] > LONG
        if not untimed_only:
            times = []
            while len(times) < job["calls"] and (len(times) < MIN_CALLS or sum(times) <= BUDGET):
                start = time.perf_counter()
                attribution = explain(x, target)
                times.append(time.perf_counter() - start)
    unexpected = {"npxai": "torch", "peer": "numba"}[library]
    if unexpected in sys.modules:
        raise RuntimeError(f"the {library} worker imported {unexpected}")
    np.save(folder / f"{job['out']}.npy", attribution)
    result = {"out": job["out"], "times": times, "untimed_only": untimed_only,
              "peak": status_mb("VmHWM"), "before": before}  # fmt: skip
    (folder / f"{job['out']}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
