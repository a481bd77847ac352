"""NoiseTunnel, NoiseAugmentation and InterpolationAugmentation against Captum's ``NoiseTunnel``
(its own code, ``torch.normal`` made to return npxai's documented noise; float64, 1e-10; around
IntegratedGradients 1e-6, Captum rounding its quadrature weights to float32), against the same
combinations written out in the test over torch-autograd gradients and over npxai's LRP, Occlusion
and Gradient on the documented noisy copies and path points (1e-10), and against npxai's SmoothGrad
and IntegratedGradients, which they reproduce; seeds, batch sizes, dtypes, backends; the errors."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
from captum.attr import InputXGradient, Saliency
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from captum.attr import NoiseTunnel as CaptumNoiseTunnel
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

import npxai
from npxai.analyzers.gradient_shap import GradientShap
from npxai.analyzers.noise import (
    NT_TYPES,
    InterpolationAugmentation,
    NoiseAugmentation,
    NoiseTunnel,
)

BACKENDS = ["numpy", "numba"]
TARGET = [0, 4, 2]


def torch_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(OrderedDict(
        conv1=torch.nn.Conv2d(2, 4, 3, padding=1), relu1=torch.nn.ReLU(),
        pool=torch.nn.MaxPool2d(2), conv2=torch.nn.Conv2d(4, 6, 3, padding=1),
        relu2=torch.nn.ReLU(), flatten=torch.nn.Flatten(), fc=torch.nn.Linear(6 * 4 * 4, 5),
    )).double().eval()  # fmt: skip


@pytest.fixture(scope="module")
def cnn():
    theirs = torch_cnn()
    x = np.random.default_rng(0).standard_normal((3, 2, 8, 8))
    return theirs, npxai.from_torch(theirs), x


def documented_noise(seed: int, copies: int, x: np.ndarray) -> np.ndarray:
    """The noise of copy ``k`` of the batch: ``default_rng(seed).standard_normal((m, *x.shape))``."""
    return np.random.default_rng(seed).standard_normal((copies, *x.shape))


def feed_captum(monkeypatch, eps: np.ndarray, stdevs: float) -> list:
    """``torch.normal`` as Captum's NoiseTunnel calls it (``torch.normal(0, stdev repeated to
    (N * copies, ...))``, sample-major: row ``i * copies + j`` is copy ``j`` of sample ``i``),
    returning ``stdevs * eps`` for the next copies of npxai's copy-major noise ``eps``. Returns
    the list of the calls' shapes."""
    calls, samples = [], eps.shape[1]

    def normal(mean, std):
        assert mean == 0 and torch.all(std == torch.tensor(stdevs, dtype=std.dtype))
        start, copies = sum(c[0] for c in calls) // samples, std.shape[0] // samples
        calls.append(tuple(std.shape))
        chunk = stdevs * eps[start : start + copies]  # (copies, N, ...)
        return torch.tensor(chunk.swapaxes(0, 1).reshape(std.shape))

    monkeypatch.setattr(torch, "normal", normal)
    return calls


def combined(attributions: np.ndarray, nt_type: str) -> np.ndarray:
    """Captum's combination of the copies' attributions ``(m, N, ...)``."""
    mean, squares = attributions.mean(axis=0), (attributions**2).mean(axis=0)
    return {"smoothgrad": mean, "smoothgrad_sq": squares, "vargrad": squares - mean**2}[nt_type]


def torch_gradient(net, x: np.ndarray, target) -> np.ndarray:
    xt = torch.tensor(x, requires_grad=True)
    net(xt)[torch.arange(len(x)), torch.as_tensor(target)].sum().backward()
    return xt.grad.numpy()


@pytest.mark.parametrize("nt_type", NT_TYPES)
def test_noise_tunnel_equals_captums_around_saliency_and_input_x_gradient(
    cnn, monkeypatch, nt_type
):
    theirs, ours, x = cnn
    m, stdevs, seed = 5, 0.4, 3
    eps = documented_noise(seed, m, x)
    copies = [x + stdevs * eps[k] for k in range(m)]
    gradients = np.stack([torch_gradient(theirs, c, TARGET) for c in copies])
    for captum_method, analyzer, attributions in [
        (Saliency, npxai.Gradient, gradients),
        (InputXGradient, npxai.InputTimesGradient, np.stack(copies) * gradients),  # noisy copy
    ]:
        calls = feed_captum(monkeypatch, eps, stdevs)
        expected = CaptumNoiseTunnel(captum_method(theirs)).attribute(
            torch.tensor(x), nt_type=nt_type, nt_samples=m, stdevs=stdevs, target=TARGET,
            **({"abs": False} if captum_method is Saliency else {}),
        ).numpy()  # fmt: skip
        assert calls == [(3 * m, 2, 8, 8)]
        e = NoiseTunnel(analyzer(ours), nt_type, m, stdevs, seed=seed, batch_size=4)(x, TARGET)
        # vargrad cancels the squared mean against the mean of squares: measured against that
        scale = np.abs(combined(attributions, "smoothgrad_sq")).max()
        assert_close(e.attribution, expected, np.float64, scale)
        assert_close(e.attribution, combined(attributions, nt_type), np.float64, scale)
        assert e.analyzer == "NoiseTunnel" and e.extras["analyzer"] == analyzer.__name__
        assert e.heatmap_preset == analyzer.heatmap_preset
        np.testing.assert_array_equal(e.target, TARGET)
        np.testing.assert_allclose(e.output, theirs(torch.tensor(x)).detach().numpy(), 1e-12)


@pytest.mark.parametrize("nt_type", NT_TYPES)
def test_noise_tunnel_attribute_takes_captums_names_and_passes_abs_to_saliency(
    cnn, monkeypatch, nt_type
):
    theirs, ours, x = cnn
    m, stdevs, seed = 7, 0.3, 4
    eps = documented_noise(seed, m, x)
    calls = feed_captum(monkeypatch, eps, stdevs)
    expected = CaptumNoiseTunnel(Saliency(theirs)).attribute(  # Saliency's default abs=True
        torch.tensor(x), nt_type=nt_type, nt_samples=m, nt_samples_batch_size=3, stdevs=stdevs,
        target=TARGET,
    ).numpy()  # fmt: skip
    assert calls == [(9, 2, 8, 8), (9, 2, 8, 8), (3, 2, 8, 8)]  # 3 + 3 + 1 copies
    tunnel = NoiseTunnel(npxai.Gradient(ours), seed=seed)
    got = tunnel.attribute(torch.tensor(x), nt_type, m, 3, stdevs, target=torch.tensor(TARGET),
                           abs=True)  # fmt: skip
    # the mean of |gradient| and its square: no cancellation in any of the three
    assert_close(got, expected, np.float64)
    gradients = np.stack([torch_gradient(theirs, x + stdevs * eps[k], TARGET) for k in range(m)])
    assert_close(got, combined(np.abs(gradients), nt_type), np.float64)


@pytest.mark.parametrize("nt_type", NT_TYPES)
def test_noise_tunnel_around_integrated_gradients_is_captums_and_its_definition(
    cnn, monkeypatch, nt_type
):
    theirs, ours, x = cnn
    m, stdevs, seed, steps = 3, 0.2, 5, 6
    eps = documented_noise(seed, m, x)
    feed_captum(monkeypatch, eps, stdevs)
    expected = CaptumNoiseTunnel(CaptumIntegratedGradients(theirs)).attribute(
        torch.tensor(x), nt_type=nt_type, nt_samples=m, stdevs=stdevs, target=TARGET,
        n_steps=steps, method="gausslegendre",
    ).numpy()  # fmt: skip
    tunnel = NoiseTunnel(npxai.IntegratedGradients(ours, n=steps, method="gauss_legendre"),
                         nt_type, m, stdevs, seed=seed, batch_size=5)  # fmt: skip
    got = tunnel(x, TARGET).attribution
    # Captum multiplies its gradients by float32-rounded quadrature weights: 1e-8 off
    assert np.abs(got - expected).max() <= 1e-6 * np.abs(expected).max()
    nodes, weights = np.polynomial.legendre.leggauss(steps)  # on [-1, 1]
    alphas, weights = (nodes + 1) / 2, weights / 2
    copies = [x + stdevs * eps[k] for k in range(m)]  # IG from 0 to each noisy copy
    integrated = np.stack([c * sum(w * torch_gradient(theirs, a * c, TARGET)
                                   for a, w in zip(alphas, weights, strict=True))
                           for c in copies])  # fmt: skip
    scale = np.abs(combined(integrated, "smoothgrad_sq")).max() if nt_type == "vargrad" else None
    assert_close(got, combined(integrated, nt_type), np.float64, scale)
    # Captum's keyword arguments reach the inner analyzer's attribute
    again = NoiseTunnel(npxai.IntegratedGradients(ours), seed=seed).attribute(
        x, nt_type, m, stdevs=stdevs, target=TARGET, n_steps=steps, method="gausslegendre"
    )
    assert_close(again, combined(integrated, nt_type), np.float64, scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_noise_tunnel_around_gradient_is_smoothgrad_and_noise_augmentation_too(cnn, backend):
    _, ours, x = cnn
    gradient = npxai.Gradient(ours, backend=backend)
    for batch in (1, 4, 100):
        e = NoiseTunnel(gradient, nt_samples=6, stdevs=0.3, seed=2, batch_size=batch)(x, 1)
        smooth = npxai.SmoothGrad(ours, n=6, sigma=0.3, seed=2, batch_size=batch,
                                  backend=backend)(x, 1)  # fmt: skip
        np.testing.assert_array_equal(e.attribution, smooth.attribution)
        e = NoiseAugmentation(gradient, 6, noise_level=0.2, seed=2, batch_size=batch)(x, 1)
        smooth = npxai.SmoothGrad(ours, n=6, noise_level=0.2, seed=2, batch_size=batch,
                                  backend=backend)(x, 1)  # fmt: skip
        np.testing.assert_array_equal(e.attribution, smooth.attribution)
        np.testing.assert_array_equal(e.extras["sigma"], smooth.extras["sigma"])
    e = NoiseAugmentation(gradient, 6, std=0.3, seed=2)(x, 1)
    smooth = npxai.SmoothGrad(ours, n=6, sigma=0.3, seed=2, backend=backend)(x, 1)
    np.testing.assert_array_equal(e.attribution, smooth.attribution)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wrappers_around_lrp_are_the_combinations_of_lrp_on_the_stated_copies(cnn, backend):
    _, ours, x = cnn
    lrp = npxai.LRP(ours, npxai.composites.EpsilonPlus(), backend=backend)
    m, stdevs, seed = 4, 0.5, 8
    eps = documented_noise(seed, m, x)
    relevances = np.stack([lrp(x + stdevs * eps[k], TARGET).attribution for k in range(m)])
    for nt_type in NT_TYPES:
        e = NoiseTunnel(lrp, nt_type, m, stdevs, seed=seed, batch_size=5)(x, TARGET)
        scale = np.abs(combined(relevances, "smoothgrad_sq")).max()
        assert_close(e.attribution, combined(relevances, nt_type), np.float64, scale)
        assert e.heatmap_preset == "attribution" and e.extras["analyzer"] == "LRP"
    sigma = 0.15 * (x.reshape(3, -1).max(1) - x.reshape(3, -1).min(1))
    e = NoiseAugmentation(lrp, m, noise_level=0.15, seed=seed, batch_size=7)(x, TARGET)
    noisy = [x + sigma[:, None, None, None] * eps[k] for k in range(m)]
    assert_close(e.attribution, np.mean([lrp(c, TARGET).attribution for c in noisy], 0), np.float64)
    # InterpolationAugmentation: trapezoid points k/(n-1) from b to x, times x - b
    n, b = 5, 0.3
    alphas, weights = np.arange(n) / (n - 1), np.array([0.5, 1, 1, 1, 0.5]) / (n - 1)
    path = sum(w * lrp(b + a * (x - b), TARGET).attribution
               for a, w in zip(alphas, weights, strict=True))  # fmt: skip
    e = InterpolationAugmentation(lrp, n, baseline=b, batch_size=4)(x, TARGET)
    assert_close(e.attribution, (x - b) * path, np.float64)


def test_the_target_is_chosen_once_on_the_clean_input(cnn):
    theirs, ours, x = cnn
    m, stdevs, seed = 6, 2.0, 1  # noise large enough to move some copies' arg-max
    eps = documented_noise(seed, m, x)
    clean = theirs(torch.tensor(x)).argmax(1).numpy()
    noisy_argmax = [theirs(torch.tensor(x + stdevs * eps[k])).argmax(1).numpy() for k in range(m)]
    assert any((a != clean).any() for a in noisy_argmax)
    e = NoiseTunnel(npxai.Gradient(ours), nt_samples=m, stdevs=stdevs, seed=seed)(x)
    np.testing.assert_array_equal(e.target, clean)
    gradients = np.stack([torch_gradient(theirs, x + stdevs * eps[k], clean) for k in range(m)])
    assert_close(e.attribution, gradients.mean(axis=0), np.float64)
    e = InterpolationAugmentation(npxai.Gradient(ours), 4)(x)
    np.testing.assert_array_equal(e.target, clean)
    # per-class weights: every copy explains sum_k w_k f_k
    weights = np.array([0.5, -1.0, 0.0, 2.0, 0.25])
    e = NoiseTunnel(npxai.Gradient(ours), nt_samples=m, stdevs=stdevs, seed=seed)(x, weights)
    np.testing.assert_array_equal(e.target, np.tile(weights, (3, 1)))
    weighted = []
    for k in range(m):
        xt = torch.tensor(x + stdevs * eps[k], requires_grad=True)
        (theirs(xt) * torch.tensor(weights)).sum().backward()
        weighted.append(xt.grad.numpy())
    assert_close(e.attribution, np.mean(weighted, axis=0), np.float64)


@pytest.mark.parametrize("method", ["riemann_left", "riemann_right", "riemann_middle",
                                    "riemann_trapezoid", "gauss_legendre"])  # fmt: skip
def test_interpolation_augmentation_of_gradient_is_integrated_gradients(cnn, method):
    _, ours, x = cnn
    baseline = np.random.default_rng(1).standard_normal(x.shape[1:]) * 0.1
    e = InterpolationAugmentation(npxai.Gradient(ours), 7, baseline, method, batch_size=5)(x, 3)
    ig = npxai.IntegratedGradients(ours, 7, baseline, method)(x, 3)
    assert_close(e.attribution, ig.attribution, np.float64)
    assert e.extras == {"analyzer": "Gradient", "method": method, "n": 7}


def test_interpolation_augmentation_default_is_the_trapezoid_over_both_ends(cnn):
    theirs, ours, x = cnn
    n = 4  # points 0, 1/3, 2/3, 1; weights 1/6, 1/3, 1/3, 1/6
    e = InterpolationAugmentation(npxai.Gradient(ours), n)(x, TARGET)
    points = [(0.0, 1 / 6), (1 / 3, 1 / 3), (2 / 3, 1 / 3), (1.0, 1 / 6)]
    expected = x * sum(w * torch_gradient(theirs, a * x, TARGET) for a, w in points)
    assert_close(e.attribution, expected, np.float64)
    assert e.heatmap_preset == "sensitivity"  # the inner analyzer's, as ExplainableAI.jl's


def test_noise_tunnel_around_occlusion_of_a_callable(cnn):
    theirs, _, x = cnn

    def scores(batch):
        return theirs(torch.tensor(batch)).detach().numpy()

    occlusion = npxai.Occlusion(scores, (2, 4, 4), strides=4)
    m, stdevs, seed = 3, 0.1, 6
    eps = documented_noise(seed, m, x)
    e = NoiseTunnel(occlusion, nt_samples=m, stdevs=stdevs, seed=seed)(x, TARGET)
    copies = [occlusion(x + stdevs * eps[k], TARGET).attribution for k in range(m)]
    assert_close(e.attribution, np.mean(copies, axis=0), np.float64)


@settings(max_examples=6, deadline=None)
@given(
    dtype=st.sampled_from([np.float32, np.float64]),
    nt_type=st.sampled_from(NT_TYPES),
    batch=st.integers(1, 20),
    seed=st.integers(0, 2**31),
)
def test_seeded_runs_repeat_in_both_dtypes_any_batch_size_and_backend(
    cnn, dtype, nt_type, batch, seed
):
    _, ours, x = cnn
    x = x.astype(dtype)
    wrappers = [
        lambda backend, batch: NoiseTunnel(npxai.InputTimesGradient(ours, backend=backend),
                                           nt_type, 5, 0.3, seed, batch),
        lambda backend, batch: NoiseAugmentation(npxai.LRP(ours, backend=backend), 5, 0.3,
                                                 seed=seed, batch_size=batch),
        lambda backend, batch: InterpolationAugmentation(npxai.Gradient(ours, backend=backend),
                                                         5, batch_size=batch),
    ]  # fmt: skip
    for make in wrappers:
        first = make("numpy", batch)(x, TARGET).attribution
        assert first.dtype == dtype
        np.testing.assert_array_equal(make("numpy", batch)(x, TARGET).attribution, first)
        for backend, size in [("numpy", 64), ("numba", batch)]:
            other = make(backend, size)(x, TARGET).attribution
            assert_close(other, first, dtype)
    other = NoiseTunnel(npxai.Gradient(ours), nt_type, 5, 0.3, seed + 1)(x, TARGET).attribution
    assert not np.allclose(other, NoiseTunnel(npxai.Gradient(ours), nt_type, 5, 0.3, seed)(
        x, TARGET).attribution)  # fmt: skip


def test_float32_wrappers_match_float64_ones(cnn):
    _, ours, x = cnn
    for make in [
        lambda: NoiseTunnel(npxai.Gradient(ours), "smoothgrad_sq", 4, 0.2, seed=0),
        lambda: InterpolationAugmentation(npxai.IntegratedGradients(ours, n=3), 3),
    ]:
        low = make()(x.astype(np.float32), TARGET).attribution
        assert low.dtype == np.float32
        assert_close(low, make()(x, TARGET).attribution, np.float32)


def test_wrapper_errors(cnn):
    _, ours, x = cnn
    gradient = npxai.Gradient(ours)
    with pytest.raises(ValueError, match="unknown nt_type 'smooth'; choose one of smoothgrad, "
                                         "smoothgrad_sq, vargrad"):  # fmt: skip
        NoiseTunnel(gradient, "smooth")
    with pytest.raises(ValueError, match="NoiseTunnel: nt_samples must be a positive int, got 0"):
        NoiseTunnel(gradient, nt_samples=0)
    with pytest.raises(ValueError, match="NoiseTunnel: stdevs must be a finite number >= 0"):
        NoiseTunnel(gradient, stdevs=-0.1)
    with pytest.raises(ValueError, match="NoiseTunnel: stdevs must be a finite number >= 0"):
        NoiseTunnel(gradient).attribute(x, stdevs=(0.1,), target=0)
    with pytest.raises(ValueError, match="NoiseTunnel: seed must be an int >= 0 or None"):
        NoiseTunnel(gradient, seed=-1)
    with pytest.raises(ValueError, match="NoiseTunnel: batch_size must be a positive int"):
        NoiseTunnel(gradient, batch_size=0)
    with pytest.raises(TypeError, match="NoiseTunnel: progress must be True or False"):
        NoiseTunnel(gradient, progress="yes")
    with pytest.raises(TypeError, match=r"NoiseTunnel: analyzer must be an npxai analyzer .*"
                                        r"got Sequential; wrap the model first"):  # fmt: skip
        NoiseTunnel(ours)
    for wrapper in (NoiseAugmentation, InterpolationAugmentation):
        with pytest.raises(TypeError, match=f"{wrapper.__name__}: analyzer must be an npxai "
                                            "analyzer"):  # fmt: skip
            wrapper("Gradient")
        with pytest.raises(ValueError, match=f"{wrapper.__name__}: n must be a positive int"):
            wrapper(gradient, 0)
    with pytest.raises(ValueError, match="draw_baseline_from_distrib is GradientShap's"):
        NoiseTunnel(gradient).attribute(x, draw_baseline_from_distrib=True, target=0)
    with pytest.raises(ValueError, match="nt_samples_batch_size must be a positive int"):
        NoiseTunnel(gradient).attribute(x, nt_samples_batch_size=0, target=0)
    with pytest.raises(TypeError, match="Gradient.attribute got argument.*: n_steps"):
        NoiseTunnel(gradient).attribute(x, target=0, n_steps=3)
    with pytest.raises(ValueError, match="NoiseAugmentation: give std .* or noise_level"):
        NoiseAugmentation(gradient, 4, std=0.1, noise_level=0.1)
    with pytest.raises(ValueError, match="NoiseAugmentation: std must be a finite number >= 0"):
        NoiseAugmentation(gradient, 4, std=-1.0)
    with pytest.raises(ValueError, match="NoiseAugmentation: noise_level must be a finite"):
        NoiseAugmentation(gradient, 4, noise_level=float("nan"))
    with pytest.raises(ValueError, match="InterpolationAugmentation: riemann_trapezoid needs n"):
        InterpolationAugmentation(gradient, 1)
    with pytest.raises(ValueError, match="InterpolationAugmentation: unknown quadrature 'simpson'"):
        InterpolationAugmentation(gradient, 4, method="simpson")
    with pytest.raises(ValueError, match="InterpolationAugmentation: baseline must be a finite"):
        InterpolationAugmentation(gradient, 4, baseline="zero")
    with pytest.raises(ValueError, match=r"baseline of shape \(3,\) does not broadcast to the "
                                         r"input \(3, 2, 8, 8\)"):  # fmt: skip
        InterpolationAugmentation(gradient, 4, baseline=np.zeros(3))(x)
    with pytest.raises(ValueError, match=r"InterpolationAugmentation: GradCAM's attribution has "
                                         r"shape \(3, 1, 8, 8\), not the input's \(3, 2, 8, 8\)"):  # fmt: skip
        InterpolationAugmentation(npxai.GradCAM(ours, "conv1"), 2)(x)
    with pytest.raises(TypeError, match="x must be a float32 or float64 array"):
        NoiseTunnel(gradient)(x.astype(np.int64))


def test_vargrad_of_a_constant_attribution_is_exactly_zero_in_float32():
    # a linear model's gradient is the same for every copy: its variance is 0, which the mean of
    # squares minus the squared mean (Captum's formula) misses by rounding in float32
    npxai.manual_seed(3)
    linear = npxai.Sequential(npxai.layers.Linear(40, 3))
    x = np.random.default_rng(3).standard_normal((4, 40)).astype(np.float32)
    e = NoiseTunnel(npxai.Gradient(linear), "vargrad", nt_samples=7, stdevs=0.5, seed=0)(x, 1)
    np.testing.assert_array_equal(e.attribution, np.zeros_like(x))
    w = linear[0].weight[1]
    copies = np.full((7, 40), w, np.float32)
    assert ((copies**2).mean(0) - copies.mean(0) ** 2 != 0).any()  # the unshifted formula


class Terminal:
    """A stream that says it is a terminal, keeping what is written."""

    def __init__(self):
        self.text = ""

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("progress", [True, False])
def test_progress_bars_count_the_batches_only_if_asked(cnn, monkeypatch, progress):
    _, ours, x = cnn  # 3 samples: 3 copies at batch 4 are 3 batches
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    gradient = npxai.Gradient(ours)
    NoiseTunnel(gradient, nt_samples=3, batch_size=4, progress=progress)(x)
    NoiseAugmentation(gradient, 3, batch_size=4, progress=progress)(x)
    InterpolationAugmentation(gradient, 3, batch_size=4, progress=progress)(x)
    GradientShap(ours, x[:1], 3, batch_size=4, progress=progress)(x)
    expected = "".join(
        f"\r{name}: 1/3 batches\r{name}: 2/3 batches\r{name}: 3/3 batches\n"
        for name in (
            "NoiseTunnel",
            "NoiseAugmentation",
            "InterpolationAugmentation",
            "GradientShap",
        )
    )
    assert stream.text == (expected if progress else "")


@pytest.mark.slow
def test_wrappers_on_the_cuda_backend_keep_a_device_input_there():
    """Under Numba's CUDA simulator (tests/conftest.py) unless NPXAI_TEST_CUDA=device."""
    from numba import cuda

    npxai.manual_seed(0)
    model = npxai.Sequential(npxai.layers.Linear(6, 5), npxai.layers.ReLU(),
                             npxai.layers.Linear(5, 3))  # fmt: skip
    x = np.random.default_rng(0).standard_normal((2, 6))
    for make in [
        lambda backend: NoiseTunnel(npxai.Gradient(model, backend=backend), "vargrad", 3, 0.3, 1),
        lambda backend: InterpolationAugmentation(npxai.LRP(model, backend=backend), 3),
        lambda backend: GradientShap(model, np.zeros((1, 6)), 3, 0.1, 1, backend=backend),
    ]:
        expected = make("numpy")(x, 1).attribution
        e = make("cuda")(cuda.to_device(x), 1)
        assert hasattr(e.attribution, "copy_to_host") and hasattr(e.input, "copy_to_host")
        assert_close(e.attribution.copy_to_host(), expected, np.float64)
        assert_close(make("cuda")(x, 1).attribution, expected, np.float64)
