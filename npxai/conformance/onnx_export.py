"""The suite's models as ONNX files (npxai's ``onnx`` extra): :func:`to_onnx`.

One ONNX node per suite node (:mod:`npxai.conformance.models`), named as the suite names it, its
output value of the same name; the graph's input is ``"input"``, of shape ``("N", *input_shape)``
(a free batch), its output the last node's; the initializers are named by the state-dict keys
(``fc1.weight``, ``bn1.running_var``), so that :func:`npxai.from_onnx` names the nodes as the
suite does. Tensors, input and output are float64 (``DOUBLE``), the state's values exactly.

=================  =============================================================================
suite layer        ONNX node
=================  =============================================================================
Linear             ``Gemm(x, weight[, bias])``, ``transB=1``: ``y = x W^T + b`` (no ``C`` input
                   without a bias)
Conv2d             ``Conv(x, weight[, bias])``: ``kernel_shape``, ``strides``, ``pads`` (torch's
                   padding at both ends), ``dilations``, ``group``; ``padding_mode="zeros"`` only
ReLU               ``Relu``
MaxPool2d          ``MaxPool``: ``kernel_shape``, ``strides`` (torch's default: the kernel),
                   ``pads``, ``dilations``, ``ceil_mode``
AvgPool2d          ``AveragePool``: ``kernel_shape``, ``strides``, ``pads``, ``ceil_mode``,
                   ``count_include_pad`` (torch's: by default 1); no ``divisor_override``
AdaptiveAvgPool2d  ``GlobalAveragePool`` (``output_size`` 1 only)
BatchNorm2d        ``BatchNormalization(x, weight, bias, running_mean, running_var)``, ``epsilon``:
                   ``y = (x - mean) / sqrt(var + eps) * weight + bias`` (inference; ``momentum``
                   plays no part in it)
Flatten            ``Flatten``, ``axis=1`` (``start_dim=1, end_dim=-1`` only: ONNX's makes 2-D)
Add                ``Add`` of its two inputs
Concat             ``Concat``, ``axis=dim``
=================  =============================================================================

The average's divisor with ``ceil_mode``: a window that runs past the input's end is cut there.
torch divides by the window's size within the input and its padding with
``count_include_pad``, else within the input (its CPU kernel,
``aten/src/ATen/native/cpu/AvgPoolKernel.cpp``: ``ih1 = min(ih0 + kH, input_height + padH)``,
``pool_size = (ih1 - ih0) * (iw1 - iw0)``; the installed ``torch/_inductor/lowering.py`` writes
the same divisor, ``fn_count``: ``hend = Min(hstart + kernel_size[i], h[i] + padding[i])``),
and so does ONNX's ``count_include_pad=1`` (the installed ``onnx``'s
``onnx/reference/ops/op_pool_common.py``, ``pool``: a window keeps the pixels ``< x_shape +
pads``, then averages them; onnxruntime computes the same). With the suite's padding 0 both
settings divide by the count of input values in the window.

ONNX holds a float attribute in 32 bits (``AttributeProto.f``): a batch norm's ``epsilon`` is
``float32(eps)`` (``1e-3`` would be ``0.0010000000474974513``); the suite's batch norms have
``eps`` that float32 holds exactly (powers of 2), so the file's function is the suite's.

The file is the same bytes on every call (no time stamps, producer ``npxai.conformance``
without a version, the IR version the lowest for the opset, deterministic serialization). Its
output's shape is ONNX's shape inference of the graph (strict), and the file passes
``onnx.checker.check_model(full_check=True)``.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np

from ..checks import shown
from .models import Model, Node

#: torch's constructor arguments of each layer type and their defaults (``...``: required).
ARGUMENTS: dict[str, dict[str, Any]] = {
    "Linear": {"in_features": ..., "out_features": ..., "bias": True},
    "Conv2d": {
        "in_channels": ...,
        "out_channels": ...,
        "kernel_size": ...,
        "stride": 1,
        "padding": 0,
        "dilation": 1,
        "groups": 1,
        "bias": True,
        "padding_mode": "zeros",
    },
    "ReLU": {"inplace": False},
    "MaxPool2d": {
        "kernel_size": ...,
        "stride": None,
        "padding": 0,
        "dilation": 1,
        "return_indices": False,
        "ceil_mode": False,
    },
    "AvgPool2d": {
        "kernel_size": ...,
        "stride": None,
        "padding": 0,
        "ceil_mode": False,
        "count_include_pad": True,
        "divisor_override": None,
    },
    "AdaptiveAvgPool2d": {"output_size": ...},
    "BatchNorm2d": {
        "num_features": ...,
        "eps": 1e-5,
        "momentum": 0.1,
        "affine": True,
        "track_running_stats": True,
        "bias": True,
    },
    "Flatten": {"start_dim": 1, "end_dim": -1},
    "Add": {},
    "Concat": {"dim": 1},
}

#: The lowest opset: :func:`npxai.from_onnx`'s.
FIRST_OPSET = 11


def to_onnx(model: Model, state: dict[str, np.ndarray], opset: int = 17) -> bytes:
    """``model`` with the weights ``state`` (its state dict: exactly the keys its nodes hold,
    each of the layer's shape, finite floats) as a serialized ONNX ``ModelProto`` of the default
    domain's ``opset`` (11 to the installed ``onnx``'s newest), written as the module docstring
    says.

    Raises ``ImportError`` without the ``onnx`` package, ``TypeError`` for a ``model`` that is no
    :class:`~npxai.conformance.models.Model` or a ``state`` that is no dict, ``ValueError`` for
    a model without nodes, naming the node for a layer type
    or an argument that has no ONNX node here, an input that no earlier node makes, a missing,
    extra, misshapen or non-finite state entry, or an opset out of range.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as error:
        raise ImportError('to_onnx needs the onnx package: pip install "npxai[onnx]"') from error
    if not isinstance(model, Model):
        raise TypeError(f"model must be an npxai.conformance Model, got {shown(model)}")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not FIRST_OPSET <= opset <= newest:
        raise ValueError(f"opset must be an int from {FIRST_OPSET} to {newest}, got {shown(opset)}")
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict of arrays by state-dict key, got {shown(state)}")

    if not model.nodes:
        raise ValueError(f"model {model.name!r} has no nodes")
    nodes, shapes, made = [], {}, {"input"}
    for node in model.nodes:
        if node.name in made:
            raise ValueError(f"node {node.name!r}: the name is taken (an earlier node or 'input')")
        for value in node.inputs:
            if value not in made:
                raise ValueError(f"node {node.name!r}: input {value!r} is neither 'input' nor an "
                                 "earlier node")  # fmt: skip
        op, attributes, parameters = _onnx_node(node)
        shapes.update({f"{node.name}.{key}": shape for key, shape in parameters.items()})
        inputs = [*node.inputs, *(f"{node.name}.{key}" for key in parameters)]
        nodes.append(helper.make_node(op, inputs, [node.name], name=node.name, **attributes))
        made.add(node.name)

    initializers = [
        numpy_helper.from_array(_parameter(state, key, shape), key) for key, shape in shapes.items()
    ]
    extra = sorted(set(state) - set(shapes))
    if extra:
        raise ValueError(f"model {model.name!r}: state keys {extra} belong to no node's layer "
                         f"(its keys: {list(shapes)})")  # fmt: skip

    double = onnx.TensorProto.DOUBLE
    last = model.nodes[-1].name

    def proto(output: Any) -> Any:
        graph = helper.make_graph(
            nodes, model.name,
            [helper.make_tensor_value_info("input", double, ["N", *model.input_shape])],
            [output], initializer=initializers,
        )  # fmt: skip
        ids = [helper.make_opsetid("", opset)]
        return helper.make_model(
            graph, opset_imports=ids, ir_version=helper.find_min_ir_version_for(ids),
            producer_name="npxai.conformance", doc_string=model.covers,
        )  # fmt: skip

    try:
        inferred = onnx.shape_inference.infer_shapes(
            proto(helper.make_tensor_value_info(last, double, None)),
            check_type=True, strict_mode=True,
        )  # fmt: skip
        result = proto(inferred.graph.output[0])
        onnx.checker.check_model(result, full_check=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as error:
        raise ValueError(f"model {model.name!r} is no valid ONNX graph: {error}") from error
    return result.SerializeToString(deterministic=True)


def _onnx_node(node: Node) -> tuple[str, dict[str, Any], dict[str, tuple[int, ...]]]:
    """The ONNX op, its attributes, and the parameters it reads after the node's inputs (state
    key suffix -> shape), for a suite node."""
    if node.layer not in ARGUMENTS:
        raise ValueError(f"node {node.name!r}: layer type {node.layer!r} has no ONNX node here "
                         f"(known: {sorted(ARGUMENTS)})")  # fmt: skip
    where = f"node {node.name!r} ({node.layer})"
    unknown = sorted(set(node.arguments) - set(ARGUMENTS[node.layer]))
    if unknown:
        raise ValueError(f"{where}: unknown arguments {unknown} "
                         f"(known: {list(ARGUMENTS[node.layer])})")  # fmt: skip
    a = {**ARGUMENTS[node.layer], **node.arguments}
    missing = [key for key, value in a.items() if value is ...]
    if missing:
        raise ValueError(f"{where}: arguments {missing} are missing")
    arity = 2 if node.layer == "Add" else 1
    if node.layer != "Concat" and len(node.inputs) != arity:
        raise ValueError(f"{where}: {len(node.inputs)} inputs; {arity} expected")

    def refuse(key: str, expected: str) -> NoReturn:
        raise ValueError(f"{where}: {key}={shown(a[key])}; only {expected} has an ONNX node here")

    def pair(key: str) -> list[int]:
        value = a[key] if isinstance(a[key], list | tuple) else [a[key], a[key]]
        if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise ValueError(f"{where}: {key}={shown(a[key])}; an int or a pair of ints expected")
        return [int(v) for v in value]

    def window() -> dict[str, Any]:
        kernel, padding = pair("kernel_size"), pair("padding")
        stride = kernel if a["stride"] is None else pair("stride")
        return {"kernel_shape": kernel, "strides": stride, "pads": padding * 2,
                "ceil_mode": int(a["ceil_mode"])}  # fmt: skip

    layer = node.layer
    if layer == "Linear":
        weight = {"weight": (a["out_features"], a["in_features"])}
        return "Gemm", {"transB": 1}, weight | ({"bias": (a["out_features"],)} if a["bias"] else {})
    if layer == "Conv2d":
        if a["padding_mode"] != "zeros":
            refuse("padding_mode", "'zeros'")
        kernel, groups = pair("kernel_size"), a["groups"]
        attributes = {"kernel_shape": kernel, "strides": pair("stride"),
                      "pads": pair("padding") * 2, "dilations": pair("dilation"),
                      "group": groups}  # fmt: skip
        weight = {"weight": (a["out_channels"], a["in_channels"] // groups, *kernel)}
        return "Conv", attributes, weight | ({"bias": (a["out_channels"],)} if a["bias"] else {})
    if layer == "ReLU":
        return "Relu", {}, {}
    if layer == "MaxPool2d":
        if a["return_indices"]:
            refuse("return_indices", "False")
        return "MaxPool", window() | {"dilations": pair("dilation")}, {}
    if layer == "AvgPool2d":
        if a["divisor_override"] is not None:
            refuse("divisor_override", "None")
        return "AveragePool", window() | {"count_include_pad": int(a["count_include_pad"])}, {}
    if layer == "AdaptiveAvgPool2d":
        if a["output_size"] not in (1, [1, 1], (1, 1)):
            refuse("output_size", "1")
        return "GlobalAveragePool", {}, {}
    if layer == "BatchNorm2d":
        for key in ("affine", "track_running_stats", "bias"):
            if a[key] is not True:
                refuse(key, "True")
        n = (a["num_features"],)
        keys = ("weight", "bias", "running_mean", "running_var")
        return "BatchNormalization", {"epsilon": float(a["eps"])}, dict.fromkeys(keys, n)
    if layer == "Flatten":
        if a["start_dim"] != 1 or a["end_dim"] != -1:
            ends = f"start_dim={shown(a['start_dim'])}, end_dim={shown(a['end_dim'])}"
            raise ValueError(f"{where}: {ends}; only 1, -1 have an ONNX node here")
        return "Flatten", {"axis": 1}, {}
    if layer == "Add":
        return "Add", {}, {}
    return "Concat", {"axis": int(a["dim"])}, {}


def _parameter(state: dict[str, np.ndarray], key: str, shape: tuple[int, ...]) -> np.ndarray:
    """``state[key]`` as float64 (exactly: float16, float32 and float64 only), checked."""
    if key not in state:
        raise ValueError(f"state has no {key!r}, an array of shape {shape} expected")
    value = state[key]
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.dtype.itemsize > 8:
        raise ValueError(f"state[{key!r}] must be a float16/32/64 NumPy array, got {shown(value)}")
    if value.shape != shape:
        raise ValueError(f"state[{key!r}] has shape {value.shape}, {shape} expected")
    if not np.isfinite(value).all():
        raise ValueError(f"state[{key!r}] holds values that are not finite")
    return value.astype(np.float64)
