"""``npxai.load``: tensors from PyTorch, safetensors and NumPy files, without torch.

Readable formats, recognised by their content (not by their suffix):

- ``torch.save`` zip files (PyTorch >= 1.6): ``<name>/data.pkl`` plus one raw file per storage;
- ``torch.save`` legacy files (``_use_new_zipfile_serialization=False``, PyTorch < 1.6): a stream
  of pickles followed by the raw storages;
- ``.safetensors``: an 8-byte little-endian header length, a JSON header, then raw data;
- ``.npz``: NumPy archives of ``.npy`` members (never unpickled).

Pickles are not given to :mod:`pickle`: :class:`_Unpickler` reads their opcodes with
:func:`pickletools.genops` and carries out only an allow-list of them (:data:`PICKLE_OPCODES`:
literals, containers, the memo, globals, ``REDUCE``, ``BUILD`` and ``BINPERSID``). A global
resolves only if it is in :data:`ALLOWED_GLOBALS`, to an immutable marker; ``REDUCE`` on a marker
runs npxai's own stand-in for that torch function, which records what to build. No callable from
the file, and no object that outlives the load, is ever reached. Any other global (a pickled
``nn.Module``, ``os.system``, ``builtins.eval``) or opcode (``EXT1``, ``INST``, ``NEWOBJ``, ...)
is refused with :class:`~npxai.errors.UnsafePickleError` naming it. bfloat16 values are widened
exactly to float32 (NumPy has no bfloat16); every other dtype is kept.
"""

from __future__ import annotations

import io
import json
import lzma
import math
import os
import pickletools
import re
import stat
import struct
import tokenize
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import LoadError, MissingFileError, UnsafePickleError

#: torch dtype names (of storages and of ``torch.<dtype>``) and the NumPy dtype they hold on disk.
TORCH_DTYPES = {
    "float64": np.float64, "float32": np.float32, "float16": np.float16,
    "bfloat16": np.uint16,  # raw bits; widened to float32 after reading
    "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8,
    "uint64": np.uint64, "uint32": np.uint32, "uint16": np.uint16, "uint8": np.uint8,
    "bool": np.bool_, "complex64": np.complex64, "complex128": np.complex128,
}  # fmt: skip
LEGACY_STORAGES = {
    "DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128",
}  # fmt: skip
SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}  # fmt: skip
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
MAX_SAFETENSORS_HEADER = 100 * 2**20
#: Tuples and frozensets (the containers that can be hashed) nest at most this deep in a pickle.
MAX_DEPTH = 100
#: NumPy's limit on the number of dimensions of an array.
MAX_DIMS = 64
#: The default ``max_bytes`` of :func:`load` is this many times the file's size, plus
#: :data:`MIN_BUDGET` bytes.
BUDGET_PER_FILE_BYTE = 8
MIN_BUDGET = 2**26
#: The opcodes a pickle may use; every other one is refused before it does anything.
PICKLE_OPCODES = frozenset(
    "PROTO FRAME STOP MARK POP POP_MARK DUP "
    "NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT "
    "UNICODE SHORT_BINUNICODE BINUNICODE BINUNICODE8 BINBYTES SHORT_BINBYTES BINBYTES8 "
    "EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST LIST APPEND APPENDS "
    "EMPTY_DICT DICT SETITEM SETITEMS EMPTY_SET ADDITEMS FROZENSET "
    "GET BINGET LONG_BINGET PUT BINPUT LONG_BINPUT MEMOIZE "
    "GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID".split()
)


@dataclass(frozen=True)
class _Global:
    """What an allowed global resolves to: an immutable marker (its name, what it stands for,
    and for storage types and dtypes the dtype), never an object shared between loads."""

    name: str
    role: str  # "OrderedDict", "call" (a torch rebuild function), "storage" or "dtype"
    dtype: str | None = None


def _allowed_globals() -> MappingProxyType:
    allowed = {("collections", "OrderedDict"): _Global("collections.OrderedDict", "OrderedDict")}
    for function in ("_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
                     "_rebuild_parameter_with_state"):  # fmt: skip
        allowed[("torch._utils", function)] = _Global(f"torch._utils.{function}", "call")
    for module in ("torch", "torch.storage"):
        allowed[(module, "UntypedStorage")] = _Global(
            f"{module}.UntypedStorage", "storage", "uint8"
        )
    for storage, dtype in LEGACY_STORAGES.items():
        allowed[("torch", storage)] = _Global(f"torch.{storage}", "storage", dtype)
    for dtype in TORCH_DTYPES:
        allowed[("torch", dtype)] = _Global(f"torch.{dtype}", "dtype", dtype)
    return MappingProxyType(allowed)


#: Every global a pickle may name, and the immutable marker npxai puts in its place.
ALLOWED_GLOBALS = _allowed_globals()


def _clip(text: object) -> str:
    """A string from a file, cut to 40 characters; anything else described."""
    if not isinstance(text, str):
        return _describe(text)
    return text[:40] + ("..." if len(text) > 40 else "")


def _describe(value: object) -> str:
    """A short description of a value from a file, bounded in length whatever the value."""
    if isinstance(value, str | bytes):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, bool | float | type(None)) or (
        isinstance(value, int) and value.bit_length() <= 64
    ):
        return repr(value)
    if isinstance(value, int):
        return f"an int of {value.bit_length()} bits"
    if isinstance(value, _Global):
        return value.name
    if isinstance(value, tuple | list | dict | set | frozenset):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, _TensorRef):
        return "a tensor"
    return f"a {type(value).__name__}"


def _names(keys: list) -> str:
    """At most ten keys, described, as a list: ``['a', 'b', ... (12 in all)]``."""
    more = f", ... ({len(keys)} in all)" if len(keys) > 10 else ""
    return "[" + ", ".join(_describe(k) for k in keys[:10]) + more + "]"


class _Budget:
    """The bytes a load may still allocate for pickles, storages and arrays (``max_bytes`` of
    :func:`load`); :meth:`take` is called before each allocation."""

    def __init__(self, path: Path, limit: int):
        self.path, self.limit, self.left = path, limit, limit

    def take(self, nbytes: int, what: str) -> None:
        if nbytes > self.left:
            raise LoadError(
                f"{self.path}: {what} needs {nbytes} bytes, more than the {self.left} left of "
                f"max_bytes={self.limit} (by default {BUDGET_PER_FILE_BYTE} times the file size "
                f"plus {MIN_BUDGET}); pass a larger max_bytes= to npxai.load for a file that "
                "really holds that much"
            )
        self.left -= nbytes


class _Storage:
    """A storage named by a pickle (created per load): the dtype its tensors read it as (first
    the dtype ``named`` by the pickle), its element count as named, its size in bytes, its byte
    order and, once read, its raw bytes."""

    __slots__ = ("dtype", "named", "numel", "nbytes", "order", "raw")

    def __init__(self, dtype: str, numel: int):
        self.dtype = self.named = dtype
        self.numel, self.order, self.raw = numel, "little", b""
        self.nbytes = numel * np.dtype(TORCH_DTYPES[dtype]).itemsize


def _output_dtype(dtype: str) -> np.dtype:
    """The dtype npxai returns for a torch dtype: its own, but float32 for bfloat16."""
    return np.dtype(np.float32 if dtype == "bfloat16" else TORCH_DTYPES[dtype])


class _TensorRef:
    """A tensor named by a pickle: a strided view of a storage, built into an array at the end."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage: object, offset: object, size: object, stride: object, dtype: str):
        self.storage, self.offset, self.size, self.stride, self.dtype = (
            storage, offset, size, stride, dtype,
        )  # fmt: skip

    def check(self, where: str) -> None:
        """Raise a LoadError starting with ``where`` unless this is a storage's view: sizes,
        strides and offset non-negative ints, at most :data:`MAX_DIMS` dimensions. (Checked
        only for the tensors returned, once their names are known.)"""
        if not isinstance(self.storage, _Storage):
            raise LoadError(f"{where} is rebuilt from {_describe(self.storage)}, not a storage")
        size, stride = self.size, self.stride
        if not (isinstance(size, tuple) and isinstance(stride, tuple)):
            raise LoadError(f"{where} has size {_describe(size)} and stride {_describe(stride)}")
        ints = (self.offset, *size, *stride)
        if (
            not all(type(v) is int and v >= 0 for v in ints)
            or len(size) != len(stride)
            or len(size) > MAX_DIMS
        ):
            raise LoadError(
                f"{where} has a bad geometry: offset {_describe(self.offset)}, size "
                f"{_describe(size)} and stride {_describe(stride)} of non-negative ints (at most "
                f"{MAX_DIMS}) expected"
            )

    @property
    def nbytes(self) -> int:
        return math.prod(self.size) * _output_dtype(self.dtype).itemsize

    def to_array(self, where: str) -> np.ndarray:
        """The tensor's values as an array of its own (not a view of the storage)."""
        out = _output_dtype(self.dtype)
        if math.prod(self.size) == 0:
            return np.zeros(self.size, dtype=out)
        disk = np.dtype(TORCH_DTYPES[self.dtype])
        count = len(self.storage.raw) // disk.itemsize
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if last >= count:
            raise LoadError(
                f"{where} of size {self.size} reaches element {last} of a storage of {count}"
            )
        data = np.frombuffer(
            self.storage.raw,
            dtype=disk.newbyteorder("<" if self.storage.order == "little" else ">"),
            count=count,
        )
        byte_strides = tuple(s * disk.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, byte_strides)
        array = view.astype(disk)
        return _widen_bfloat16(array) if self.dtype == "bfloat16" else array


def _widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) to float32: the same sign, exponent and leading mantissa bits."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):  # noqa: E501
    """Stands in for ``torch._utils._rebuild_tensor_v2``: a typed storage's strided view."""
    return _TensorRef(storage, storage_offset, size, stride, getattr(storage, "dtype", ""))


def _rebuild_tensor_v3(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None
):  # noqa: E501
    """Stands in for ``torch._utils._rebuild_tensor_v3``: an untyped storage read as ``dtype``."""
    if not (isinstance(storage, _Storage) and isinstance(dtype, _Global) and dtype.role == "dtype"):
        raise LoadError("_rebuild_tensor_v3 needs an untyped storage and a torch dtype")
    if storage.dtype == "uint8" and dtype.dtype != "uint8":
        if storage.nbytes % np.dtype(TORCH_DTYPES[dtype.dtype]).itemsize:
            raise LoadError(f"a storage of {storage.nbytes} bytes read as {dtype.dtype}")
        storage.dtype = dtype.dtype
    if storage.dtype != dtype.dtype:
        raise LoadError(f"a {storage.dtype} storage read as {dtype.dtype}")
    return _TensorRef(storage, storage_offset, size, stride, dtype.dtype)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """Stands in for ``torch._utils._rebuild_parameter(_with_state)``: the parameter's data."""
    if not isinstance(data, _TensorRef):
        raise LoadError("a parameter was rebuilt from something that is not a tensor")
    return data


_CALLS = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
}


class _Unpickler:
    """Carries out a pickle's opcodes (:data:`PICKLE_OPCODES` only), resolving globals to the
    markers of :data:`ALLOWED_GLOBALS`; storages named by persistent ids go to ``storages``.

    Every tuple and frozenset made records its nesting depth, at most :data:`MAX_DEPTH`, so that
    no key hashed here (hashing recurses in C, unguarded) can overflow the stack. Lists and dicts
    cannot be hashed, and nothing here recurses into them."""

    def __init__(self, path: Path, storages: dict[str, _Storage]):
        self.path, self.storages = path, storages
        self.depths: dict[int, int] = {}

    def load(self, file: Any) -> Any:
        stack: list[Any] = []
        marks: list[list[Any]] = []
        memo: dict[int, Any] = {}
        for opcode, arg, pos in pickletools.genops(file):
            name = opcode.name
            if name not in PICKLE_OPCODES:
                raise UnsafePickleError(
                    f"{self.path}: refusing pickle opcode {name} at byte {pos}; npxai only "
                    "unpickles tensors and containers of them, and executed nothing from this file"
                )
            if name == "STOP":  # genops ends with it (or raises ValueError before)
                break
            if name == "MARK":
                marks.append(stack)
                stack = []
            elif name in ("TUPLE", "LIST", "DICT", "POP_MARK", "APPENDS", "SETITEMS",
                          "ADDITEMS", "FROZENSET"):  # fmt: skip
                items, stack = stack, marks.pop()
                self._marked(name, items, stack, pos)
            else:
                self._step(name, arg, stack, memo, pos)
        return stack.pop()

    def _nest(self, items: tuple | frozenset, pos: int) -> None:
        depth = 1 + max(
            (self.depths.get(id(v), 1) for v in items if isinstance(v, tuple | frozenset)),
            default=0,
        )
        if depth > MAX_DEPTH:
            raise LoadError(
                f"{self.path}: tuples nested deeper than {MAX_DEPTH} at byte {pos} of a pickle"
            )
        self.depths[id(items)] = depth

    def _marked(self, name: str, items: list, stack: list, pos: int) -> None:
        if name in ("TUPLE", "FROZENSET"):
            made = tuple(items) if name == "TUPLE" else frozenset(items)
            self._nest(made, pos)
            stack.append(made)
        elif name == "LIST":
            stack.append(items)
        elif name == "DICT":
            stack.append(self._setitems({}, items))
        elif name == "APPENDS":
            self._target(stack, list, "APPENDS").extend(items)
        elif name == "SETITEMS":
            self._setitems(self._target(stack, dict, "SETITEMS"), items)
        elif name == "ADDITEMS":
            self._target(stack, set, "ADDITEMS").update(items)

    def _target(self, stack: list, kind: type, name: str) -> Any:
        if not stack or not isinstance(stack[-1], kind):
            found = _describe(stack[-1]) if stack else "nothing"
            raise UnsafePickleError(
                f"{self.path}: refusing {name} on {found}; npxai only fills the {kind.__name__}s "
                "the pickle itself made"
            )
        return stack[-1]

    def _setitems(self, target: dict, items: list) -> dict:
        if len(items) % 2:
            raise LoadError(f"{self.path}: odd number of items to set in a dict")
        for k in range(0, len(items), 2):
            target[items[k]] = items[k + 1]
        return target

    def _step(self, name: str, arg: Any, stack: list, memo: dict, pos: int) -> None:
        if name in ("PROTO", "FRAME"):
            return
        if arg is not None and name not in ("GET", "BINGET", "LONG_BINGET", "PUT", "BINPUT",
                                            "LONG_BINPUT", "GLOBAL"):  # fmt: skip
            stack.append(arg)  # a literal: an int, float, str or bytes
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name in ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            n = ("EMPTY_TUPLE", "TUPLE1", "TUPLE2", "TUPLE3").index(name)
            if n > len(stack):
                raise LoadError(f"{self.path}: {name} at byte {pos} on a short stack")
            made = tuple(stack[len(stack) - n :])
            del stack[len(stack) - n :]
            self._nest(made, pos)
            stack.append(made)
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_SET"):
            stack.append({"EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_SET": set}[name]())
        elif name == "APPEND":
            value = stack.pop()
            self._target(stack, list, name).append(value)
        elif name == "SETITEM":
            value, key = stack.pop(), stack.pop()
            self._target(stack, dict, name)[key] = value
        elif name == "POP":
            stack.pop()
        elif name == "DUP":
            stack.append(stack[-1])
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attribute = arg.partition(" ")
            else:
                attribute, module = stack.pop(), stack.pop()
            stack.append(self._global(module, attribute))
        elif name == "REDUCE":
            args = stack.pop()
            stack[-1] = self._call(stack[-1], args)
        elif name == "BUILD":
            state = stack.pop()
            self._build(stack[-1], state)
        elif name == "BINPERSID":
            stack.append(self._persistent(stack.pop()))

    def _global(self, module: object, name: object) -> _Global:
        marker = ALLOWED_GLOBALS.get((module, name))
        if marker is None:
            where = f"{_clip(module)}.{_clip(name)}"
            hint = (
                " (a pickled Python object such as a whole nn.Module: save model.state_dict() "
                "instead)"
                if isinstance(module, str)
                and module.startswith(("torch", "torchvision", "__main__"))
                else ""
            )
            raise UnsafePickleError(
                f"{self.path}: refusing to load global '{where}'{hint}; npxai only "
                "unpickles tensors and dicts of them, and executed nothing from this file"
            )
        return marker

    def _call(self, function: object, args: object) -> Any:
        if not isinstance(args, tuple):
            raise LoadError(f"{self.path}: REDUCE with arguments {_describe(args)}, not a tuple")
        if isinstance(function, _Global) and function.role == "OrderedDict" and args == ():
            return OrderedDict()
        if isinstance(function, _Global) and function.role == "call":
            try:
                return _CALLS[function.name](*args)
            except LoadError as error:
                raise LoadError(f"{self.path}: {error} (in {function.name})") from None
        raise UnsafePickleError(
            f"{self.path}: refusing to call {_describe(function)} with {_describe(args)}; npxai "
            "calls only its stand-ins for torch's rebuild functions and OrderedDict()"
        )

    def _build(self, target: object, state: object) -> None:
        """``BUILD`` (set an object's state) only for what ``torch.save`` writes: the
        ``_metadata`` of a state dict, an :class:`OrderedDict` made by this load. The state is
        checked to be a dict and dropped (``npxai.load`` returns arrays only)."""
        if type(target) is OrderedDict and isinstance(state, dict):
            return
        what = "a tensor" if isinstance(target, _TensorRef) else _describe(target)
        raise UnsafePickleError(
            f"{self.path}: refusing to set the state of {what} (to {_describe(state)}); npxai "
            "sets no object's state but a state dict's metadata"
        )

    def _persistent(self, pid: object) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise LoadError(f"{self.path}: unknown persistent id {_describe(pid)}")
        storage_type, key, location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise LoadError(f"{self.path}: storage views (legacy view_metadata) are not supported")
        if not (isinstance(storage_type, _Global) and storage_type.role == "storage"):
            raise LoadError(f"{self.path}: a storage of type {_describe(storage_type)}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise LoadError(
                f"{self.path}: bad storage reference: key {_describe(key)}, size {_describe(numel)}"
            )
        if not (isinstance(location, str) and DEVICE.fullmatch(location)):
            # torch refuses a location that names no device; npxai reads every storage to the
            # host, wherever it was saved
            raise LoadError(
                f"{self.path}: storage {_describe(key)} has location {_describe(location)}, "
                "not a device such as 'cpu' or 'cuda:0'"
            )
        storage = self.storages.setdefault(key, _Storage(storage_type.dtype, numel))
        if storage.numel != numel:
            raise LoadError(
                f"{self.path}: storage {_describe(key)} named with sizes {storage.numel}, {numel}"
            )
        return storage


def check_file(path: str | os.PathLike, kind: str) -> None:
    """Raise :class:`~npxai.errors.LoadError` naming ``path`` unless it is a regular file (or a
    link to one): :class:`~npxai.errors.MissingFileError` (also a ``FileNotFoundError``) when
    nothing is there (a dangling link included), a ``LoadError`` saying so for a directory, a
    pipe, a device such as ``/dev/zero``, a loop of symbolic links or a path that cannot be
    examined (none of which is opened, so that a FIFO cannot hang the caller). ``kind`` names
    what the file should be in the message (``"weight"``: ``"w.pt: no such weight file"``)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise MissingFileError(f"{path}: no such {kind} file") from None
    except OSError as error:  # a loop of links (ELOOP), a name too long, no permission
        raise LoadError(f"{path}: cannot examine this {kind} file ({error.strerror})") from None
    article = "an" if kind[0] in "aeiou" else "a"
    if stat.S_ISDIR(mode):
        raise LoadError(f"{path}: is a directory, not {article} {kind} file")
    if not stat.S_ISREG(mode):
        raise LoadError(
            f"{path}: not a regular file (a pipe, socket or device); {kind} file expected"
        )


def load(
    path: str | os.PathLike, key: str | None = None, max_bytes: int | None = None
) -> dict[str, np.ndarray]:
    """Read the named arrays of a weight file: ``{name: array}``.

    ``key`` selects a sub-dict of a torch checkpoint (``key="state_dict"``). ``max_bytes``
    bounds what the load allocates: a zip's pickle, the storages it reads and the arrays it
    returns, summed over the file, each checked against the sizes the file declares before it
    is read or allocated. By default it is :data:`BUDGET_PER_FILE_BYTE` (8) times the file's size plus
    :data:`MIN_BUDGET` (64 MiB), so that a small file cannot make huge arrays (a deflate bomb,
    zero-stride views); pass a larger value for a checkpoint that really expands that much.

    Raises :class:`~npxai.errors.LoadError` naming the file (and the tensor, where one is at
    fault) for a file that cannot be read (its subclass :class:`~npxai.errors.MissingFileError`,
    also a ``FileNotFoundError``, for one that is not there; see :func:`check_file`), and
    :class:`~npxai.errors.UnsafePickleError` for a pickle that names a global or an opcode outside
    the allow-list.
    """
    path = Path(path)
    check_file(path, "weight")
    if max_bytes is not None and (
        not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0
    ):
        raise ValueError(f"max_bytes must be a non-negative int or None, not {max_bytes!r:.40}")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as error:  # no permission, or an I/O error
        raise LoadError(f"{path}: cannot read this weight file ({error.strerror})") from None
    limit = BUDGET_PER_FILE_BYTE * size + MIN_BUDGET if max_bytes is None else max_bytes
    budget = _Budget(path, limit)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        with _wrap_corruption(path, "zip file"), zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names and head[:4] == b"PK\x03\x04":
                raise LoadError(
                    f"{path}: a zip file whose central directory lists no members, though the "
                    "file starts with one"
                )
            if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                return _select(_read_torch_zip(archive, path, budget), path, key, budget)
            return _no_key(_read_npz(archive, path, budget), path, key)
    if head[:1] == b"\x80":
        with _wrap_corruption(path, "legacy torch file"), open(path, "rb") as f:
            return _select(_read_torch_legacy(f, path, budget), path, key, budget)
    if len(head) == 9 and head[8:9] == b"{":
        with _wrap_corruption(path, "safetensors file"):
            return _no_key(_read_safetensors(path, budget), path, key)
    raise LoadError(
        f"{path}: unknown format; expected a torch.save file (zip or legacy), a .safetensors "
        "file or an .npz archive"
    )


#: What reading a damaged file can raise (from zipfile, zlib, bz2, lzma, numpy's .npy header
#: parser, json, struct and the unpickler); each becomes a LoadError naming the file.
DAMAGED = (
    EOFError, zipfile.BadZipFile, struct.error, ValueError, KeyError, IndexError, TypeError,
    AttributeError, OverflowError, RecursionError, MemoryError, NotImplementedError, RuntimeError,
    zlib.error, OSError, lzma.LZMAError, tokenize.TokenError, SyntaxError,
)  # fmt: skip


@contextmanager
def _wrap_corruption(where: str | Path, kind: str) -> Iterator[None]:
    """Turn the low-level errors of a damaged file into one :class:`LoadError` starting with
    ``where`` (the file, or the file and its member)."""
    try:
        yield
    except LoadError:
        raise
    except DAMAGED as error:
        detail = str(error)
        detail = detail[:200] + "..." if len(detail) > 200 else detail
        raise LoadError(
            f"{where}: corrupt or truncated {kind} ({type(error).__name__}: {detail})"
        ) from error


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, nbytes: int, path: Path) -> bytes:
    """The first ``nbytes`` of a zip member, decompressing no more than that (whatever the
    compressed data holds); fewer bytes than ``nbytes`` is an error, and so is a stored (not
    compressed) member whose compressed size is not its size (torch's reader refuses it)."""
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise LoadError(
            f"{path}: member {_describe(info.filename)} is stored uncompressed, but its sizes "
            f"differ ({info.compress_size} and {info.file_size} bytes)"
        )
    with archive.open(info) as f:
        raw = f.read(nbytes)
    if len(raw) != nbytes:
        raise LoadError(
            f"{path}: member {_describe(info.filename)} holds {len(raw)} bytes, not the {nbytes} "
            "its header declares"
        )
    return raw


#: A storage's location as torch writes it: a device type, optionally with an index.
DEVICE = re.compile(r"[a-z][a-z0-9_]*(:[0-9]+)?")

#: The small text records of a torch zip that torch reads and checks before the pickle: the
#: archive's version (``.data/version`` in newer files, else ``version``), the format version,
#: the storage alignment, the byte order, the serialisation id.
TORCH_RECORDS = (
    "version", ".data/version", ".format_version", ".storage_alignment", "byteorder",
    ".data/serialization_id",
)  # fmt: skip
MAX_RECORD = 256


def _torch_records(archive: zipfile.ZipFile, prefix: str, path: Path) -> dict[str, str]:
    """The small records of a torch zip, checked as torch checks them: every member in the
    archive's one folder (``prefix``), a version that parses as an integer, an integer storage
    alignment, a serialisation id that is UTF-8, where there are such records (torch also
    requires the version; npxai does not); each read whole, so its CRC is checked."""
    outside = [n for n in archive.namelist() if not prefix or not n.startswith(prefix)]
    if outside:
        raise LoadError(
            f"{path}: member {_describe(outside[0])} is not in the archive's folder "
            f"{_describe(prefix)} (torch refuses such an archive)"
        )
    records = {}
    for name in TORCH_RECORDS:
        if prefix + name not in archive.namelist():
            continue
        info = archive.getinfo(prefix + name)
        if info.file_size > MAX_RECORD:
            raise LoadError(f"{path}: record {prefix}{name} of {info.file_size} bytes is too long")
        raw = _read_member(archive, info, info.file_size, path)
        try:
            records[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LoadError(f"{path}: record {prefix}{name} is not UTF-8 text") from None
    for name in ("version", ".data/version", ".storage_alignment"):
        if name in records and not re.fullmatch(
            r"[ \t\n\r\f\v]*[0-9]+[ \t\n\r\f\v]*", records[name]
        ):
            raise LoadError(
                f"{path}: record {prefix}{name} is {_describe(records[name])}, not an integer"
            )
    return records


def _read_torch_zip(archive: zipfile.ZipFile, path: Path, budget: _Budget) -> Any:
    pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise LoadError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    records = _torch_records(archive, prefix, path)
    order = records.get("byteorder", "little")
    if order not in ("little", "big"):
        raise LoadError(
            f"{path}: unknown endianness {_describe(order)} in {prefix}byteorder "
            "('little' or 'big' expected)"
        )
    info = archive.getinfo(pickles[0])
    budget.take(info.file_size, pickles[0])
    payload = _read_member(archive, info, info.file_size, path)
    storages: dict[str, _Storage] = {}
    result = _Unpickler(path, storages).load(io.BytesIO(payload))
    for key, storage in storages.items():
        name = prefix + "data/" + key
        try:
            info = archive.getinfo(name)
        except KeyError:
            raise LoadError(f"{path}: storage {_describe(key)} has no member {name}") from None
        budget.take(storage.nbytes, f"storage {_describe(key)}")
        if info.file_size != storage.nbytes:  # torch refuses a record of another size
            raise LoadError(
                f"{path}: storage {_describe(key)} holds {info.file_size} bytes, where its "
                f"{storage.numel} elements of {storage.dtype} take {storage.nbytes}"
            )
        storage.raw = _read_member(archive, info, storage.nbytes, path)
        # torch byte-swaps a storage as the type its pickle names: an untyped one (of bytes,
        # read as another dtype by _rebuild_tensor_v3) never
        storage.order = order if storage.named == storage.dtype else "little"
    return result


class _Clamped:
    """A file whose reads never ask for more than what is left of it, so that a length claimed
    by a pickle cannot make the reader allocate more than the file holds."""

    def __init__(self, f: io.BufferedReader):
        self.f, self.size = f, os.fstat(f.fileno()).st_size

    def read(self, n: int = -1) -> bytes:
        return self.f.read(max(0, min(n, self.size - self.f.tell())))

    def readline(self) -> bytes:
        return self.f.readline()

    def tell(self) -> int:
        return self.f.tell()


def _read_torch_legacy(f: io.BufferedReader, path: Path, budget: _Budget) -> Any:
    """A legacy file: magic, protocol and system info (whose ``little_endian`` flag torch ignores:
    storages are little-endian on disk), the pickled object, its storage keys, the storages."""
    clamped = _Clamped(f)

    def header() -> Any:
        return _Unpickler(path, {}).load(clamped)

    magic = header()
    if magic != LEGACY_MAGIC:
        raise LoadError(
            f"{path}: a pickle, but not a torch.save file (magic number {_describe(magic)})"
        )
    protocol = header()
    if protocol != LEGACY_PROTOCOL:
        raise LoadError(f"{path}: unsupported legacy torch protocol {_describe(protocol)}")
    header()  # sys_info
    storages: dict[str, _Storage] = {}
    result = _Unpickler(path, storages).load(clamped)
    keys = header()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise LoadError(f"{path}: the list of storages does not match the tensors that use them")
    for key in keys:
        storage = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        remaining = clamped.size - f.tell()
        if numel != storage.numel or storage.nbytes > remaining:
            raise LoadError(
                f"{path}: storage {key} claims {numel} elements of {storage.numel} expected, "
                f"with {remaining} bytes left in the file"
            )
        budget.take(storage.nbytes, f"storage {_describe(key)}")
        storage.raw = f.read(storage.nbytes)
    return result


def _select(obj: Any, path: Path, key: str | None, budget: _Budget) -> dict[str, np.ndarray]:
    """The mapping of names to arrays in an unpickled object (or in its entry ``key``)."""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            found = _names(list(obj)) if isinstance(obj, dict) else _describe(obj)
            raise LoadError(f"{path}: no entry {key!r} to select; the file holds {found}")
        obj = obj[key]
    if isinstance(obj, _TensorRef):
        raise LoadError(f"{path}: holds a single tensor, not a dict of named tensors")
    if not isinstance(obj, dict):
        raise LoadError(f"{path}: holds {_describe(obj)}, not a dict of named tensors")
    others = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, _TensorRef))]
    if others:
        dicts = [k for k, v in obj.items() if isinstance(v, dict)]
        hint = (
            f"; select a sub-dict with key= (--key on the command line), one of {_names(dicts)}"
            if dicts
            else ""
        )
        raise LoadError(f"{path}: entries {_names(others)} are not tensors{hint}")
    for name, tensor in obj.items():
        tensor.check(f"{path}: tensor {_describe(name)}")
        budget.take(tensor.nbytes, f"tensor {_describe(name)}")
    return {
        name: tensor.to_array(f"{path}: tensor {_describe(name)}") for name, tensor in obj.items()
    }


def _no_key(arrays: dict[str, np.ndarray], path: Path, key: str | None) -> dict[str, np.ndarray]:
    if key is not None:
        raise LoadError(
            f"{path}: key={key!r:.60} applies to torch checkpoints only; this file is flat"
        )
    return arrays


def _read_safetensors(path: Path, budget: _Budget) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    if length > min(len(raw) - 8, MAX_SAFETENSORS_HEADER):
        raise LoadError(f"{path}: safetensors header of {length} bytes does not fit the file")
    header = json.loads(raw[8 : 8 + length])
    if not isinstance(header, dict):
        raise LoadError(f"{path}: safetensors header is not a JSON object")
    data = memoryview(raw)[8 + length :]
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"{path}: tensor {_describe(name)}"
        if not isinstance(info, dict) or info.get("dtype") not in SAFETENSORS_DTYPES:
            dtype = info.get("dtype") if isinstance(info, dict) else info
            raise LoadError(f"{where} has unsupported dtype {_describe(dtype)}")
        dtype_name = SAFETENSORS_DTYPES[info["dtype"]]
        dtype = np.dtype(TORCH_DTYPES[dtype_name])
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (
            isinstance(shape, list)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and len(shape) <= MAX_DIMS
            and all(isinstance(n, int) and n >= 0 for n in (*shape, *offsets))
        ):
            raise LoadError(f"{where} has a bad shape or offsets")
        begin, end = offsets
        if not begin <= end <= len(data) or end - begin != math.prod(shape) * dtype.itemsize:
            raise LoadError(
                f"{where} of shape {shape} and dtype {info['dtype']} does not fit "
                f"its data offsets [{begin}, {end}) in {len(data)} bytes of data"
            )
        budget.take(
            math.prod(shape) * _output_dtype(dtype_name).itemsize, f"tensor {_describe(name)}"
        )
        tensors.append((begin, end, name, dtype_name, dtype, shape))
    covered = 0  # as safetensors' reader: the tensors tile the data, in order, no gap, no overlap
    for begin, end, name, *_ in sorted(tensors, key=lambda t: t[:2]):
        if begin != covered:
            raise LoadError(
                f"{path}: tensor {_describe(name)} starts at byte {begin} of the data where "
                f"{covered} was expected (the tensors must cover the data without gaps or overlaps)"
            )
        covered = end
    if covered != len(data):
        raise LoadError(
            f"{path}: the tensors cover {covered} of the {len(data)} bytes of data (safetensors "
            "refuses a file that they do not fully cover)"
        )
    arrays = {}
    for begin, end, name, dtype_name, dtype, shape in tensors:
        array = _from_little(data[begin:end], dtype).reshape(shape)
        arrays[name] = _widen_bfloat16(array) if dtype_name == "bfloat16" else array
    return arrays


def _from_little(raw: bytes | memoryview, dtype: np.dtype) -> np.ndarray:
    """A copy, in native byte order, of little-endian values."""
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype)


def _read_npz(archive: zipfile.ZipFile, path: Path, budget: _Budget) -> dict[str, np.ndarray]:
    """The arrays of an .npz: every member must be a ``.npy`` of numbers (booleans, integers,
    floats, complex); each header's shape is checked against the member's declared size and the
    budget before anything is allocated. Never unpickles."""
    arrays = {}
    for info in archive.infolist():
        where = f"{path}: member {_describe(info.filename)}"
        if not info.filename.endswith(".npy"):
            raise LoadError(f"{where} is not a .npy array (an .npz archive holds only .npy files)")
        with _wrap_corruption(where, ".npy member"), archive.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise LoadError(f"{where} has .npy format version {version}; 1.0 or 2.0 expected")
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            if dtype.kind not in "biufc" or dtype.hasobject:
                raise LoadError(
                    f"{where} holds dtype {_describe(str(dtype))}; npxai reads arrays of booleans "
                    "and numbers only, never pickled objects"
                )
            if len(shape) > MAX_DIMS or any(n < 0 for n in shape):
                raise LoadError(f"{where} has a bad shape")
            nbytes = math.prod(shape) * dtype.itemsize
            if nbytes > info.file_size - f.tell():
                raise LoadError(
                    f"{where} claims shape {shape} of {dtype} ({nbytes} bytes) but holds "
                    f"{info.file_size - f.tell()} bytes after its header"
                )
            budget.take(nbytes, f"array {_describe(info.filename)}")
            raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise LoadError(f"{where} holds {len(raw)} bytes of data, not {nbytes}")
        values = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
        arrays[info.filename[: -len(".npy")]] = values.reshape(shape, order="F" if fortran else "C")
    return arrays
