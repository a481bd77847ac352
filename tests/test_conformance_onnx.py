"""npxai.conformance.onnx_export.to_onnx: every suite model's file passes onnx's checker, and runs
to npxai's Graph of the model (numpy backend, float64) under onnx's ReferenceEvaluator,
onnxruntime, torch (the model rebuilt from torch.nn modules) and npxai.from_onnx. onnx,
onnxruntime and torch are oracles only."""

import dataclasses
import inspect
import sys

import numpy as np
import pytest
import torch

import npxai
from npxai import layers as L
from npxai.conformance.models import MODELS, Model, Node, build, weights
from npxai.conformance.onnx_export import ARGUMENTS, to_onnx

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

#: onnxruntime 1.31's CPU provider has no double kernel for these ops (a session of a DOUBLE
#: model that holds one fails with NOT_IMPLEMENTED); its Gemm, Relu, MaxPool,
#: BatchNormalization, Flatten, Add and Concat take double.
ORT_NO_DOUBLE = {"Conv", "AveragePool", "GlobalAveragePool"}

OPS = {"Linear": "Gemm", "Conv2d": "Conv", "ReLU": "Relu", "MaxPool2d": "MaxPool",
       "AvgPool2d": "AveragePool", "AdaptiveAvgPool2d": "GlobalAveragePool",
       "BatchNorm2d": "BatchNormalization", "Flatten": "Flatten", "Add": "Add",
       "Concat": "Concat"}  # fmt: skip


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {name: to_onnx(model, weights(model)) for name, model in MODELS.items()}


def sample(model: Model) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, *model.input_shape))


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """Relative to the largest |expected| (an output near 0 carries its neighbours' rounding)."""
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("name", MODELS)
def test_file_is_the_model(files, name):
    model, state = MODELS[name], weights(MODELS[name])
    proto = onnx.load_from_string(files[name])
    onnx.checker.check_model(proto, full_check=True)
    assert (proto.ir_version, [(o.domain, o.version) for o in proto.opset_import]) == (
        8,
        [("", 17)],
    )
    assert (proto.producer_name, proto.producer_version) == ("npxai.conformance", "")
    assert proto.doc_string == model.covers
    graph = proto.graph
    assert [(n.name, n.op_type, list(n.output)) for n in graph.node] == [
        (n.name, OPS[n.layer], [n.name]) for n in model.nodes
    ]
    assert [n.input[: len(s.inputs)] for n, s in zip(graph.node, model.nodes, strict=True)] == [
        list(s.inputs) for s in model.nodes
    ]

    def shape(value):
        dims = value.type.tensor_type.shape.dim
        return [d.dim_param or d.dim_value for d in dims], value.type.tensor_type.elem_type

    double = onnx.TensorProto.DOUBLE
    assert [(v.name, shape(v)) for v in graph.input] == [
        ("input", (["N", *model.input_shape], double))
    ]
    k = model.nodes[-1].arguments["out_features"]
    assert [(v.name, shape(v)) for v in graph.output] == [
        (model.nodes[-1].name, (["N", k], double))
    ]
    assert sorted(t.name for t in graph.initializer) == sorted(state)
    for tensor in graph.initializer:
        assert tensor.data_type == double
        np.testing.assert_array_equal(
            numpy_helper.to_array(tensor), state[tensor.name], strict=True
        )


def test_pool_and_gemm_attributes(files):
    """The conv model's pools with ceil_mode, its convolutions' padding, stride, dilation and
    groups, the Linear without a C input when it has no bias, as torch's arguments say."""
    nodes = {n.name: n for n in onnx.load_from_string(files["conv"]).graph.node}

    def attributes(name):
        return {a.name: onnx.helper.get_attribute_value(a) for a in nodes[name].attribute}

    assert attributes("conv2") == {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1] * 4,
                                   "dilations": [1, 1], "group": 2}  # fmt: skip
    assert attributes("conv3")["dilations"] == [2, 2] and len(nodes["conv3"].input) == 2
    assert attributes("pool1") == {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0] * 4,
                                   "ceil_mode": 1, "dilations": [1, 1]}  # fmt: skip
    assert attributes("pool2") == {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0] * 4,
                                   "ceil_mode": 1, "count_include_pad": 1}  # fmt: skip
    gemm = onnx.load_from_string(files["dense_nobias"]).graph.node[0]
    assert list(gemm.input) == ["input", "fc1.weight"]
    assert [(a.name, a.i) for a in gemm.attribute] == [("transB", 1)]


def test_epsilon_is_exact(files):
    """ONNX stores a batch norm's eps as float32: the suite's eps are powers of 2, which it holds
    exactly, so the file's model is the suite's."""
    nodes = onnx.load_from_string(files["batchnorm"]).graph.node
    eps = {n.name: n.attribute[0].f for n in nodes if n.op_type == "BatchNormalization"}
    assert eps == {"bn1": 2.0**-17, "bn2": 2.0**-10}


@pytest.mark.parametrize("name", MODELS)
def test_reference_evaluator(files, name):
    """onnx's NumPy evaluator takes double for every op here."""
    x = sample(MODELS[name])
    (y,) = ReferenceEvaluator(files[name]).run(None, {"input": x})
    assert y.dtype == np.float64
    assert_close(y, build(MODELS[name])(x, backend="numpy"), 1e-12)


def as_float32(proto):
    """The model with float32 initializers, input and output (the same ops)."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for i, tensor in enumerate(proto.graph.initializer):
        array = numpy_helper.to_array(tensor).astype(np.float32)
        proto.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, tensor.name))
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


@pytest.mark.parametrize("name", MODELS)
def test_onnxruntime(files, name):
    """The file itself where onnxruntime has double kernels for its ops (1e-12); else its
    float32 copy, against npxai in float64 (float32's rounding through the layers: 1e-5)."""
    x = sample(MODELS[name])
    expected = build(MODELS[name])(x, backend="numpy")
    ops = {n.op_type for n in onnx.load_from_string(files[name]).graph.node}
    providers = ["CPUExecutionProvider"]
    if ops & ORT_NO_DOUBLE:
        with pytest.raises(ort.capi.onnxruntime_pybind11_state.NotImplemented):
            ort.InferenceSession(files[name], providers=providers)
        session = ort.InferenceSession(
            as_float32(onnx.load_from_string(files[name])), providers=providers
        )
        (y,) = session.run(None, {"input": x.astype(np.float32)})
        assert y.dtype == np.float32
        assert_close(y.astype(np.float64), expected, 1e-5)
    else:
        (y,) = ort.InferenceSession(files[name], providers=providers).run(None, {"input": x})
        assert y.dtype == np.float64
        assert_close(y, expected, 1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_from_onnx(files, name):
    """npxai's importer names the nodes as the suite does (from the weights' keys and the node
    names), with the same layers, inputs, state (exactly) and outputs."""
    model = MODELS[name]
    suite, imported = build(model), npxai.from_onnx(files[name])
    described = {n: (type(m), i) for n, m, i in imported.nodes()}
    assert described == {n: (type(m), i) for n, m, i in suite.nodes()}
    assert set(imported.state_dict()) == set(suite.state_dict()) >= set(weights(model))
    for key, value in suite.state_dict().items():
        np.testing.assert_array_equal(imported.state_dict()[key], value)
    x = sample(model)
    assert_close(imported(x, backend="numpy"), suite(x, backend="numpy"), 1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_deterministic(files, name):
    assert to_onnx(MODELS[name], weights(MODELS[name])) == files[name]


def torch_forward(model: Model, state: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The model built from torch.nn modules (Add: the sum, Concat: torch.cat), float64, eval."""
    values = {"input": torch.from_numpy(x)}
    for node in model.nodes:
        inputs = [values[v] for v in node.inputs]
        if node.layer == "Add":
            values[node.name] = inputs[0] + inputs[1]
            continue
        if node.layer == "Concat":
            values[node.name] = torch.cat(inputs, dim=node.arguments["dim"])
            continue
        arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in node.arguments.items()}
        module = getattr(torch.nn, node.layer)(**arguments).double().eval()
        with torch.no_grad():
            for key, value in state.items():
                if key.startswith(f"{node.name}."):
                    getattr(module, key[len(node.name) + 1 :]).copy_(torch.from_numpy(value))
        with torch.no_grad():
            values[node.name] = module(inputs[0])
    return values[model.nodes[-1].name].numpy()


@pytest.mark.parametrize("name", MODELS)
def test_torch(files, name):
    """The file's function is torch's: ceil_mode's last windows, the average's divisor
    (count_include_pad), the grouped and dilated convolutions, the batch norms in eval."""
    model, x = MODELS[name], sample(MODELS[name])
    (y,) = ReferenceEvaluator(files[name]).run(None, {"input": x})
    assert_close(y, torch_forward(model, weights(model), x), 1e-12)


@pytest.mark.parametrize("opset", [11, 13, onnx.defs.onnx_opset_version()])
@pytest.mark.parametrize("name", ["conv", "batchnorm"])
def test_other_opsets(name, opset):
    """The first opset npxai.from_onnx reads, the last of BatchNormalization-9, and onnx's
    newest: the same function, the IR version the opset's."""
    model = MODELS[name]
    x, proto = sample(model), onnx.load_from_string(to_onnx(model, weights(model), opset))
    expected = build(model)(x, backend="numpy")
    assert proto.opset_import[0].version == opset
    assert proto.ir_version == {11: 6, 13: 7}.get(opset, proto.ir_version)
    onnx.checker.check_model(proto, full_check=True)
    if name == "batchnorm" and opset < 14:
        # onnx's ReferenceEvaluator runs BatchNormalization-9 (opsets 9 to 13) in training mode
        # (onnx/reference/ops/op_batch_normalization.py, BatchNormalization_9: it tests
        # `momentum is None`, and the schema's default 0.9 fills it; onnx/onnx#8442): onnxruntime
        session = ort.InferenceSession(as_float32(proto), providers=["CPUExecutionProvider"])
        assert_close(session.run(None, {"input": x.astype(np.float32)})[0], expected, 1e-5)
    else:
        assert_close(ReferenceEvaluator(proto).run(None, {"input": x})[0], expected, 1e-12)


@pytest.mark.parametrize(
    ("layer", "arguments"),
    [
        ("AvgPool2d", {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
                       "ceil_mode": True}),
        ("AvgPool2d", {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
                       "ceil_mode": True, "count_include_pad": False}),
        ("MaxPool2d", {"kernel_size": [2, 2], "stride": [2, 2], "padding": [1, 1],
                       "dilation": [2, 2], "ceil_mode": True}),
    ],
)  # fmt: skip
def test_pools_with_padding(layer, arguments):
    """Beyond the suite's padding 0: a last window (ceil_mode) that runs past the padding, the
    average with and without the padding in its divisor, a dilated max, as torch has them (and
    onnxruntime, in float32: a pool adds one rounding)."""
    nodes = (Node("pool", layer, arguments), Node("flatten", "Flatten", {}, ("pool",)))
    model = Model("pool", (2, 4, 5), nodes, "", 0)
    x, file = sample(model), to_onnx(model, {})
    (y,) = ReferenceEvaluator(file).run(None, {"input": x})
    assert_close(y, torch_forward(model, {}, x), 1e-12)
    assert_close(y, build(model)(x, backend="numpy"), 1e-12)
    session = ort.InferenceSession(
        as_float32(onnx.load_from_string(file)), providers=["CPUExecutionProvider"]
    )
    assert_close(session.run(None, {"input": x.astype(np.float32)})[0], y, 1e-6)


def test_arguments_are_the_constructors():
    """to_onnx's table of arguments and defaults is the signature of torch.nn's class (npxai's
    for Add and Concat), but for device and dtype."""
    for layer, arguments in ARGUMENTS.items():
        cls = getattr(L, layer) if layer in ("Add", "Concat") else getattr(torch.nn, layer)
        parameters = inspect.signature(cls).parameters.values()
        assert arguments == {
            p.name: ... if p.default is p.empty else p.default
            for p in parameters
            if p.name not in ("device", "dtype")
        }, layer


SMALL = Model("small", (6,), (Node("fc1", "Linear", {"in_features": 6, "out_features": 3,
                                                   "bias": True}),), "", 0)  # fmt: skip


def with_node(*nodes: Node) -> Model:
    return dataclasses.replace(SMALL, nodes=(*SMALL.nodes, *nodes))


@pytest.mark.parametrize(
    ("model", "match"),
    [
        (
            with_node(Node("gelu", "GELU", {}, ("fc1",))),
            r"node 'gelu': layer type 'GELU' has no ONNX node",
        ),
        (
            with_node(Node("relu", "ReLU", {"negative_slope": 0.1}, ("fc1",))),
            r"node 'relu' \(ReLU\): unknown arguments \['negative_slope'\]",
        ),
        (
            with_node(Node("flat", "Flatten", {"start_dim": 2}, ("fc1",))),
            r"node 'flat' \(Flatten\): start_dim=2",
        ),
        (
            with_node(Node("pool", "AdaptiveAvgPool2d", {"output_size": [2, 2]}, ("fc1",))),
            r"node 'pool' \(AdaptiveAvgPool2d\): output_size=\[2, 2\]",
        ),
        (
            with_node(
                Node("pool", "AvgPool2d", {"kernel_size": 2, "divisor_override": 3}, ("fc1",))
            ),
            r"node 'pool' \(AvgPool2d\): divisor_override=3",
        ),
        (
            with_node(Node("pool", "MaxPool2d", {"kernel_size": [2, 2, 2]}, ("fc1",))),
            r"node 'pool' \(MaxPool2d\): kernel_size=\[2, 2, 2\]; an int or a pair",
        ),
        (
            with_node(Node("bn", "BatchNorm2d", {"num_features": 3, "bias": False}, ("fc1",))),
            r"node 'bn' \(BatchNorm2d\): bias=False; only True",
        ),
        (
            with_node(Node("pool", "MaxPool2d", {}, ("fc1",))),
            r"node 'pool' \(MaxPool2d\): arguments \['kernel_size'\] are missing",
        ),
        (with_node(Node("sum", "Add", {}, ("fc1",))), r"node 'sum' \(Add\): 1 inputs; 2 expected"),
        (with_node(Node("relu", "ReLU", {}, ("fc2",))), r"node 'relu': input 'fc2' is neither"),
        (with_node(Node("fc1", "ReLU", {}, ("fc1",))), r"node 'fc1': the name is taken"),
        (
            with_node(Node("fc2", "Linear", {"in_features": 4, "out_features": 3}, ("fc1",))),
            r"state has no 'fc2.weight'",
        ),
        (dataclasses.replace(SMALL, input_shape=(2, 3)), r"model 'small' is no valid ONNX graph"),
        (dataclasses.replace(SMALL, nodes=()), r"model 'small' has no nodes"),
    ],
)
def test_bad_model(model, match):
    with pytest.raises(ValueError, match=match):
        to_onnx(model, weights(SMALL))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"fc1.weight": np.zeros((3, 5))}, r"state\['fc1.weight'\] has shape \(3, 5\), \(3, 6\)"),
        ({"fc1.bias": np.zeros(3, dtype=np.int64)}, r"state\['fc1.bias'\] must be a float16/32/64"),
        ({"fc1.bias": [0.0, 0.0, 0.0]}, r"state\['fc1.bias'\] must be a float16/32/64"),
        (
            {"fc1.bias": np.array([0.0, np.nan, 0.0])},
            r"state\['fc1.bias'\] holds values that are not",
        ),
        ({"fc2.weight": np.zeros((3, 3))}, r"state keys \['fc2.weight'\] belong to no node"),
    ],
)
def test_bad_state(change, match):
    with pytest.raises(ValueError, match=match):
        to_onnx(SMALL, {**weights(SMALL), **change})


def test_bad_arguments(monkeypatch):
    state = weights(SMALL)
    for opset in (10, True, 17.0):
        with pytest.raises(ValueError, match=r"opset must be an int from 11 to \d+, got"):
            to_onnx(SMALL, state, opset)
    with pytest.raises(TypeError, match="model must be an npxai.conformance Model"):
        to_onnx(SMALL.describe(), state)
    with pytest.raises(TypeError, match="state must be a dict"):
        to_onnx(SMALL, list(state.values()))
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "npxai\[onnx\]"'):
        to_onnx(SMALL, state)
