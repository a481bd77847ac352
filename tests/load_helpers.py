"""Helpers of the tests/test_load_*.py files: crafting torch-style archives and pickles by hand,
and running a load in a child process under a memory limit."""

import io
import json
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np


def torch_members(obj, **save_options) -> dict[str, bytes]:
    """The members of the zip that ``torch.save(obj)`` writes, by name."""
    import torch  # here, not above: the memory-limited children import this module too

    buffer = io.BytesIO()
    torch.save(obj, buffer, **save_options)
    with zipfile.ZipFile(buffer) as z:
        return {n: z.read(n) for n in z.namelist()}


def pickle_name(members: dict[str, bytes]) -> str:
    return next(n for n in members if n.endswith("/data.pkl"))


def write_zip(path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        for name, data in members.items():
            z.writestr(name, data)


def write_pickle_zip(path, payload: bytes, storages: dict[str, bytes] | None = None) -> None:
    """A torch-style archive whose data.pkl is ``payload`` (plus storages ``data/<key>``)."""
    members = {
        "archive/data.pkl": payload,
        "archive/byteorder": b"little",
        "archive/version": b"3\n",
    }
    members.update({f"archive/data/{k}": v for k, v in (storages or {}).items()})
    write_zip(path, members)


def body(obj) -> bytes:
    """The opcodes that push ``obj`` (its protocol-2 pickle without PROTO and STOP), to splice
    into a hand-written pickle that uses no memo of its own."""
    return pickle.dumps(obj, protocol=2)[2:-1]


def global_op(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def expected(t) -> np.ndarray:
    """What npxai.load must give for a tensor: torch's values, bfloat16 widened to float32."""
    import torch

    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).contiguous().numpy()


def assert_loads_like_torch(path, loaded: dict, weights_only: bool = True) -> None:
    """``loaded`` holds exactly what ``torch.load(path, weights_only=True)`` holds (or, for a
    file this test wrote that torch's weights-only reader cannot read, ``weights_only=False``)."""
    import torch

    check_round_trip(loaded, torch.load(path, weights_only=weights_only))


def check_round_trip(loaded: dict, source: dict) -> None:
    """``loaded`` holds the names of ``source`` (torch tensors), each with its dtype (bfloat16
    widened), shape and values."""
    assert set(loaded) == set(source)
    for name, t in source.items():
        want = expected(t)
        assert loaded[name].dtype == want.dtype, name
        assert loaded[name].shape == want.shape, name
        np.testing.assert_array_equal(loaded[name], want, err_msg=name)


def run_limited(code: str, limit_bytes: int = 2 * 2**30, timeout: float = 60) -> str:
    """Run ``code`` in a fresh Python whose address space is limited to ``limit_bytes`` (so that
    a regression fails with a MemoryError instead of swamping the machine); its stdout. A crash
    (a signal) or a non-zero exit fails the test with the child's stderr."""
    preamble = textwrap.dedent(
        f"""
        import os, resource
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", preamble + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, f"child exited with {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def safetensors_bytes(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def tensor_pickle(tensors: dict, storage_type: str = "FloatStorage") -> bytes:
    """A data.pkl for ``{name: tensor}``, written opcode by opcode: ``tensors`` maps each name to
    ``(storage key, storage numel, size, stride, offset)``."""
    out = b"\x80\x02}"
    for name, (key, numel, size, stride, offset) in tensors.items():
        pid = b"(" + body("storage") + global_op("torch", storage_type)
        pid += body(key) + body("cpu") + body(numel) + b"tQ"
        args = pid + body(offset) + body(tuple(size)) + body(tuple(stride)) + b"\x89"
        args += global_op("collections", "OrderedDict") + b")R"
        out += body(name) + global_op("torch._utils", "_rebuild_tensor_v2") + b"(" + args + b"tRs"
    return out + b"."
