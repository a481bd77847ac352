"""Every analyzer of npxai (numba backend) beside its peer: time, floor, peak memory, agreement.

    python benchmarks/bench_suite.py [--repeats 3] [--quick] [--only TEXT ...]

One command, one run. The rows: VGG16 (torchvision's, random initialisation after
``torch.manual_seed(0)``) at 1x3x224x224 and 8x3x224x224 with Gradient, InputTimesGradient, LRP
with each of Zennit's presets EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1,
EpsilonAlpha2Beta1Flat and EpsilonGammaBox(0, 1), IntegratedGradients and SmoothGrad (n = 50) and
GradCAM; ResNet18 at 1x3x224x224 with LRP EpsilonPlusFlat and Gradient; ResNet50, MobileNetV2
and DenseNet121 imported from ONNX (``torch.onnx.export``, TorchScript's exporter, then
``npxai.from_onnx``: npxai.Graph models) at 1x3x224x224 with Gradient, and ResNet50 with LRP
EpsilonPlusFlat (Zennit has canonizers for ResNets only); the small CNN of
bench_cpu.py at batch 1 and 256 with Gradient and LRP EpsilonPlusFlat (per-call overhead).
``--quick`` runs VGG16, ResNet18 and the ONNX models at 1x3x64x64 and the small CNN, one repeat, a check of the
script; ``--only TEXT`` keeps the rows whose name ("VGG16 8x3x224x224 LRP EpsilonPlus", "cold
start") contains one of the texts.

Same computation. npxai's models are converted from the torch ones (npxai.from_torch, or through
ONNX for the rows that say so; the exporter folds batch norms into convolutions, which LRP's
canonizers do too and which the gradient does not see); inputs are
uniform in [0, 1) (NumPy's ``default_rng(1)``), float32; every method explains torch's arg-max.
The peers:

- LRP: Zennit 0.5.1 (``zennit.attribution.Gradient`` with the preset and a one-hot output
  relevance; on ResNet18 with ``zennit.torchvision.ResNetCanonizer``) beside
  ``npxai.compat.zennit``'s twin of the preset (which canonizes as Zennit does), as bench_lrp.py.
- Gradient, InputTimesGradient: PyTorch autograd (bench_cpu.torch_gradient, times the input);
  Captum's Saliency(abs=False) and InputXGradient, which are that autograd call plus a little, are
  timed too (timing.median_time, the row's repeats) and shown beside the peer.
- IntegratedGradients: Captum's IntegratedGradients with its default quadrature, Gauss-Legendre,
  whose points and weights are npxai's ``method="gauss_legendre"``; baseline 0; both run the
  path points 32 rows per pass (npxai's ``batch_size``, Captum's ``internal_batch_size``).
- SmoothGrad: Captum's NoiseTunnel(Saliency(abs=False)), ``nt_type="smoothgrad"``, 50 samples,
  ``nt_samples_batch_size`` 32 // batch (32 rows per pass, as npxai). npxai's standard deviation is
  ``0.1 (max x - min x)`` per sample; Captum takes one absolute value, the mean of npxai's (for
  these inputs the samples' values differ by less than 1e-5 relative). The noise itself comes from
  different generators (NumPy's, torch's), so the two results differ by sampling noise: the
  difference column is no correctness check in this row.
- GradCAM: Captum's LayerGradCam(relu_attributions=True) on layer ``features.29``, VGG16's last
  ReLU, the layer npxai's GradCAM is given.

Time. torch gets as many threads as Numba (timing.match_threads). Every row first runs both on a
small input (warm-up: kernels loaded, hooks exercised), then times one call of each at full size
after a pause; if either took over 10 s that pair is the measurement (1 repeat), otherwise the
libraries alternate for ``--repeats`` more pairs (timing.paired_medians, with its untimed wake-up
calls, for calls under 1 s; timing.paired_long_medians, without them, for longer ones) and the
medians are printed. This is in the main process, the two libraries alternating in one run, except
for IntegratedGradients and SmoothGrad: each of their calls takes from tens of seconds to minutes
(50 gradients per sample), so they are timed once in the processes that measure their memory
(below, after the same warm-up) rather than a second time here; their "reps" column says so.

Peak memory. Each (row, library) runs in a process of its own. Per model and input, one fresh
process (from multiprocessing's forkserver, whose server has only imported the libraries) builds
the models and the input, on one torch thread so that no thread pool runs when it forks, and forks
one process per row and library. That process resets its resident-memory high-water mark to the
current value (``/proc/self/clear_refs``), makes the analyzer or attributor, warms up on the small
input and explains the full input once. The table shows its peak resident memory from the reset on
(``getrusage(RUSAGE_SELF).ru_maxrss``) and, in brackets, the increase over its resident memory at
the reset (libraries, both models, input: listed under the table). Without the reset, building the
models (npxai.from_torch compares the weights) peaks higher than small explanations do. The
increase includes what the analyzer holds (``npxai.compat.zennit.lrp`` canonizes a copy of the
model, while Zennit hooks the torch model in place) and the shared-library pages the explanation
touches (a forked process counts them once it touches them again).

Floor. The multiply-adds the method needs x 2 FLOP over the GEMM rate measured in this run (the
faster of NumPy's and torch's 2048^3 float32 matmul, bench_cpu.gemm_rate). The multiply-adds are
counted from each layer's shapes (a trace of the first sample, times the batch): a convolution's
forward map costs N C_out H_out W_out (C_in / groups) kh kw, a linear layer's N in out, and its
transposed map (input gradient, relevance backward) the same; pooling, batch norm, activations and
residual sums count 0. Per method:

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
channels (all of VGG16's but the first, most of ResNet18's) by Winograd's F(2x2, 3x3), whose
GEMMs do 4/9 of those multiply-adds (kernels/cpu/winograd.py), so a ratio to this floor below 1 is
possible; the floor stays the issue's measure, the same for both libraries.

Agreement: max abs difference over max abs value of the peer's float32 attribution (both from the
memory processes). As in bench_cpu.py and bench_lrp.py, a float32 gradient or relevance through
VGG16's ReLUs and max pools may differ by percents between correct implementations (rounding flips
ReLU and max-pool decisions), more at batch 8; in float64 the tests check npxai's LRP against
Zennit's and its gradient against torch's to 1e-10 (tests/test_lrp_zennit.py, test_models.py).

Cold start: ``python -c`` importing npxai, building the small CNN (npxai.models.lenet, the twin of
bench_cpu's) and running its first explanation (LRP EpsilonPlusFlat, batch 1, float32), timed from
the process's start, in a fresh process with ``NUMBA_CACHE_DIR`` an empty temporary folder, then
again with the kernels that run left there; the import of npxai alone is timed inside.

Targets (the "target" column): LRP on VGG16: npxai <= 0.5x Zennit and <= 1.5x the floor; Gradient
and InputTimesGradient: <= 1.2x PyTorch autograd; on the ONNX models Gradient <= 1.5x PyTorch and
LRP <= 0.7x Zennit; IntegratedGradients and SmoothGrad: <= Captum;
every LRP row: peak memory <= Zennit's; cold start with a warm cache under 2 s.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import importlib.metadata
import io
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import captum.attr
import numpy as np
import torch
import torchvision
from bench_cpu import gemm_rate, small_cnn, torch_gradient
from bench_lrp import relative_difference
from timing import match_threads, median_time, paired_long_medians, paired_medians
from zennit import composites as Z
from zennit.attribution import Gradient as ZennitGradient
from zennit.torchvision import ResNetCanonizer

import npxai
from npxai.analyzers.smoothgrad import noise_scale
from npxai.compat import zennit as nz
from npxai.rules import LinearRule, Term

# Captum notes every input it sets requires_grad on (Saliency, InputXGradient): each call.
warnings.filterwarnings("ignore", "Input Tensor .* did not already require gradients")

#: Zennit's preset (taking its canonizers) and npxai.compat.zennit's twin; inputs lie in [0, 1].
PRESETS = {
    "EpsilonPlus": (Z.EpsilonPlus, nz.EpsilonPlus),
    "EpsilonPlusFlat": (Z.EpsilonPlusFlat, nz.EpsilonPlusFlat),
    "EpsilonAlpha2Beta1": (Z.EpsilonAlpha2Beta1, nz.EpsilonAlpha2Beta1),
    "EpsilonAlpha2Beta1Flat": (Z.EpsilonAlpha2Beta1Flat, nz.EpsilonAlpha2Beta1Flat),
    "EpsilonGammaBox": (
        functools.partial(Z.EpsilonGammaBox, 0.0, 1.0),
        functools.partial(nz.EpsilonGammaBox, 0.0, 1.0),
    ),
}
N = 50  # IntegratedGradients' path points, SmoothGrad's noisy copies
BATCH = 32  # rows per pass for both: npxai's default batch_size
NOISE_LEVEL = 0.1  # SmoothGrad's sigma over each sample's value range, npxai's default
GRADCAM_LAYER = "features.29"  # VGG16's last ReLU
OWN_PROCESS = ("IntegratedGradients", "SmoothGrad")  # timed in their memory processes
LONG = 10.0  # seconds: a call this long is timed once
SHORT = 1.0  # seconds: calls shorter than this get paired_medians' untimed wake-up calls
FORKSERVER = multiprocessing.get_context("forkserver")
FORK = multiprocessing.get_context("fork")


def through_onnx(net: torch.nn.Module) -> npxai.Graph:
    """``net`` exported by torch's TorchScript exporter (224 pixels, a free batch axis) and
    imported by npxai.from_onnx."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 224, 224),), buffer, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    return npxai.from_onnx(buffer.getvalue())


@dataclass(frozen=True)
class Model:
    build: Callable[[], torch.nn.Module]
    canonizers: Callable[[], list | None]  # Zennit's, for its composites
    tiny: int  # side of the warm-up input
    methods: tuple[str, ...]
    convert: Callable[[torch.nn.Module], npxai.Module] = npxai.from_torch


MODELS = {
    "VGG16": Model(
        torchvision.models.vgg16,
        lambda: None,
        32,
        ("Gradient", "InputTimesGradient", *(f"LRP {name}" for name in PRESETS))
        + OWN_PROCESS
        + ("GradCAM",),
    ),
    "ResNet18": Model(
        torchvision.models.resnet18,
        lambda: [ResNetCanonizer()],
        32,
        ("LRP EpsilonPlusFlat", "Gradient"),
    ),
    "ResNet50 (ONNX)": Model(
        torchvision.models.resnet50,
        lambda: [ResNetCanonizer()],
        32,
        ("Gradient", "LRP EpsilonPlusFlat"),
        through_onnx,
    ),  # fmt: skip
    "MobileNetV2 (ONNX)": Model(
        torchvision.models.mobilenet_v2, lambda: None, 32, ("Gradient",), through_onnx
    ),  # fmt: skip
    "DenseNet121 (ONNX)": Model(
        torchvision.models.densenet121, lambda: None, 32, ("Gradient",), through_onnx
    ),  # fmt: skip
    "small CNN": Model(small_cnn, lambda: None, 28, ("Gradient", "LRP EpsilonPlusFlat")),
}
CASES = [
    ("VGG16", (1, 3, 224, 224)),
    ("VGG16", (8, 3, 224, 224)),
    ("ResNet18", (1, 3, 224, 224)),
    ("ResNet50 (ONNX)", (1, 3, 224, 224)),
    ("MobileNetV2 (ONNX)", (1, 3, 224, 224)),
    ("DenseNet121 (ONNX)", (1, 3, 224, 224)),
    ("small CNN", (1, 1, 28, 28)),
    ("small CNN", (256, 1, 28, 28)),
]
QUICK_CASES = [
    ("VGG16", (1, 3, 64, 64)),
    ("ResNet18", (1, 3, 64, 64)),
    ("ResNet50 (ONNX)", (1, 3, 64, 64)),
    ("MobileNetV2 (ONNX)", (1, 3, 64, 64)),
    ("DenseNet121 (ONNX)", (1, 3, 64, 64)),
    ("small CNN", (1, 1, 28, 28)),
    ("small CNN", (256, 1, 28, 28)),
]

#: An explanation as a function of the input and the targets, returning a float32 array.
Explain = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Case:
    name: str
    net: torch.nn.Module
    model: npxai.Module
    x: np.ndarray
    target: np.ndarray

    def tiny(self) -> tuple[np.ndarray, np.ndarray]:
        """The warm-up input (the first sample's corner) and its target."""
        side = MODELS[self.name].tiny
        return np.ascontiguousarray(self.x[:1, :, :side, :side]), self.target[:1]


def build_case(name: str, shape: tuple, target: np.ndarray | None = None) -> Case:
    """The model (same weights in every process), its npxai twin, the input and torch's arg-max
    (computed unless given: the memory processes get it from the main one)."""
    torch.manual_seed(0)
    net = MODELS[name].build().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    if target is None:
        with torch.no_grad():
            target = net(torch.from_numpy(x)).argmax(1).numpy()
    return Case(name, net, MODELS[name].convert(net), x, target)


def from_analyzer(analyzer: npxai.Analyzer) -> Explain:
    return lambda x, t: analyzer(x, t).attribution


def from_captum(attribution, /, **kwargs) -> Explain:
    """A Captum attribution method's ``attribute`` as an Explain."""
    return lambda x, t: (
        attribution.attribute(torch.from_numpy(x), target=torch.from_numpy(t), **kwargs)
        .detach()
        .numpy()
    )


def zennit_lrp(case: Case, preset: str, stack: ExitStack) -> Explain:
    """Zennit's relevance at the input from the one-hot output relevance at the targets; the
    composite's hooks stay on the torch model until ``stack`` closes."""
    composite = PRESETS[preset][0](canonizers=MODELS[case.name].canonizers())
    attributor = stack.enter_context(ZennitGradient(model=case.net, composite=composite))
    return lambda x, t: attributor(torch.tensor(x, requires_grad=True), one_hot(t))[1].numpy()


def one_hot(t: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    """Zennit's output relevance, as a function of the output: 1 at each sample's target."""
    return lambda y: torch.nn.functional.one_hot(torch.from_numpy(t), y.shape[1]).to(y.dtype)


def captum_smoothgrad(net: torch.nn.Module) -> Explain:
    """NoiseTunnel(Saliency) with npxai's SmoothGrad's standard deviation (see the docstring)."""
    tunnel = captum.attr.NoiseTunnel(captum.attr.Saliency(net))

    def explain(x, t):
        return (
            tunnel.attribute(
                torch.from_numpy(x),
                nt_type="smoothgrad",
                nt_samples=N,
                nt_samples_batch_size=max(1, BATCH // len(x)),
                stdevs=float(noise_scale(x, NOISE_LEVEL).mean()),
                target=torch.from_numpy(t),
                abs=False,
            )
            .detach()
            .numpy()
        )

    return explain


def explainers(
    method: str, case: Case, stack: ExitStack
) -> tuple[Explain, Explain, str, Explain | None]:
    """npxai's explanation, the peer's, the peer's name, and Captum's twin of a PyTorch-autograd
    peer (``None`` for the others)."""
    net, model = case.net, case.model
    if method.startswith("LRP "):
        preset = method.removeprefix("LRP ")
        analyzer = nz.lrp(model, PRESETS[preset][1](), backend="numba")
        return from_analyzer(analyzer), zennit_lrp(case, preset, stack), "Zennit", None
    if method == "Gradient":
        return (
            from_analyzer(npxai.Gradient(model, backend="numba")),
            lambda x, t: torch_gradient(net, torch.from_numpy(x), t).numpy(),
            "PyTorch",
            from_captum(captum.attr.Saliency(net), abs=False),
        )
    if method == "InputTimesGradient":
        return (
            from_analyzer(npxai.InputTimesGradient(model, backend="numba")),
            lambda x, t: x * torch_gradient(net, torch.from_numpy(x), t).numpy(),
            "PyTorch",
            from_captum(captum.attr.InputXGradient(net)),
        )
    if method == "IntegratedGradients":
        analyzer = npxai.IntegratedGradients(
            model, n=N, method="gauss_legendre", batch_size=BATCH, backend="numba"
        )
        ig = from_captum(
            captum.attr.IntegratedGradients(net),
            baselines=0.0,
            n_steps=N,
            method="gausslegendre",
            internal_batch_size=BATCH,
        )
        return from_analyzer(analyzer), ig, "Captum", None
    if method == "SmoothGrad":
        analyzer = npxai.SmoothGrad(
            model, n=N, noise_level=NOISE_LEVEL, seed=0, batch_size=BATCH, backend="numba"
        )
        return from_analyzer(analyzer), captum_smoothgrad(net), "Captum", None
    if method == "GradCAM":
        cam = captum.attr.LayerGradCam(net, net.get_submodule(GRADCAM_LAYER))
        return (
            from_analyzer(npxai.GradCAM(model, layer=GRADCAM_LAYER, backend="numba")),
            from_captum(cam, relu_attributions=True),
            "Captum",
            None,
        )
    raise ValueError(f"unknown method {method!r}")


def layer_macs(record: npxai.Record) -> int:
    """Multiply-adds of a convolution's or linear layer's forward (or transposed) map; else 0."""
    layer, y = record.layer, record.output
    if isinstance(layer, npxai.layers.Conv2d):
        kh, kw = layer.kernel_size
        return y.size * (layer.in_channels // layer.groups) * kh * kw
    if isinstance(layer, npxai.layers.Linear):
        return y.size * layer.in_features
    return 0


def lrp_maps(rule: npxai.rules.Rule, record: npxai.Record) -> int:
    """Forward and transposed maps that ``rule`` needs on a dense layer (see the docstring)."""
    if not isinstance(rule, LinearRule) or not layer_macs(record):
        return 0
    maps = 0
    for group in rule.groups():
        terms = [term for term in group.terms if not vanishes(term, record)]
        maps += len(terms) if terms == [Term()] else 2 * len(terms)
    return maps


def vanishes(term: Term, record: npxai.Record) -> bool:
    """Whether the term adds exactly 0: an all-zero input and no bias (npxai skips it)."""
    no_bias = term.bias is None or record.layer.bias is None
    return no_bias and not np.any(term.input(record.input))


def row_macs(case: Case, method: str, trace: npxai.Trace) -> int:
    """The multiply-adds ``method`` needs on the case's input (``trace``: of its first sample)."""
    per_layer = {key: layer_macs(record) for key, record in trace.items()}
    forward = sum(per_layer.values())
    if method in ("Gradient", "InputTimesGradient"):
        once = 2 * forward
    elif method in OWN_PROCESS:
        once = N * 2 * forward + forward
    elif method == "GradCAM":
        keys = list(trace)
        once = forward + sum(per_layer[k] for k in keys[keys.index(GRADCAM_LAYER) + 1 :])
    else:
        rules = PRESETS[method.removeprefix("LRP ")][1]().assign(case.model)
        once = forward + sum(
            lrp_maps(rules[key], record) * per_layer[key] for key, record in trace.items()
        )
    return len(case.x) * once


def time_pair(ours: Callable, theirs: Callable, repeats: int) -> tuple[float, float, int]:
    """Median seconds of both and the repeats taken (see the docstring)."""
    first = paired_long_medians(ours, theirs, 1)
    if max(first) > LONG:
        return *first, 1
    pairing = paired_medians if max(first) < SHORT else paired_long_medians
    return *pairing(ours, theirs, repeats), repeats


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def resident_mb() -> float:
    """This process's resident memory now, its peak (high-water mark) reset to it."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return peak_rss_mb()


def measure(case: Case, method: str, library: str) -> dict:
    """In a process of its own: the resident memory with the models and the input in place, then
    the peak while ``library`` ("npxai" or "peer") makes its analyzer, warms up and explains the
    input once, in MB; the seconds of that call, and its attribution."""
    match_threads()
    before = resident_mb()
    with ExitStack() as stack:
        mine, peer, _, _ = explainers(method, case, stack)
        explain = mine if library == "npxai" else peer
        explain(*case.tiny())
        start = time.perf_counter()
        attribution = explain(case.x, case.target)
        seconds = time.perf_counter() - start
    return {"before": before, "peak": peak_rss_mb(), "seconds": seconds, "attribution": attribution}


def measure_case(name: str, shape: tuple, target: np.ndarray, jobs: list[tuple]) -> list[dict]:
    """In a fresh process: build the case once, on one torch thread (so that no thread pool runs
    when this process forks), then ``measure`` each (method, library) job in a process forked
    from this one."""
    torch.set_num_threads(1)
    case = build_case(name, shape, target)
    return [in_forked_process(measure, case, *job) for job in jobs]


def in_forked_process(f: Callable, *args):
    """``f(*args)`` in a process forked from this one (the arguments are inherited, not sent)."""
    receive, send = FORK.Pipe(duplex=False)
    process = FORK.Process(target=send_result, args=(send, f, *args))
    process.start()
    send.close()
    result = receive.recv()
    process.join()
    if isinstance(result, Exception):
        raise result
    return result


def send_result(connection, f: Callable, *args) -> None:
    try:
        result = f(*args)
    except Exception:
        result = RuntimeError(traceback.format_exc())
    connection.send(result)


def time_row(case: Case, method: str, repeats: int) -> dict:
    """In this process, after the warm-up: both libraries' median seconds, alternating, the
    repeats taken, and the peer's name (with Captum's time beside a PyTorch-autograd peer). For
    the methods timed in their own processes only the warm-up, which fills the on-disk kernel
    cache (the processes then load the kernels rather than compile them), and the peer's name."""
    with ExitStack() as stack:
        mine, peer, peer_name, captum_twin = explainers(method, case, stack)
        for explain in (mine, peer):
            explain(*case.tiny())
        if method in OWN_PROCESS:
            return {"peer": peer_name}
        t_ours, t_theirs, reps = time_pair(
            lambda: mine(case.x, case.target), lambda: peer(case.x, case.target), repeats
        )
        if captum_twin is not None:
            seconds = median_time(lambda: captum_twin(case.x, case.target), reps)
            peer_name += f" (Captum {seconds:.3f} s)"
    return {"ours": t_ours, "theirs": t_theirs, "reps": reps, "peer": peer_name}


def verdict(label: str, value: float, limit: float) -> str:
    return f"{label} {value:.2f} {'<=' if value <= limit else '>'} {limit}: " + (
        "met" if value <= limit else "missed"
    )


def targets(case: Case, method: str, ratio: float, to_floor: float, more: float) -> str:
    """The row's targets, met or missed, with the measured value beside the limit (``more``:
    npxai's peak memory minus the peer's)."""
    checks = []
    imported = case.name.endswith("(ONNX)")
    if method.startswith("LRP") and case.name == "VGG16":
        checks += [verdict("x Zennit", ratio, 0.5), verdict("x floor", to_floor, 1.5)]
    if method.startswith("LRP") and imported:
        checks.append(verdict("x Zennit", ratio, 0.7))
    if method in ("Gradient", "InputTimesGradient"):
        checks.append(verdict("x PyTorch", ratio, 1.5 if imported else 1.2))
    if method in OWN_PROCESS:
        checks.append(verdict("x Captum", ratio, 1.0))
    if method.startswith("LRP"):
        checks.append(f"peak RSS {more:+.0f} MB vs Zennit: {'met' if more <= 0 else 'missed'}")
    return "; ".join(checks) or "-"


def table_row(case: Case, method: str, macs: int, timing: dict, rate: float, a, b) -> str:
    """One row, from the timing of this process and the measurements ``a`` (npxai) and ``b``
    (the peer) of the forked processes."""
    if method in OWN_PROCESS:
        timing = timing | {"ours": a["seconds"], "theirs": b["seconds"], "reps": "1, own process"}
    t_ours, t_theirs, floor = timing["ours"], timing["theirs"], 2 * macs / rate
    cells = [
        case.name, "x".join(map(str, case.x.shape)), method, f"{macs:,}", timing["reps"],
        f"{t_ours:.4f}", timing["peer"], f"{t_theirs:.4f}", f"{t_ours / t_theirs:.2f}",
        f"{floor:.4f}", f"{t_ours / floor:.2f}", f"{t_theirs / floor:.2f}",
        *(f"{r['peak']:.0f} (+{r['peak'] - r['before']:.0f})" for r in (a, b)),
        f"{relative_difference(a['attribution'], b['attribution']):.1e}"
        + (" †" if method == "SmoothGrad" else ""),
        targets(case, method, t_ours / t_theirs, t_ours / floor, a["peak"] - b["peak"]),
    ]  # fmt: skip
    return "| " + " | ".join(map(str, cells)) + " |"


def run_case(name: str, shape: tuple, methods: list, rate: float, repeats: int) -> float:
    """Print the rows of one model and input: first every timing in this process, then every
    measurement in the forked processes. Returns their resident memory before explaining."""
    case = build_case(name, shape)
    trace = case.model.trace(case.x[:1], backend="numba")
    timings = [time_row(case, method, repeats) for method in methods]
    jobs = [(method, library) for method in methods for library in ("npxai", "peer")]
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=FORKSERVER) as pool:
        results = pool.submit(measure_case, name, shape, case.target, jobs).result()
    for method, timing, a, b in zip(methods, timings, results[::2], results[1::2], strict=True):
        macs = row_macs(case, method, trace)
        print(table_row(case, method, macs, timing, rate, a, b), flush=True)
    return results[0]["before"]


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
    first = warm["python start to first explanation done"]
    met = "met" if first < 2 else "missed"
    print(f"\ntarget: first explanation with a warm cache {first:.2f} s, under 2 s: {met}")


def header(threads_and_versions: str, rate: float) -> str:
    threads, versions = threads_and_versions.split("\n")
    others = ", ".join(
        f"{name} {importlib.metadata.version(name)}"
        for name in ("npxai", "torchvision", "zennit", "captum")
    )
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    blas_threads = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    return (
        f"{threads}; GEMM rate: {rate / 1e9:.0f} GFLOP/s; OPENBLAS_CORETYPE: {coretype}; "
        f"OPENBLAS_NUM_THREADS: {blas_threads}\n"
        f"{versions}, {others}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, help="timed pairs per row (default 3, quick 1)")
    parser.add_argument("--quick", action="store_true", help="small inputs: checks the script")
    parser.add_argument(
        "--only", action="append", help="rows whose name contains this text (repeatable)"
    )
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)

    def selected(row: str) -> bool:
        return not args.only or any(text in row for text in args.only)

    FORKSERVER.set_forkserver_preload(["__main__"])
    started = time.perf_counter()
    threads_and_versions = match_threads()
    rate = gemm_rate(repeats)
    print(header(threads_and_versions, rate) + "\n")
    print(
        "| model | input | method | MACs | reps | npxai (s) | peer | peer (s) | npxai / peer "
        "| floor (s) | npxai / floor | peer / floor | peak RSS npxai (MB) | peak RSS peer (MB) "
        "| max rel. diff | target |\n" + "|---" * 16 + "|",
        flush=True,
    )
    resident = {}
    for name, shape in QUICK_CASES if args.quick else CASES:
        size = "x".join(map(str, shape))
        methods = [m for m in MODELS[name].methods if selected(f"{name} {size} {m}")]
        if methods:
            resident[f"{name} {size}"] = run_case(name, shape, methods, rate, repeats)
    if resident:
        print(
            "\nreps: timed calls per library (medians); 1, own process: timed once in the memory "
            "process.\n† noise from different generators: sampling noise, no correctness check.\n"
            "peak RSS: of a process per row and library, forked from one that built the models and "
            "input, from the fork on; (+N): over its resident memory at the fork: "
            + "; ".join(f"{key} {mb:.0f} MB" for key, mb in resident.items())
            + "."
        )
    if selected("cold start"):
        print_cold_start()
    print(f"\nrun time: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
