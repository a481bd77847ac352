"""The suite's file formats, written byte for byte the same every time.

- ``.npz``: NumPy's format (a zip of ``.npy`` files), written uncompressed with every entry dated
  1980-01-01 and in sorted order, so that two exports are identical; read with
  ``np.load(path, allow_pickle=False)`` (nothing in it is executed).
- ``.safetensors``: an 8-byte little-endian header length, a JSON header (keys sorted, no
  spaces, padded with spaces to a multiple of 8 bytes), the tensors' little-endian bytes in the
  header's order.
- ``.json``: UTF-8, keys in the order written, two-space indents, a final newline.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np

from ..errors import LoadError

_EPOCH = (1980, 1, 1, 0, 0, 0)

SAFETENSORS_DTYPES = {np.dtype(np.float64): "F64", np.dtype(np.float32): "F32"}


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``arrays`` as an uncompressed ``.npz`` file, entries sorted and dated 1980-01-01."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(arrays[name], order="C"),
                                      allow_pickle=False)  # fmt: skip
            archive.writestr(zipfile.ZipInfo(f"{name}.npy", _EPOCH), buffer.getvalue())


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, without pickles; a corrupt or missing file is a
    :class:`~npxai.errors.LoadError` naming it."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise LoadError(f"{path}: not a readable .npz file without pickles ({error})") from None


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """``tensors`` (float64 or float32) as a ``.safetensors`` file, in sorted key order."""
    header: dict[str, object] = {"__metadata__": metadata}
    offset, blobs = 0, []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": SAFETENSORS_DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(blob)]}  # fmt: skip
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def write_json(path: Path, value: object) -> None:
    """``value`` as JSON text."""
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; anything else is a :class:`~npxai.errors.LoadError`."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LoadError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(value, dict):
        raise LoadError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value
