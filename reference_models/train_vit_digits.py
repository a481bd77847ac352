"""Train a small torchvision VisionTransformer on scikit-learn's 8x8 digits and write its weights.

    pip install -e ".[test]" scikit-learn && python reference_models/train_vit_digits.py

Writes, beside this script:
- ``vit_digits.safetensors``: the weights, under torchvision's VisionTransformer keys, with the
  test accuracy and the configuration (``CONFIG`` and ``in_channels``) as metadata;
and prints the test accuracy. The held-out digits are those of ``digits_test.npz`` (written by
``train_lenet_digits.py``; checked here, not rewritten). Deterministic: torch on one thread, fixed
seeds; the tensors come out bit for bit the same, though safetensors writes the metadata's keys in
no fixed order. About three minutes on one CPU thread.
"""

import math
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file
from torchvision.models.vision_transformer import VisionTransformer
from train_lenet_digits import digits_split  # the script's folder is on the path

HERE = Path(__file__).parent
CONFIG = dict(
    image_size=8,
    patch_size=2,
    num_layers=3,
    num_heads=4,
    hidden_dim=64,
    mlp_dim=128,
    num_classes=10,
)
IN_CHANNELS = 1


def torch_vit() -> VisionTransformer:
    """torchvision's VisionTransformer(**CONFIG) with a one-channel patch stem (grey digits)."""
    model = VisionTransformer(**CONFIG)
    model.conv_proj = torch.nn.Conv2d(
        IN_CHANNELS,
        CONFIG["hidden_dim"],
        kernel_size=CONFIG["patch_size"],
        stride=CONFIG["patch_size"],
    )
    # torchvision's own initialisation of the patch stem
    fan_in = IN_CHANNELS * CONFIG["patch_size"] ** 2
    torch.nn.init.trunc_normal_(model.conv_proj.weight, std=math.sqrt(1 / fan_in))
    torch.nn.init.zeros_(model.conv_proj.bias)
    return model


def random_shift(images: torch.Tensor) -> torch.Tensor:
    """Shift each N x 1 x 8 x 8 image by -1, 0 or 1 pixel along each axis, filling with zeros."""
    n, _, height, width = images.shape
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1))
    rows = torch.randint(0, 3, (n, 1)) + torch.arange(height)
    cols = torch.randint(0, 3, (n, 1)) + torch.arange(width)
    return padded[torch.arange(n)[:, None, None], 0, rows[:, :, None], cols[:, None, :]][:, None]


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x_train, x_test, y_train, y_test = digits_split()  # LeNet's split
    held_out = np.load(HERE / "digits_test.npz")
    assert np.array_equal(held_out["x"], x_test) and np.array_equal(held_out["y"], y_test)
    model = torch_vit()
    epochs, batch_size = 300, 64
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser,
        max_lr=2e-3,
        total_steps=epochs * math.ceil(len(x_train) / batch_size),
        pct_start=0.1,
    )
    xt, yt = torch.tensor(x_train), torch.tensor(y_train)
    start_time = time.perf_counter()
    for _epoch in range(epochs):
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), batch_size):
            batch = order[start : start + batch_size]
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(random_shift(xt[batch])), yt[batch])
            loss.backward()
            optimiser.step()
            scheduler.step()
    seconds = time.perf_counter() - start_time
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.tensor(x_test)).argmax(1).numpy() == y_test).mean()
    save_file(
        {k: v.contiguous().numpy() for k, v in model.state_dict().items()},
        HERE / "vit_digits.safetensors",
        metadata={
            "test_accuracy": f"{accuracy:.4f}",
            **{k: str(v) for k, v in CONFIG.items()},
            "in_channels": str(IN_CHANNELS),
        },
    )
    print(
        f"test accuracy {accuracy:.4f} on {len(y_test)} held-out digits "
        f"({seconds:.0f} s of training)"
    )


if __name__ == "__main__":
    main()
