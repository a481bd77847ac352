"""Containers: ``Sequential``, the residual block and ``Graph``. They hold no maths, only an order."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from .device import add, is_device
from .layers import Add
from .module import Module, Signal, Step, Trace, join, record_change


def _run_chain(
    modules: list[tuple[str, Module]], x: Signal, key: str, trace: Trace | None, backend: str
) -> Signal:
    for name, module in modules:
        x = module._run(x, join(key, name), trace, backend)
    return x


def _backward_chain(
    modules: list[tuple[str, Module]], trace: Trace, key: str, signal: Signal, step: Step
) -> Signal:
    for name, module in reversed(modules):
        signal = module._backward(trace, join(key, name), signal, step)
    return signal


class Sequential(Module):
    """Children run in order. ``Sequential(a, b)`` names them ``0``, ``1``;
    ``Sequential(OrderedDict(conv=a, relu=b))`` uses the given names, as in torch."""

    def __init__(self, *modules: Module | Mapping[str, Module]):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(modules):
                self.add_module(str(index), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice | str) -> Module:
        if isinstance(index, str):
            return self._modules[index]
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        return items[index][1]

    def __delitem__(self, index: int | str) -> None:
        """Remove a child by position or name (``del model[-1]``, as in torch)."""
        name = index if isinstance(index, str) else list(self._modules)[index]
        del self._modules[name]
        record_change()

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def _run(self, x: Signal, key: str, trace: Trace | None, backend: str) -> np.ndarray:
        return _run_chain(list(self._modules.items()), x, key, trace, backend)

    def _backward(self, trace: Trace, key: str, signal: Signal, step: Step) -> Signal:
        return _backward_chain(list(self._modules.items()), trace, key, signal, step)


class Residual(Module):
    """``y = post(add(branch(x), shortcut(x)))``: a block with a skip connection.

    ``branch``, ``shortcut`` and ``post`` are each a module, or a mapping of names to modules run
    in order. A mapping's modules are registered under their own names directly in the block, so
    that torchvision's keys (``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``) load
    as they are; a single module is registered as ``branch``, ``shortcut`` or ``post``. An absent
    shortcut is the identity. The sum is the child ``add`` (an :class:`~npxai.layers.Add` layer),
    so that relevance rules can treat it as a layer of its own.
    """

    def __init__(
        self,
        branch: Module | Mapping[str, Module],
        shortcut: Module | Mapping[str, Module] | None = None,
        post: Module | Mapping[str, Module] | None = None,
    ):
        super().__init__()
        object.__setattr__(self, "_parts", {})
        for part, modules in (("branch", branch), ("shortcut", shortcut), ("post", post)):
            if modules is None:
                modules = {}
            elif isinstance(modules, Module):
                modules = {part: modules}
            for name, module in modules.items():
                if name in self._modules or name == "add":
                    raise ValueError(f"Residual: the name {name!r} is used twice")
                self.add_module(name, module)
            self._parts[part] = list(modules)
            if part == "shortcut":
                self.add_module("add", Add())

    def chain(self, part: str) -> list[tuple[str, Module]]:
        """The ``(name, module)`` pairs of ``part`` (``"branch"``, ``"shortcut"`` or ``"post"``),
        in the order they run."""
        return [(name, self._modules[name]) for name in self._parts[part]]

    def _run(self, x: np.ndarray, key: str, trace: Trace | None, backend: str) -> np.ndarray:
        branch = _run_chain(self.chain("branch"), x, key, trace, backend)
        shortcut = _run_chain(self.chain("shortcut"), x, key, trace, backend)
        y = self.add._run((branch, shortcut), join(key, "add"), trace, backend)
        return _run_chain(self.chain("post"), y, key, trace, backend)

    def _backward(self, trace: Trace, key: str, signal: Signal, step: Step) -> Signal:
        signal = _backward_chain(self.chain("post"), trace, key, signal, step)
        to_branch, to_shortcut = self.add._backward(trace, join(key, "add"), signal, step)
        from_branch = _backward_chain(self.chain("branch"), trace, key, to_branch, step)
        from_shortcut = _backward_chain(self.chain("shortcut"), trace, key, to_shortcut, step)
        return add(from_branch, from_shortcut)

    def __repr__(self) -> str:
        text = super().__repr__()
        parts = ", ".join(f"{part}={names}" for part, names in self._parts.items())
        return text.replace("Residual(\n", f"Residual(  # {parts}\n", 1)


class Graph(Module):
    """A directed acyclic graph of layers, for models that are no chain of blocks: each node is a
    module with the names of the values it reads, the graph's input (``input``, default
    ``"input"``) or earlier nodes' outputs::

        Graph({
            "conv1": (Conv2d(3, 8, 3, padding=1), ["input"]),
            "relu1": (ReLU(), ["conv1"]),
            "conv2": (Conv2d(3, 8, 1), ["input"]),
            "add": (Add(), ["relu1", "conv2"]),
            "cat": (Concat(1), ["add", "input"]),
        })

    The nodes run in the order given, which must be an order of execution (a node reads only the
    input and nodes before it); a node with several inputs gets them as a tuple, in the order
    named. ``output`` names the node whose output is the graph's (default: the last). Node names
    are the state-dict keys (``conv1.weight``) and the keys of ``model.named_modules()``; a name
    may hold dots, as torch's keys do. ``constants`` are named arrays that nodes may read as they
    read values (a ConvNeXt block's layer scale, ``Mul`` by a constant): state-dict entries of the
    graph under their own names, cast to the input's dtype when read. The backward walk visits
    the nodes in reverse; a value that several nodes read receives the sum of their signals, a
    constant receives none, and a node whose output does not reach the graph's output is left
    out.
    """

    def __init__(
        self,
        nodes: Mapping[str, tuple[Module, Sequence[str]]],
        output: str | Sequence[str] | None = None,
        input: str = "input",
        constants: Mapping[str, np.ndarray] | None = None,
    ):
        super().__init__()
        object.__setattr__(self, "_inputs", {})
        object.__setattr__(self, "_constants", [])
        if not isinstance(nodes, Mapping) or not nodes:
            raise ValueError("Graph: nodes must be a non-empty mapping of name -> (module, inputs)")
        if not isinstance(input, str) or not input:
            raise ValueError(f"Graph: input must be a non-empty name, got {input!r}")
        known = {input}
        for name, value in (constants or {}).items():
            if not isinstance(name, str) or not name or name == input:
                raise ValueError(
                    f"Graph: constant names must be non-empty strings other than the input's "
                    f"({input!r}), got {name!r}"
                )
            array = np.asarray(value)
            if array.dtype.kind != "f":
                raise ValueError(
                    f"Graph: constant {name!r} must be a floating-point array, got {array.dtype}"
                )
            self.register_buffer(name, array)
            self._constants.append(name)
            known.add(name)
        for name, node in nodes.items():
            if not isinstance(name, str) or not name or name in known:
                raise ValueError(
                    f"Graph: node names must be non-empty strings other than the input's "
                    f"({input!r}) and the constants', got {name!r}"
                )
            ok = isinstance(node, tuple | list) and len(node) == 2
            if not ok or not isinstance(node[0], Module) or isinstance(node[1], str):
                raise ValueError(
                    f"Graph: node {name!r} must be a pair (module, [names of its inputs]), "
                    f"got {node!r}"
                )
            module, inputs = node[0], list(node[1])
            if not inputs:
                raise ValueError(f"Graph: node {name!r} reads no input")
            for value in inputs:
                if value not in known:
                    raise ValueError(
                        f"Graph: node {name!r} reads {value!r}, which is neither the input, a "
                        "constant nor a node before it (list the nodes in an order they can run "
                        "in)"
                    )
            self.add_module(name, module)
            self._inputs[name] = inputs
            known.add(name)
        output = list(nodes)[-1] if output is None else output
        outputs = (output,) if isinstance(output, str) else tuple(output)
        if not outputs or len(set(outputs)) != len(outputs):
            raise ValueError(
                f"Graph: output must name one node or several distinct ones, got {output!r}"
            )
        for name in outputs:
            if name not in self._inputs:
                raise ValueError(f"Graph: output {name!r} is not a node")
            if input not in self._ancestors(name):
                raise ValueError(
                    f"Graph: the output {name!r} does not depend on the input {input!r}"
                )
        object.__setattr__(self, "input", input)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "output", outputs[0] if len(outputs) == 1 else outputs)
        object.__setattr__(self, "_drops", self._last_reads())  # the wiring is fixed from here

    def _ancestors(self, name: str) -> set[str]:
        seen, stack = set(), [name]
        while stack:
            for value in self._inputs.get(stack.pop(), []):
                if value not in seen:
                    seen.add(value)
                    stack.append(value)
        return seen

    def nodes(self) -> list[tuple[str, Module, list[str]]]:
        """``(name, module, names of its inputs)`` for every node, in execution order."""
        return [(name, self._modules[name], list(inputs)) for name, inputs in self._inputs.items()]

    def __getitem__(self, name: str) -> Module:
        """The module of node ``name``."""
        return self._modules[name]

    def with_output(self, name: str) -> Graph:
        """The graph of the nodes that output ``name`` needs, with that one output: the same
        layer objects (weights shared) under the same keys."""
        if name not in self._inputs:
            raise ValueError(f"Graph.with_output: {name!r} is not a node")
        needed = self._ancestors(name) | {name}
        nodes = {n: (m, inputs) for n, m, inputs in self.nodes() if n in needed}
        constants = {c: getattr(self, c) for c in self._constants if c in needed}
        return Graph(nodes, output=name, input=self.input, constants=constants)

    def readers(self, value: str) -> list[str]:
        """The nodes that read ``value`` (the input's name or a node's)."""
        return [name for name, inputs in self._inputs.items() if value in inputs]

    def constants(self) -> list[str]:
        """The names of the graph's constants."""
        return list(self._constants)

    def _run(self, x: Signal, key: str, trace: Trace | None, backend: str) -> np.ndarray:
        values = {self.input: x}
        for name in self._constants:
            values[name] = self.parameter_as(name, x.dtype, device=is_device(x))
        for index, (name, module, inputs) in enumerate(self.nodes()):
            args = tuple(values[value] for value in inputs)
            values[name] = module._run(args if len(args) > 1 else args[0], join(key, name),
                                       trace, backend)  # fmt: skip
            for value in self._drops.get(index, ()):
                del values[value]  # read by no later node: freed (unless the trace keeps it)
        if len(self.outputs) > 1:
            return tuple(values[name] for name in self.outputs)
        return values[self.output]

    def _last_reads(self) -> dict[int, list[str]]:
        """The values each node is the last to read (by node index), the output excepted."""
        last = {}
        for index, (_, _, inputs) in enumerate(self.nodes()):
            for value in inputs:
                last[value] = index
        drops: dict[int, list[str]] = {}
        for value, index in last.items():
            if value not in self.outputs:
                drops.setdefault(index, []).append(value)
        return drops

    def _backward(self, trace: Trace, key: str, signal: Signal, step: Step) -> Signal:
        if len(self.outputs) > 1:
            raise ValueError(
                f"this graph has the outputs {list(self.outputs)}; explain one of them: "
                "graph.with_output(name)"
            )
        signals = {self.output: signal}
        for name, module, inputs in reversed(self.nodes()):
            if name not in signals:
                continue  # its output does not reach the graph's output
            back = module._backward(trace, join(key, name), signals.pop(name), step)
            for value, part in zip(inputs, back if len(inputs) > 1 else (back,), strict=True):
                if value in self._constants:
                    continue
                signals[value] = part if value not in signals else add(signals[value], part)
        return signals[self.input]

    def __repr__(self) -> str:
        width = max(len(name) for name in self._inputs)
        lines = [f"  ({name}): {repr(module).replace(chr(10), chr(10) + '  ')}".ljust(width + 6)
                 + f"  <- {', '.join(inputs)}" for name, module, inputs in self.nodes()]  # fmt: skip
        return (f"{type(self).__name__}(input={self.input!r}, output={self.output!r}\n"
                + "\n".join(lines) + "\n)")  # fmt: skip
