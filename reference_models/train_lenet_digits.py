"""Train npxai.models.lenet on scikit-learn's 8x8 digits and write the files the demo uses.

    pip install -e ".[test]" scikit-learn && python reference_models/train_lenet_digits.py

Writes, beside this script:
- ``lenet_digits.safetensors``: the weights, under npxai.models.lenet's keys;
- ``digits_test.npz``: the held-out images (``x``, float32, N x 1 x 8 x 8, scaled to [0, 1]) and
  their labels (``y``);
and prints the test accuracy. Deterministic: torch on one thread, fixed seeds.
"""

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

HERE = Path(__file__).parent


def torch_lenet() -> torch.nn.Sequential:
    """The torch twin of ``npxai.models.lenet(num_classes=10, in_channels=1, input_size=8)``."""
    return torch.nn.Sequential(
        OrderedDict(
            conv1=torch.nn.Conv2d(1, 6, 3, padding=1),
            relu1=torch.nn.ReLU(),
            pool1=torch.nn.MaxPool2d(2),
            conv2=torch.nn.Conv2d(6, 16, 3, padding=1),
            relu2=torch.nn.ReLU(),
            pool2=torch.nn.MaxPool2d(2),
            flatten=torch.nn.Flatten(),
            fc1=torch.nn.Linear(16 * 2 * 2, 120),
            relu3=torch.nn.ReLU(),
            fc2=torch.nn.Linear(120, 84),
            relu4=torch.nn.ReLU(),
            fc3=torch.nn.Linear(84, 10),
        )
    )


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test)``: scikit-learn's digits scaled to [0, 1], N x 1 x 8
    x 8 float32, split 80/20, stratified, ``random_state=0``."""
    from sklearn.datasets import load_digits  # training needs scikit-learn; the tests do not
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    return train_test_split(x, digits.target, test_size=0.2, random_state=0, stratify=digits.target)


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    x_train, x_test, y_train, y_test = digits_split()
    model = torch_lenet()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt = torch.tensor(x_train), torch.tensor(y_train)
    for _epoch in range(60):
        order = torch.randperm(len(xt))
        for start in range(0, len(xt), 32):
            batch = order[start : start + 32]
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[batch]), yt[batch]).backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.tensor(x_test)).argmax(1).numpy() == y_test).mean()
    save_file(
        {k: v.contiguous().numpy() for k, v in model.state_dict().items()},
        HERE / "lenet_digits.safetensors",
        metadata={"test_accuracy": f"{accuracy:.4f}"},
    )
    np.savez(HERE / "digits_test.npz", x=x_test, y=y_test.astype(np.int64))
    print(f"test accuracy {accuracy:.4f} on {len(y_test)} held-out digits")


if __name__ == "__main__":
    main()
