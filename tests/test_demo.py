"""The bundled trained model: npxai reproduces torch's logits on every held-out digit, `npxai
digits` runs, and importing npxai does not import torch."""

import subprocess
import sys
from importlib.resources import files

import numpy as np
import torch
from conftest import assert_close
from safetensors.torch import load_file

import npxai
from npxai.__main__ import main

sys.path.insert(0, str(files("npxai.reference_models")))
from train_lenet_digits import torch_lenet  # noqa: E402


def test_bundled_weights_give_torchs_logits_on_all_held_out_digits():
    bundled = files("npxai.reference_models")
    theirs = torch_lenet().eval()
    theirs.load_state_dict(load_file(bundled / "lenet_digits.safetensors"))
    ours = npxai.models.lenet(num_classes=10, in_channels=1, input_size=8)
    ours.load_state_dict(npxai.load(bundled / "lenet_digits.safetensors"))
    test = npxai.load(bundled / "digits_test.npz")
    with torch.no_grad():
        expected = theirs(torch.tensor(test["x"])).numpy()
    logits = ours(test["x"])
    assert_close(logits, expected, np.float32)
    assert (logits.argmax(1) == test["y"]).mean() > 0.97


def test_digits_command_prints_accuracy_and_digits(capsys):
    main(["digits", "--show", "2"])
    out = capsys.readouterr().out
    assert "accuracy on 360 held-out digits: 0.9833" in out
    assert "digit 0: label 7, predicted 7" in out and "digit 1: label 6" in out
    assert "digit 2:" not in out


def test_importing_npxai_does_not_import_torch_or_onnx():
    code = (
        "import sys, npxai; npxai.models.vgg11(num_classes=2); "
        "print('torch' in sys.modules, 'onnx' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False False"
