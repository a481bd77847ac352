"""``npxai.load``: tensors from PyTorch, safetensors and NumPy files, without torch.

Readable formats, recognised by their content (not by their suffix):

- ``torch.save`` zip files (PyTorch >= 1.6): ``<name>/data.pkl`` plus one raw file per storage;
- ``torch.save`` legacy files (``_use_new_zipfile_serialization=False``, PyTorch < 1.6): a stream
  of pickles followed by the raw storages;
- ``.safetensors``: an 8-byte little-endian header length, a JSON header, then raw data;
- ``.npz``: NumPy archives, read with ``allow_pickle=False``.

Pickles are read by an unpickler that resolves only the globals in :data:`ALLOWED_GLOBALS`, each
mapped to a function of this module that records what to build; no callable from the file is ever
run. Any other global (a pickled ``nn.Module``, ``os.system``, ``builtins.eval``) is refused with
:class:`~npxai.errors.UnsafePickleError` naming it. bfloat16 values are widened exactly to float32
(NumPy has no bfloat16); every other dtype is kept.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import stat
import struct
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
#: A tensor may hold more elements than its storage (zero strides) only up to this many.
MAX_BROADCAST_ELEMENTS = 2**24
MAX_SAFETENSORS_HEADER = 100 * 2**20


class _Storage:
    """A storage named by a pickle: dtype name, element count, and (once read) its data."""

    __slots__ = ("dtype", "numel", "data")

    def __init__(self, dtype: str, numel: int):
        self.dtype, self.numel, self.data = dtype, numel, None

    def __setstate__(self, state: object) -> None:
        raise pickle.UnpicklingError("a pickle tried to set the state of a storage")


class _TensorRef:
    """A tensor named by a pickle: a strided view of a storage, built into an array at the end."""

    __slots__ = ("storage", "offset", "size", "stride", "dtype")

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple, dtype: str):
        if not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(
                f"a tensor was rebuilt from {type(storage).__name__}, not a storage"
            )
        ints = (offset, *size, *stride)
        if not all(isinstance(v, int) and v >= 0 for v in ints) or len(size) != len(stride):
            raise pickle.UnpicklingError(
                f"bad tensor geometry: offset {offset}, size {size}, stride {stride}"
            )
        self.storage, self.offset, self.size, self.stride, self.dtype = (
            storage, offset, tuple(size), tuple(stride), dtype,
        )  # fmt: skip

    def __setstate__(self, state: object) -> None:
        raise pickle.UnpicklingError("a pickle tried to set the state of a tensor")

    def to_array(self) -> np.ndarray:
        """The tensor's values as an array of its own (not a view of the storage)."""
        data = self.storage.data
        count = math.prod(self.size)
        if count == 0:
            return np.zeros(self.size, dtype=TORCH_DTYPES[self.dtype])
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if last >= len(data):
            raise LoadError(
                f"a tensor of size {self.size} reaches element {last} of a storage of {len(data)}"
            )
        if count > max(len(data), MAX_BROADCAST_ELEMENTS):
            raise LoadError(f"a tensor of size {self.size} has more elements than its storage")
        byte_strides = tuple(s * data.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(data[self.offset :], self.size, byte_strides)
        return _widen_bfloat16(view.copy()) if self.dtype == "bfloat16" else view.copy()


def _widen_bfloat16(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bits (uint16) to float32: the same sign, exponent and leading mantissa bits."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _rebuild_tensor_v2(
    storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None
):  # noqa: E501
    """Stands in for ``torch._utils._rebuild_tensor_v2``: a typed storage's strided view."""
    return _TensorRef(storage, storage_offset, size, stride, getattr(storage, "dtype", None))


def _rebuild_tensor_v3(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, metadata=None
):  # noqa: E501
    """Stands in for ``torch._utils._rebuild_tensor_v3``: an untyped storage read as ``dtype``."""
    if (
        not isinstance(storage, _Storage)
        or storage.dtype != "uint8"
        or not isinstance(dtype, _DType)
    ):
        raise pickle.UnpicklingError(
            "_rebuild_tensor_v3 needs an untyped storage and a torch dtype"
        )
    storage.dtype = dtype.name
    storage.numel //= np.dtype(TORCH_DTYPES[dtype.name]).itemsize
    return _TensorRef(storage, storage_offset, size, stride, dtype.name)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    """Stands in for ``torch._utils._rebuild_parameter(_with_state)``: the parameter's data."""
    if not isinstance(data, _TensorRef):
        raise pickle.UnpicklingError("a parameter was rebuilt from something that is not a tensor")
    return data


class _StorageType:
    """Stands in for ``torch.FloatStorage`` and the like (and ``UntypedStorage``, as bytes)."""

    def __init__(self, dtype: str):
        self.dtype = dtype


class _DType:
    """Stands in for ``torch.float32`` and the like."""

    def __init__(self, name: str):
        self.name = name


def _allowed_globals() -> dict[tuple[str, str], Any]:
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
        ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("torch.storage", "UntypedStorage"): _StorageType("uint8"),
        ("torch", "UntypedStorage"): _StorageType("uint8"),
    }
    for storage, dtype in LEGACY_STORAGES.items():
        allowed[("torch", storage)] = _StorageType(dtype)
    for dtype in TORCH_DTYPES:
        allowed[("torch", dtype)] = _DType(dtype)
    return allowed


#: Every global a pickle may name, and what npxai puts in its place.
ALLOWED_GLOBALS = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only :data:`ALLOWED_GLOBALS`; storages come from ``storages`` by key."""

    def __init__(self, file: io.BufferedIOBase, path: Path, storages: dict[str, _Storage]):
        super().__init__(file)
        self.path, self.storages = path, storages

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            hint = (
                " (a pickled Python object such as a whole nn.Module: save model.state_dict() "
                "instead)"
                if module.startswith(("torch", "torchvision", "__main__"))
                else ""
            )
            raise UnsafePickleError(
                f"{self.path}: refusing to load global '{module}.{name}'{hint}; npxai only "
                "unpickles tensors and dicts of them, and executed nothing from this file"
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.80}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) > 5 and pid[5] is not None:
            raise LoadError(f"{self.path}: storage views (legacy view_metadata) are not supported")
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise pickle.UnpicklingError(f"bad storage reference {pid!r:.80}")
        if not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"bad storage size {numel!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        return self.storages[key]


def check_file(path: str | os.PathLike, kind: str) -> None:
    """Raise :class:`~npxai.errors.LoadError` naming ``path`` unless it is a regular file (or a
    link to one): :class:`~npxai.errors.MissingFileError` (also a ``FileNotFoundError``) when
    nothing is there, a ``LoadError`` saying so for a directory, a pipe or a device (which are
    never opened, so that a FIFO cannot hang the caller). ``kind`` names what the file should be
    in the message (``"weight"``: ``"w.pt: no such weight file"``)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise MissingFileError(f"{path}: no such {kind} file") from None
    article = "an" if kind[0] in "aeiou" else "a"
    if stat.S_ISDIR(mode):
        raise LoadError(f"{path}: is a directory, not {article} {kind} file")
    if not stat.S_ISREG(mode):
        raise LoadError(
            f"{path}: not a regular file (a pipe, socket or device); {kind} file expected"
        )


def load(path: str | os.PathLike, key: str | None = None) -> dict[str, np.ndarray]:
    """Read the named arrays of a weight file: ``{name: array}``.

    ``key`` selects a sub-dict of a torch checkpoint (``key="state_dict"``). Raises
    :class:`~npxai.errors.LoadError` naming the file for a file that cannot be read (its
    subclass :class:`~npxai.errors.MissingFileError`, also a ``FileNotFoundError``, for one that
    is not there; see :func:`check_file`) and :class:`~npxai.errors.UnsafePickleError` for a
    pickle that names a global outside the allow-list.
    """
    path = Path(path)
    check_file(path, "weight")
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        with _wrap_corruption(path, "zip"):
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
                    return _select(_read_torch_zip(archive, path), path, key)
        return _no_key(_read_npz(path), path, key)
    if head[:1] == b"\x80":
        with _wrap_corruption(path, "legacy torch"), open(path, "rb") as f:
            return _select(_read_torch_legacy(f, path), path, key)
    if len(head) == 9 and head[8:9] == b"{":
        with _wrap_corruption(path, "safetensors"):
            return _no_key(_read_safetensors(path), path, key)
    raise LoadError(
        f"{path}: unknown format; expected a torch.save file (zip or legacy), a .safetensors "
        "file or an .npz archive"
    )


@contextmanager
def _wrap_corruption(path: Path, kind: str) -> Iterator[None]:
    """Turn the low-level errors of a damaged file into one :class:`LoadError` naming it."""
    damaged = (
        pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError,
        KeyError, IndexError, TypeError, AttributeError, OverflowError, RecursionError,
        MemoryError,
    )  # fmt: skip
    try:
        yield
    except LoadError:
        raise
    except damaged as error:
        raise LoadError(
            f"{path}: corrupt or truncated {kind} file ({type(error).__name__}: {error})"
        ) from error


def _read_torch_zip(archive: zipfile.ZipFile, path: Path) -> Any:
    pickles = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise LoadError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
    prefix = pickles[0][: -len("data.pkl")]
    names = set(archive.namelist())
    order = (
        archive.read(prefix + "byteorder").decode() if prefix + "byteorder" in names else "little"
    )
    storages: dict[str, _Storage] = {}
    result = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), path, storages).load()
    for key, storage in storages.items():
        dtype = np.dtype(TORCH_DTYPES[storage.dtype])
        nbytes = storage.numel * dtype.itemsize
        info = archive.getinfo(prefix + "data/" + key)
        if info.file_size < nbytes:
            raise LoadError(
                f"{path}: storage {key} holds {info.file_size} bytes, its tensors need {nbytes}"
            )
        with archive.open(info) as f:
            raw = f.read(nbytes)
        storage.data = _from_bytes(raw, dtype, order)
    return result


def _from_bytes(raw: bytes, dtype: np.dtype, order: str) -> np.ndarray:
    data = np.frombuffer(raw, dtype=dtype.newbyteorder("<" if order == "little" else ">"))
    return data.astype(dtype)


def _read_torch_legacy(f: io.BufferedReader, path: Path) -> Any:
    def header() -> Any:
        return _RestrictedUnpickler(f, path, {}).load()

    magic = header()
    if magic != LEGACY_MAGIC:
        raise LoadError(f"{path}: a pickle, but not a torch.save file (magic number {magic!r:.40})")
    protocol = header()
    if protocol != LEGACY_PROTOCOL:
        raise LoadError(f"{path}: unsupported legacy torch protocol {protocol!r:.40}")
    sys_info = header()
    little = sys_info.get("little_endian", True) if isinstance(sys_info, dict) else True
    storages: dict[str, _Storage] = {}
    result = _RestrictedUnpickler(f, path, storages).load()
    keys = header()
    if not isinstance(keys, list) or set(keys) != set(storages):
        raise LoadError(f"{path}: the list of storages does not match the tensors that use them")
    remaining = os.fstat(f.fileno()).st_size - f.tell()
    for key in keys:
        storage = storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        dtype = np.dtype(TORCH_DTYPES[storage.dtype])
        remaining -= 8
        if numel != storage.numel or numel * dtype.itemsize > remaining:
            raise LoadError(
                f"{path}: storage {key} claims {numel} elements of {storage.numel} expected, "
                f"with {remaining} bytes left in the file"
            )
        storage.data = _from_bytes(
            f.read(numel * dtype.itemsize), dtype, "little" if little else "big"
        )
        remaining -= numel * dtype.itemsize
    return result


def _select(obj: Any, path: Path, key: str | None) -> dict[str, np.ndarray]:
    """The mapping of names to arrays in an unpickled object (or in its entry ``key``)."""
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            found = list(obj) if isinstance(obj, dict) else type(obj).__name__
            raise LoadError(f"{path}: no entry {key!r} to select; the file holds {found}")
        obj = obj[key]
    if isinstance(obj, _TensorRef):
        raise LoadError(f"{path}: holds a single tensor, not a dict of named tensors")
    if not isinstance(obj, dict):
        raise LoadError(f"{path}: holds a {type(obj).__name__}, not a dict of named tensors")
    others = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, _TensorRef))]
    if others:
        dicts = [k for k, v in obj.items() if isinstance(v, dict)]
        hint = (
            f"; select a sub-dict with key= (--key on the command line), one of {dicts}"
            if dicts
            else ""
        )
        raise LoadError(f"{path}: entries {others[:5]} are not tensors{hint}")
    return {name: tensor.to_array() for name, tensor in obj.items()}


def _no_key(arrays: dict[str, np.ndarray], path: Path, key: str | None) -> dict[str, np.ndarray]:
    if key is not None:
        raise ValueError(f"key={key!r} applies to torch checkpoints only; {path} is flat")
    return arrays


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    if length > min(len(raw) - 8, MAX_SAFETENSORS_HEADER):
        raise LoadError(f"{path}: safetensors header of {length} bytes does not fit the file")
    header = json.loads(raw[8 : 8 + length])
    if not isinstance(header, dict):
        raise LoadError(f"{path}: safetensors header is not a JSON object")
    data = memoryview(raw)[8 + length :]
    arrays = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info.get("dtype") not in SAFETENSORS_DTYPES:
            raise LoadError(f"{path}: tensor {name!r} has unsupported dtype {info.get('dtype')!r}")
        dtype_name = SAFETENSORS_DTYPES[info["dtype"]]
        dtype = np.dtype(TORCH_DTYPES[dtype_name])
        shape, (begin, end) = info["shape"], info["data_offsets"]
        if not all(isinstance(n, int) and n >= 0 for n in (*shape, begin, end)):
            raise LoadError(f"{path}: tensor {name!r} has a bad shape or offsets")
        if not begin <= end <= len(data) or end - begin != math.prod(shape) * dtype.itemsize:
            raise LoadError(
                f"{path}: tensor {name!r} of shape {shape} and dtype {info['dtype']} does not fit "
                f"its data offsets [{begin}, {end}) in {len(data)} bytes of data"
            )
        array = _from_bytes(data[begin:end], dtype, "little").reshape(shape)
        arrays[name] = _widen_bfloat16(array) if dtype_name == "bfloat16" else array
    return arrays


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as error:
        raise LoadError(f"{path}: cannot read this .npz without unpickling ({error})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise LoadError(f"{path}: corrupt .npz archive ({error})") from None
