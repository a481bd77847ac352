"""The suite's models: small graphs of ``torch.nn``-named layers, written as data.

A model is a list of nodes ``(name, layer type, constructor arguments, inputs)``: the layer type
is a ``torch.nn`` class name (and npxai's ``Add``, ``Concat``), the arguments are that
constructor's, the inputs name the graph's input (``"input"``) or earlier nodes. The same list
is the manifest's description of the model (so that an implementation in any language can build
it), the ONNX file's graph and, through :func:`build`, an :class:`npxai.Graph`.

The weights are drawn by :func:`weights` from a seeded generator in node order: a layer's weight
``N(0, 1 / fan_in)``, its bias ``N(0, 0.1^2)``, a batch norm's ``running_var`` uniform in
``[0.5, 1.5]``, its ``running_mean``, ``weight`` and ``bias`` normal. The edge cases that
separate implementations are made on purpose: a node's ``dead`` units get zero weights and bias
``-1`` (``z = -1`` for every input: a dead ReLU), its ``silent`` units zero weights and zero
bias (``z = 0`` exactly: a zero denominator).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import layers as L
from ..containers import Graph


@dataclass(frozen=True)
class Node:
    """One layer of a model: ``layer`` is the ``torch.nn`` class name, ``arguments`` its
    constructor's keyword arguments, ``inputs`` the values it reads; ``dead`` and ``silent`` are
    output units (rows of a Linear, output channels of a Conv2d) set as the module docstring says."""

    name: str
    layer: str
    arguments: dict = field(default_factory=dict)
    inputs: tuple[str, ...] = ("input",)
    dead: tuple[int, ...] = ()
    silent: tuple[int, ...] = ()

    def describe(self) -> dict:
        """The node as the manifest writes it."""
        entry = {"name": self.name, "layer": self.layer, "arguments": self.arguments,
                 "inputs": list(self.inputs)}  # fmt: skip
        if self.dead:
            entry["dead"] = list(self.dead)
        if self.silent:
            entry["silent"] = list(self.silent)
        return entry


@dataclass(frozen=True)
class Model:
    """A suite model: its per-sample input shape, its nodes in an order they run in, what it
    covers, the seed of its weights, and the layer whose output Grad-CAM explains (``None``: no
    feature maps)."""

    name: str
    input_shape: tuple[int, ...]
    nodes: tuple[Node, ...]
    covers: str
    seed: int
    gradcam: str | None = None

    def describe(self) -> dict:
        """The model as the manifest writes it."""
        return {
            "input_shape": list(self.input_shape),
            "covers": self.covers,
            "seed": self.seed,
            "gradcam": self.gradcam,
            "nodes": [node.describe() for node in self.nodes],
        }

    @classmethod
    def from_description(cls, name: str, description: dict) -> Model:
        """The model a manifest describes (its weights come from its safetensors file)."""
        nodes = tuple(
            Node(
                n["name"],
                n["layer"],
                n["arguments"],
                tuple(n["inputs"]),
                tuple(n.get("dead", ())),
                tuple(n.get("silent", ())),
            )  # fmt: skip
            for n in description["nodes"]
        )
        return cls(name, tuple(description["input_shape"]), nodes, description["covers"],
                   description["seed"], description["gradcam"])  # fmt: skip

    @property
    def convolutional(self) -> bool:
        return any(node.layer == "Conv2d" for node in self.nodes)


def _chain(*nodes: tuple) -> tuple[Node, ...]:
    """Nodes that each read the one before (the first reads the input), unless they name their
    inputs: ``(name, layer, arguments[, extras])``."""
    made, previous = [], "input"
    for entry in nodes:
        name, layer, arguments, *extra = entry
        extra = extra[0] if extra else {}
        inputs = tuple(extra.pop("inputs", (previous,)))
        made.append(Node(name, layer, arguments, inputs, **extra))
        previous = name
    return tuple(made)


def _linear(n_in: int, n_out: int, bias: bool = True) -> dict:
    return {"in_features": n_in, "out_features": n_out, "bias": bias}


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0, dilation: int = 1,
          groups: int = 1, bias: bool = True) -> dict:  # fmt: skip
    return {"in_channels": c_in, "out_channels": c_out, "kernel_size": [k, k],
            "stride": [stride, stride], "padding": [padding, padding],
            "dilation": [dilation, dilation], "groups": groups, "bias": bias}  # fmt: skip


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model(
            "dense",
            (6,),
            _chain(
                ("fc1", "Linear", _linear(6, 8), {"dead": (3,), "silent": (5,)}),
                ("relu1", "ReLU", {}),
                ("fc2", "Linear", _linear(8, 5)),
                ("relu2", "ReLU", {}),
                ("fc3", "Linear", _linear(5, 3)),
            ),
            "dense layers with bias, a dead unit and a unit with z = 0",
            1,
        ),
        Model(
            "dense_nobias",
            (6,),
            _chain(
                ("fc1", "Linear", _linear(6, 8, bias=False)),
                ("relu1", "ReLU", {}),
                ("fc2", "Linear", _linear(8, 3, bias=False)),
            ),
            "dense layers without bias (where LRP-0 is InputTimesGradient)",
            2,
        ),
        Model(
            "conv",
            (2, 9, 9),
            _chain(
                ("conv1", "Conv2d", _conv(2, 4, 3, padding=1), {"silent": (2,)}),
                ("relu1", "ReLU", {}),
                ("conv2", "Conv2d", _conv(4, 4, 3, stride=2, padding=1, groups=2)),
                ("relu2", "ReLU", {}),
                ("conv3", "Conv2d", _conv(4, 6, 3, padding=2, dilation=2, bias=False)),
                ("relu3", "ReLU", {}),
                (
                    "pool1",
                    "MaxPool2d",
                    {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": True},
                ),  # fmt: skip
                (
                    "pool2",
                    "AvgPool2d",
                    {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "ceil_mode": True},
                ),  # fmt: skip
                ("flatten", "Flatten", {"start_dim": 1, "end_dim": -1}),
                ("fc", "Linear", _linear(24, 3)),
            ),
            "convolutions with padding, stride, groups, dilation, no bias; max and average "
            "pooling with ceil_mode; a channel with z = 0",
            3,
            "relu3",
        ),
        Model(
            "batchnorm",
            (3, 6, 6),
            _chain(
                ("conv1", "Conv2d", _conv(3, 4, 3, padding=1)),
                ("bn1", "BatchNorm2d", {"num_features": 4, "eps": 2.0**-17}),
                ("relu1", "ReLU", {}),
                ("conv2", "Conv2d", _conv(4, 4, 3, padding=1, bias=False)),
                ("bn2", "BatchNorm2d", {"num_features": 4, "eps": 2.0**-10}),
                ("relu2", "ReLU", {}),
                ("pool", "AdaptiveAvgPool2d", {"output_size": [1, 1]}),
                ("flatten", "Flatten", {"start_dim": 1, "end_dim": -1}),
                ("fc", "Linear", _linear(4, 3)),
            ),
            "batch norms after convolutions (with and without bias), folded or not; adaptive "
            "average pooling",
            4,
            "relu2",
        ),
        Model(
            "residual",
            (3, 6, 6),
            _chain(
                ("conv1", "Conv2d", _conv(3, 4, 3, padding=1)),
                ("relu1", "ReLU", {}),
                ("conv2", "Conv2d", _conv(4, 4, 3, padding=1)),
                ("relu2", "ReLU", {}),
                ("conv3", "Conv2d", _conv(4, 4, 3, padding=1)),
                ("add", "Add", {}, {"inputs": ("conv3", "relu1")}),
                ("relu3", "ReLU", {}),
                ("pool", "AdaptiveAvgPool2d", {"output_size": [1, 1]}),
                ("flatten", "Flatten", {"start_dim": 1, "end_dim": -1}),
                ("fc", "Linear", _linear(4, 3)),
            ),
            "a residual sum",
            5,
            "relu3",
        ),
        Model(
            "concat",
            (3, 6, 6),
            _chain(
                ("conv_a", "Conv2d", _conv(3, 4, 1)),
                ("relu_a", "ReLU", {}),
                ("conv_b", "Conv2d", _conv(3, 2, 3, padding=1), {"inputs": ("input",)}),
                ("relu_b", "ReLU", {}),
                ("cat", "Concat", {"dim": 1}, {"inputs": ("relu_a", "relu_b")}),
                (
                    "pool",
                    "AvgPool2d",
                    {
                        "kernel_size": [2, 2],
                        "stride": [2, 2],
                        "padding": [0, 0],
                        "ceil_mode": False,
                    },
                ),  # fmt: skip
                ("flatten", "Flatten", {"start_dim": 1, "end_dim": -1}),
                ("fc", "Linear", _linear(54, 3)),
            ),
            "two branches concatenated along the channels",
            6,
            "pool",  # after the concatenation: both branches' maps
        ),
    )
}

#: The layer types a suite model may hold, and how npxai builds each.
LAYERS = {
    "Linear": L.Linear,
    "Conv2d": L.Conv2d,
    "ReLU": L.ReLU,
    "MaxPool2d": L.MaxPool2d,
    "AvgPool2d": L.AvgPool2d,
    "AdaptiveAvgPool2d": L.AdaptiveAvgPool2d,
    "BatchNorm2d": L.BatchNorm2d,
    "Flatten": L.Flatten,
    "Add": L.Add,
    "Concat": L.Concat,
}


def weights(model: Model) -> dict[str, np.ndarray]:
    """The model's state dict in float64, drawn as the module docstring says."""
    rng = np.random.default_rng(model.seed)
    state: dict[str, np.ndarray] = {}
    for node in model.nodes:
        a = node.arguments
        if node.layer in ("Linear", "Conv2d"):
            if node.layer == "Linear":
                shape = (a["out_features"], a["in_features"])
            else:
                shape = (a["out_channels"], a["in_channels"] // a["groups"], *a["kernel_size"])
            weight = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
            bias = 0.1 * rng.standard_normal(shape[0]) if a["bias"] else None
            for unit, value in [(u, -1.0) for u in node.dead] + [(u, 0.0) for u in node.silent]:
                weight[unit] = 0.0
                if bias is not None:
                    bias[unit] = value
            state[f"{node.name}.weight"] = weight
            if bias is not None:
                state[f"{node.name}.bias"] = bias
        elif node.layer == "BatchNorm2d":
            n = a["num_features"]
            state[f"{node.name}.weight"] = 1 + 0.3 * rng.standard_normal(n)
            state[f"{node.name}.bias"] = 0.1 * rng.standard_normal(n)
            state[f"{node.name}.running_mean"] = 0.2 * rng.standard_normal(n)
            state[f"{node.name}.running_var"] = rng.uniform(0.5, 1.5, n)
    return state


def build(model: Model, state: dict[str, np.ndarray] | None = None) -> Graph:
    """The model as an :class:`npxai.Graph` with ``state`` (default: :func:`weights`) loaded."""
    nodes = {}
    for node in model.nodes:
        arguments = {k: tuple(v) if isinstance(v, list) else v for k, v in node.arguments.items()}
        nodes[node.name] = (LAYERS[node.layer](**arguments), list(node.inputs))
    graph = Graph(nodes)
    graph.load_state_dict(weights(model) if state is None else state)
    return graph
