"""The base of every layer and container: parameters, state dicts, forward with recording.

A model is a tree of modules. Leaves (:class:`Layer`) hold parameters and the maths; containers
(``Sequential``, ``Residual``) only say in which order their children run. State-dict keys are
the dotted paths of torch (``features.0.weight``). ``model.trace(x)`` runs the forward pass and
records every leaf's input and output under its key; ``model.backward(trace, signal, step)`` walks
the same leaves in reverse, handing each its record and the signal arriving at its output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .backend import backend_or_default
from .checks import flag
from .device import count_nonfinite, deliver, is_device, to_device, to_host
from .errors import LayerInputError, StateDictError

Signal = np.ndarray | tuple[np.ndarray, ...]

_changes = 0  # assignments to any module so far: see changes()


def changes() -> int:
    """How many times any module's parameters, buffers, attributes or children have been
    assigned, registered, loaded or removed: a model derived from another and kept (the gradient
    family's folded copy, :func:`npxai.lrp.canonize.folded`) is made anew once this has moved.
    Arrays changed in place are not seen."""
    return _changes


def record_change() -> None:
    global _changes
    _changes += 1


@dataclass(eq=False)
class Record:
    """One leaf's part of a forward pass: its key, the layer, what went in and what came out.

    ``input`` is a tuple for layers with several inputs (the residual ``Add``).
    """

    key: str
    layer: Layer
    input: Signal
    output: np.ndarray

    def __repr__(self) -> str:
        shapes = (
            tuple(a.shape for a in self.input)
            if isinstance(self.input, tuple)
            else self.input.shape
        )
        return f"Record({self.key!r}, {type(self.layer).__name__}, {shapes} -> {self.output.shape})"


class Trace(Mapping[str, Record]):
    """Every leaf layer's :class:`Record` from one forward pass, keyed and in execution order.

    On the cuda backend the input, the records and the output are device arrays;
    ``device_input`` says whether the caller gave a device array (results then stay there)."""

    def __init__(
        self, x: np.ndarray, backend: str, device_input: bool = False, vjp_only: bool = False
    ):
        self.input = x
        self.backend = backend
        self.device_input = device_input
        self.vjp_only = vjp_only
        self.output: np.ndarray | None = None
        self.records: dict[str, Record] = {}

    def add(self, key: str, layer: Layer, x: Signal, y: np.ndarray) -> None:
        """Record a leaf's input and output. A ``vjp_only`` trace keeps only what the layer's VJP
        reads (:attr:`Layer.vjp_reads`) and records the rest as :func:`shape_only` stand-ins, so
        that the activations no VJP needs are freed during the forward pass."""
        if self.vjp_only:
            x = x if "input" in layer.vjp_reads else shape_only(x)
            y = y if "output" in layer.vjp_reads else shape_only(y)
        self.records[key] = Record(key, layer, x, y)

    def __getitem__(self, key: str) -> Record:
        try:
            return self.records[key]
        except KeyError:
            raise KeyError(
                f"no layer {key!r} in this trace; recorded layers: {', '.join(self.records)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        lines = "\n".join(f"  {record!r}" for record in self.records.values())
        return f"Trace(\n{lines}\n)"


def shape_only(a: Signal) -> Signal:
    """A read-only stand-in for ``a`` (each array of a tuple): its shape and dtype, no memory
    (every element is one zero, broadcast). Stand-ins of one shape and dtype are one object: they
    cannot be written, so sharing them is safe, and a small model's call makes none: each
    ``np.broadcast_to`` costs a few microseconds, and the small CNN's Gradient makes 18."""
    if isinstance(a, tuple):
        return tuple(shape_only(v) for v in a)
    key = (a.shape, a.dtype)
    view = _stand_ins.get(key)
    if view is None:
        if len(_stand_ins) >= 1024:  # many shapes (a data set of odd sizes): start afresh
            _stand_ins.clear()
        view = np.broadcast_to(np.zeros((), a.dtype), a.shape)
        _stand_ins[key] = view
    return view


_stand_ins: dict[tuple, np.ndarray] = {}


#: ``step(record, signal_at_output) -> signal_at_input``: what the backward walk asks of a leaf.
Step = Callable[[Record, Signal], Signal]


def check_input(x: Any, name: str = "x", backend: str = "numpy") -> np.ndarray:
    """Return ``x`` as an array if it is a finite, non-empty float32 or float64 array, else raise.

    A NumPy array of either dtype is returned as it is (not copied); a nested list becomes an
    array, and a ragged one (rows of different lengths) is a ``ValueError``. An empty array (a
    batch of no samples, or an axis of length 0) is a ``ValueError``: there is nothing to explain.
    A device array (see :mod:`npxai.device`) is accepted, and checked on the device, only for
    ``backend="cuda"``; on the cuda backend a host array is sent to the device once, here."""
    on_device = is_device(x)
    if on_device and backend != "cuda":
        raise TypeError(
            f"{name} is a device array ({type(x).__name__}) but the backend is {backend!r}; "
            f"use backend='cuda', or copy it to the host first"
        )
    if not on_device:
        try:
            x = np.asarray(x)
        except ValueError as error:  # NumPy's "inhomogeneous shape": a ragged nested sequence
            raise ValueError(
                f"{name} must be an array or a nested list of one rectangular shape (a ragged "
                f"list, whose rows differ in length, is not); NumPy says: {str(error)[:200]}"
            ) from None
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{name} must be a float32 or float64 array, got dtype {x.dtype}; "
            f"convert it first, e.g. {name}.astype(np.float32)"
        )
    if x.ndim == 0:
        raise ValueError(f"{name} must have a batch axis, got a scalar")
    if x.size == 0:
        raise ValueError(
            f"{name} is empty (shape {tuple(x.shape)}); give at least one sample, with no axis "
            "of length 0"
        )
    if backend == "cuda":
        x = to_device(x)
        if not count_nonfinite(x):
            return x
        x = to_host(x)  # to name the first bad entry below
    finite = np.isfinite(x)
    if not finite.all():
        where = _first_false(finite)
        raise ValueError(f"{name} contains {x[where]} at index {where}; inputs must be finite")
    return x


def _first_false(mask: np.ndarray) -> tuple[int, ...]:
    """The index of ``mask``'s first ``False`` entry, in row-major order."""
    flat = int(np.argmin(mask.reshape(-1)))
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def _nonfinite(value: np.ndarray) -> str:
    """``""`` if ``value`` has no NaN or Inf, else where its first one is and how many there are."""
    if value.dtype.kind != "f":
        return ""
    finite = np.isfinite(value)
    if finite.all():
        return ""
    where = _first_false(finite)
    count = int(finite.size - np.count_nonzero(finite))
    return f"contains {value[where]} at index {where} ({count} of {value.size} entries non-finite)"


def join(prefix: str, name: str) -> str:
    """Dotted key of child ``name`` under ``prefix`` (``'' + 'fc' -> 'fc'``)."""
    return f"{prefix}.{name}" if prefix else name


class LoadResult(NamedTuple):
    """What ``load_state_dict(strict=False)`` left out, as in torch."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module(ABC):
    """Base class: named parameters, buffers and child modules, as in ``torch.nn.Module``."""

    #: Buffers that a state dict may omit (``BatchNorm``'s ``num_batches_tracked``).
    optional_keys: frozenset[str] = frozenset()

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_device", {})  # parameters on the device
        object.__setattr__(self, "_cache", {})  # derived arrays, see cached()

    def _forget(self) -> None:
        self._device.clear()
        self._cache.clear()
        record_change()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_device": {}, "_cache": {}}  # copies leave the caches behind

    # --- attributes -------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        record_change()
        if isinstance(value, Module):
            self._modules[name] = value
        elif name in self._parameters:
            self._parameters[name] = None if value is None else np.asarray(value)
            self._forget()
        elif name in self._buffers:
            self._buffers[name] = np.asarray(value)
            self._forget()
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        for store in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(store, {})
            if name in values:
                return values[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def register_parameter(self, name: str, value: np.ndarray | None) -> None:
        """Add a parameter (a state-dict entry); ``None`` stands for an absent one (``bias=False``)."""
        self._parameters[name] = value
        self._forget()

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Add a buffer: a state-dict entry that is not a trainable weight (running statistics)."""
        self._buffers[name] = value
        self._forget()

    #: How many derived arrays (an LRP rule's modified parameters) a module keeps: enough for
    #: every term of one rule; an analyzer built anew with new rule objects replaces the oldest.
    CACHE_SIZE = 8

    def cached(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``, made once per ``key`` and kept with this module (the :data:`CACHE_SIZE`
        most recently used) until one of its parameters or buffers is assigned or loaded
        (changing a parameter array in place goes unseen)."""
        cache = self._cache
        if key in cache:
            cache[key] = cache.pop(key)  # most recently used last
        else:
            cache[key] = make()
            while len(cache) > self.CACHE_SIZE:
                del cache[next(iter(cache))]
        return cache[key]

    def parameter_as(
        self,
        name: str,
        dtype: np.dtype,
        modifier: Callable[[np.ndarray], np.ndarray] | None = None,
        device: bool = False,
    ) -> Any:
        """Parameter or buffer ``name`` in ``dtype``, with ``modifier`` applied (an LRP rule's
        ``W+``, ``W + gamma W+``, ...; on the host, whatever the backend), as a host array or
        (``device=True``) a device array. Made once and kept: a modified one is :meth:`cached`;
        the unmodified parameter is the host array itself (cast only if the dtype differs) or
        its device copy, sent once and kept until the parameter changes."""
        value = getattr(self, name)
        if modifier is None and not device:
            return value.astype(dtype, copy=False)
        key = ("device" if device else "host", name, np.dtype(dtype).str, modifier)
        if modifier is None:
            if key not in self._device:
                self._device[key] = to_device(value.astype(dtype, copy=False))
            return self._device[key]

        def make() -> Any:
            modified = modifier(value.astype(dtype, copy=False))
            return to_device(modified) if device else modified

        return self.cached(key, make)

    def add_module(self, name: str, module: Module) -> None:
        """Add a child module under ``name`` (replacing, in its place, a child of that name)."""
        if not isinstance(module, Module):
            raise TypeError(f"child {name!r} must be an npxai Module, got {type(module).__name__}")
        self._modules[name] = module
        record_change()

    # --- the tree ---------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every descendant with its dotted key, depth first, in order."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(join(prefix, name))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        for prefix, module in self.named_modules():
            for name, value in module._parameters.items():
                if value is not None:
                    yield join(prefix, name), value

    def parameters(self) -> Iterator[np.ndarray]:
        for _, value in self.named_parameters():
            yield value

    # --- state dicts ------------------------------------------------------------------------
    def _entries(self) -> dict[str, tuple[Module, str, str]]:
        """Every state-dict key with ``(owning module, local name, '_parameters' | '_buffers')``."""
        entries = {}
        for prefix, module in self.named_modules():
            for store in ("_parameters", "_buffers"):
                for name, value in getattr(module, store).items():
                    if value is not None:
                        entries[join(prefix, name)] = (module, name, store)
        return entries

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameters and buffers by dotted key, as torch names them (arrays are not copied)."""
        return {
            key: getattr(module, store)[name]
            for key, (module, name, store) in self._entries().items()
        }

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, allow_nonfinite: bool = False
    ) -> LoadResult:
        """Copy arrays into this model by key.

        Every problem is reported at once in one :class:`StateDictError`: missing keys and
        unexpected keys (when ``strict``), and, always, shape mismatches, non-numeric values and
        (unless ``allow_nonfinite``) NaN or Inf entries, each naming the key (with the expected and
        found shape, or the first non-finite entry's index and how many there are). Nothing is
        loaded when anything is reported. ``allow_nonfinite=True`` loads non-finite parameters and
        buffers as they are (the computation then propagates NaN as torch does). Floating-point
        values keep their dtype (float16, float32 or float64); the computation casts them to the
        input's dtype. Assigning a parameter directly (``layer.weight = w``) is not checked.
        """
        strict = flag(strict, "load_state_dict: strict")
        allow_nonfinite = flag(allow_nonfinite, "load_state_dict: allow_nonfinite")
        entries = self._entries()
        missing = [
            key
            for key, (module, name, _) in entries.items()
            if key not in state_dict and name not in module.optional_keys
        ]
        unexpected = [key for key in state_dict if key not in entries]
        problems, values, nonfinite = [], {}, False
        for key, (module, name, store) in entries.items():
            if key not in state_dict:
                continue
            value = np.asarray(state_dict[key])
            current = getattr(module, store)[name]
            if value.shape != current.shape:
                problems.append(f"  {key}: expected shape {current.shape}, found {value.shape}")
            elif current.dtype.kind == "f" and value.dtype.kind != "f":
                problems.append(f"  {key}: expected a floating-point array, found {value.dtype}")
            elif value.dtype.kind not in "fiub":
                problems.append(f"  {key}: expected a numeric array, found {value.dtype}")
            elif not allow_nonfinite and (bad := _nonfinite(value)):
                problems.append(f"  {key}: {bad}")
                nonfinite = True
            else:
                dtype = value.dtype if current.dtype.kind == "f" else current.dtype
                values[key] = np.array(value, dtype=dtype)
        if strict:
            problems += [f"  missing key: {key}" for key in missing]
            problems += [f"  unexpected key: {key}" for key in unexpected]
        if problems:
            hint = (
                "\nparameters and buffers must be finite; load_state_dict(..., "
                "allow_nonfinite=True) loads NaN and Inf as they are"
                if nonfinite
                else ""
            )
            raise StateDictError(
                f"state dict does not fit {type(self).__name__} ({len(problems)} problems):\n"
                + "\n".join(problems)
                + hint
            )
        for key, value in values.items():
            module, name, store = entries[key]
            getattr(module, store)[name] = value
            module._forget()
        return LoadResult(missing, unexpected)

    # --- running ----------------------------------------------------------------------------
    def __call__(self, x: Any, backend: str | None = None) -> np.ndarray:
        """The forward pass. ``x`` must be a finite float32 or float64 array; its dtype is the
        computation's dtype. ``backend`` defaults to :func:`npxai.get_backend`. On the cuda
        backend the output is NumPy unless ``x`` is a device array."""
        backend = backend_or_default(backend)
        y = self._run(check_input(x, backend=backend), "", None, backend)
        return deliver(y, is_device(x))

    def trace(self, x: Any, backend: str | None = None, vjp_only: bool = False) -> Trace:
        """The forward pass, recording every leaf's input and output (see :class:`Trace`).
        ``vjp_only`` (host backends): keep only what backpropagation reads (see
        :meth:`Trace.add`), for a gradient that needs no other record."""
        backend = backend_or_default(backend)
        if vjp_only and backend == "cuda":
            raise ValueError("trace: vjp_only is for the host backends (numpy, numba), not cuda")
        trace = Trace(check_input(x, backend=backend), backend, is_device(x), vjp_only)
        trace.output = self._run(trace.input, "", trace, trace.backend)
        return trace

    def backward(self, trace: Trace, signal: np.ndarray, step: Step) -> np.ndarray:
        """Walk the recorded leaves from output to input, applying ``step`` at each one.

        With ``step = vjp_step(trace.backend)`` this is backpropagation of ``signal``
        (``dL/d output``).
        """
        return self._backward(trace, "", signal, step)

    def backward_to(self, trace: Trace, signal: np.ndarray, step: Step, key: str) -> Signal:
        """The signal arriving at leaf ``key``'s output: the backward walk from ``signal`` with
        ``step`` at every layer it meets before ``key``, stopped there (Grad-CAM's gradient at
        its feature layer, CRP's relevance at its concept layer)."""

        def until(record: Record, arriving: Signal) -> Signal:
            if record.key == key:
                raise _Reached(arriving)
            return step(record, arriving)

        try:
            self._backward(trace, "", signal, until)
        except _Reached as reached:
            return reached.signal
        raise ValueError(f"the backward walk never reached layer {key!r}")

    @abstractmethod
    def _run(self, x: Signal, key: str, trace: Trace | None, backend: str) -> np.ndarray:
        """Forward pass of this module, found in the tree at ``key``."""

    @abstractmethod
    def _backward(self, trace: Trace, key: str, signal: Signal, step: Step) -> Signal:
        """Backward walk of this module, found in the tree at ``key``."""

    # --- printing ---------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = []
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


class Layer(Module):
    """A leaf of the tree: it owns the maths of its forward pass and of its input VJP."""

    #: What :meth:`vjp` reads of its recorded ``x`` and ``y`` beyond their shapes and dtypes.
    vjp_reads: frozenset[str] = frozenset({"input", "output"})

    @abstractmethod
    def forward(self, x: Signal, backend: str | None = None) -> np.ndarray:
        """The layer's output for input ``x`` (no input checks; call the layer for those)."""

    @abstractmethod
    def vjp(
        self, x: Signal, y: np.ndarray, grad_y: np.ndarray, backend: str | None = None
    ) -> Signal:
        """``dL/dx`` from ``dL/dy``, given the recorded input ``x`` and output ``y``."""

    def check_input(self, x: Signal) -> None:
        """Raise :class:`LayerInputError` (without the key; the caller adds it) if ``x`` does not fit."""

    def _run(self, x: Signal, key: str, trace: Trace | None, backend: str) -> np.ndarray:
        try:
            self.check_input(x)
        except LayerInputError as error:
            where = f"layer {key!r} ({self!r})" if key else repr(self)
            raise LayerInputError(f"{where}: {error}") from None
        y = self.forward(x, backend)
        if trace is not None:
            trace.add(key, self, x, y)
        return y

    def _backward(self, trace: Trace, key: str, signal: Signal, step: Step) -> Signal:
        return step(trace[key], signal)


class _Reached(Exception):
    """Stops :meth:`Module.backward_to` at its layer, carrying the signal that arrived there."""

    def __init__(self, signal: Signal):
        self.signal = signal


def keys_within(key: str, keys: Iterable[str]) -> list[str]:
    """The keys of ``keys`` that are ``key`` or lie inside it (``"layer4"``: ``"layer4"``,
    ``"layer4.0.conv1"``, ...; not ``"layer40"``), in order."""
    return [k for k in keys if k == key or k.startswith(key + ".")]


def leaf_key(model: Module, layer: str | int, owner: str, index: bool = False) -> str:
    """The key of the leaf whose output is ``layer``'s: the leaf itself, or a container's last
    leaf (a key of ``model.named_modules()``); with ``index=True`` an int may also pick the
    ``layer``-th leaf, negative from the end. Anything else is a ``ValueError`` naming
    ``owner``."""
    leaves = [key for key, m in model.named_modules() if isinstance(m, Layer)]
    if index and isinstance(layer, int | np.integer) and not isinstance(layer, bool):
        if not -len(leaves) <= layer < len(leaves):
            raise ValueError(
                f"{owner}: layer index {layer} is out of range for a model of {len(leaves)} leaf "
                f"layers; expected {-len(leaves)} <= index < {len(leaves)}"
            )
        return leaves[layer]
    inside = keys_within(layer, leaves) if isinstance(layer, str) and layer else []
    if not inside:
        keys = [key for key, _ in model.named_modules() if key]
        listing = f"{', '.join(keys[:12])}{', ...' if len(keys) > 12 else ''}"
        expected = (f"expected a key of model.named_modules() ({listing}) or a leaf index"
                    if index else f"its layers include {listing}")  # fmt: skip
        raise ValueError(f"{owner}: the model has no layer {layer!r}; {expected}")
    return inside[-1]


def vjp_step(backend: str) -> Step:
    """The backpropagation step: each layer's vector-Jacobian product at the recorded point."""

    def step(record: Record, grad_y: np.ndarray) -> Signal:
        return record.layer.vjp(record.input, record.output, grad_y, backend)

    return step
