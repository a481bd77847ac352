"""Containers: ``Sequential`` and the residual block. They hold no maths, only an order."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping

import numpy as np

from .device import add
from .layers import Add
from .module import Module, Signal, Step, Trace, join


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
