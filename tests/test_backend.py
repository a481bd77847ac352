"""The backend switch: default, per call, process-wide and scoped; clear errors; no fallback."""

import os
import subprocess
import sys

import numpy as np
import pytest
from npxai.kernels.cpu import conv as compiled_conv

import npxai
from npxai.backend import BackendError, backend_modules
from npxai.reference import conv as reference_conv


def test_default_is_numba_and_names_map_to_twin_modules():
    assert npxai.get_backend() == "numba"
    assert backend_modules("numba").conv is compiled_conv
    assert backend_modules("numpy").conv is reference_conv


def test_every_reference_function_has_a_compiled_twin_with_the_same_signature():
    import inspect

    for family in ("activation", "conv", "linear", "norm", "pool", "lrp"):
        reference, compiled = (getattr(backend_modules(b), family) for b in ("numpy", "numba"))
        public = [
            n
            for n, f in vars(reference).items()
            if inspect.isfunction(f)
            and f.__module__ == reference.__name__
            and not n.startswith("_")
        ]
        for name in public:
            if name.endswith(("_size", "_divisor", "_bins", "_scale")):
                continue  # shape and constant helpers, imported by the kernels from the reference
            twin = getattr(compiled, name, None)
            assert twin is not None, f"{family}.{name} has no compiled twin"
            assert (
                inspect.signature(twin).parameters.keys()
                == inspect.signature(getattr(reference, name)).parameters.keys()
            )


def test_per_call_backend_reaches_the_kernels(monkeypatch):
    calls = []
    original = compiled_conv.conv2d
    monkeypatch.setattr(compiled_conv, "conv2d", lambda *a: calls.append(1) or original(*a))
    layer = npxai.layers.Conv2d(1, 1, 3)
    x = np.ones((1, 1, 5, 5))
    layer(x, backend="numpy")
    assert calls == []
    layer(x)
    assert calls == [1]


def test_scoped_and_process_wide_defaults():
    with npxai.use_backend("numpy"):
        assert npxai.get_backend() == "numpy"
        trace = npxai.models.lenet(input_size=8).trace(np.ones((1, 1, 8, 8)))
        assert trace.backend == "numpy"
    assert npxai.get_backend() == "numba"
    npxai.set_backend("numpy")
    try:
        assert npxai.get_backend() == "numpy"
    finally:
        npxai.set_backend("numba")


def test_unknown_backends_raise():
    """(An unavailable cuda backend: tests/test_cuda_backend.py.)"""
    model = npxai.models.lenet(input_size=8)
    x = np.ones((1, 1, 8, 8))
    with pytest.raises(
        BackendError, match="unknown backend 'torch'; choose one of numpy, numba, cuda"
    ):
        model(x, backend="torch")
    with pytest.raises(BackendError, match="unknown backend 'gpu'"):
        npxai.gradient(model, x, backend="gpu")
    with pytest.raises(BackendError, match="unknown backend"):
        npxai.set_backend("gpu")
    with pytest.raises(BackendError, match="unknown backend 'CUDA'"):
        with npxai.use_backend("CUDA"):
            pass
    assert npxai.get_backend() == "numba"


def test_kernels_run_on_numbas_tbb_layer():
    """OpenMP threads spinning after each kernel would steal the cores from BLAS (kernels/cpu)."""
    import numba

    npxai.layers.ReLU()(np.ones((2, 3)))
    assert numba.threading_layer() == "tbb"


def test_numba_threads_started_on_another_layer_are_refused_by_name():
    """Numba starts its threads once, on the layer configured then: started first by something
    else (here on its workqueue layer), they would run npxai's kernels there, silently."""
    code = (
        "import numba; numba.config.THREADING_LAYER = 'workqueue'; numba.get_num_threads()\n"
        "import npxai.kernels.cpu"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "BackendError: Numba's threads already run on its 'workqueue' layer" in result.stderr
    assert "import npxai.kernels.cpu first, or set NUMBA_THREADING_LAYER" in result.stderr


def test_tbb_is_loaded_from_the_tbb_package_by_its_path():
    """In a virtual environment the loader does not search <env>/lib, where the tbb wheel puts
    the library: npxai loads it by absolute path (the README's Quick start depends on it)."""
    from npxai.kernels import cpu

    loaded = cpu.load_tbb()
    assert os.path.isabs(loaded) and os.path.basename(loaded) == cpu.TBB_LIBRARY


def no_tbb_anywhere(monkeypatch) -> None:
    """As in an environment without the tbb package and without a TBB the loader finds."""
    import ctypes
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    def refuse(name, mode=0):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    monkeypatch.setattr(ctypes, "CDLL", refuse)


def test_missing_tbb_is_one_clear_sentence(monkeypatch):
    from npxai.kernels import cpu

    no_tbb_anywhere(monkeypatch)
    with pytest.raises(
        BackendError,
        match=r"could not be loaded \(the tbb package is not installed\): install it with 'pip install tbb', or use backend='numpy'",
    ):
        cpu.load_tbb()


def test_missing_tbb_stops_the_command_line_with_that_sentence(monkeypatch, capsys):
    import sys

    from npxai.cli import main

    for name in [name for name in sys.modules if name.startswith("npxai.kernels.cpu")]:
        monkeypatch.delitem(sys.modules, name)  # imported anew, as in a fresh process
    backend_modules.cache_clear()  # the table imports them again, too
    no_tbb_anywhere(monkeypatch)
    assert main(["digits"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("npxai digits: error: npxai's numba backend runs on Intel TBB")
    assert err.count("\n") == 1 and "Traceback" not in err, err
