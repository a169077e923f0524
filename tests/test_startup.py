"""Start-up: a command imports only what its input needs and builds its network once (bench/bench_startup.py
measures the seconds; these tests check the causes, never a time)."""
import json
import subprocess
import sys

import pytest

import option
from conftest import REPO_ROOT
from helpers import SAMPLE, isolated

# Modules that cost a part of a second or more to import, and what each is for.
HEAVY = {
    "torch._dynamo": "torch.compile (torchvision.ops, torch.optim's constructors and meta-device decompositions "
                     "import it)",
    "torchvision": "the VGG loss's reference in tests only",
    "matplotlib": "the training plots",
    "onnx": "the ONNX export",
    "onnxruntime": "deploy --backend onnxruntime",
    "rasterio": "GeoTIFF and 16-bit PNG reads and writes",
    "scipy.ndimage": "SSIM",
    "cv2": "the pre-upsampled networks' OpenCV bicubic",
}

LIST_MODULES = """
import json, runpy, sys
sys.argv = sys.argv[1:]
sys.path.insert(0, ".")
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as stop:
    assert not stop.code, stop.code
print(json.dumps(sorted(name for name in {heavy} if name in sys.modules)))
"""


def loaded_heavy_modules(script, *args):
    code = LIST_MODULES.format(heavy=sorted(HEAVY))
    proc = subprocess.run([sys.executable, "-c", code, script, *map(str, args)], cwd=REPO_ROOT / "codes",
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_a_deploy_of_png_images_imports_nothing_it_does_not_use(tmp_path):
    loaded = loaded_heavy_modules("demo_deploy.py", "--pre_train", "basic_x4_ucmerced16", "--scale=4", "--cpu",
                                  "--dir_data", SAMPLE / "test" / "LR_x4", "--dir_out", tmp_path / "out",
                                  *isolated(tmp_path))
    assert len(list((tmp_path / "out").glob("*.png"))) == 4  # it ran: the Sample's 4 test images
    assert not loaded, {name: HEAVY[name] for name in loaded}


def test_a_test_only_run_imports_what_scoring_needs_and_no_more(tmp_path):
    loaded = loaded_heavy_modules("demo_train.py", "--pre_train", "basic_x4_ucmerced16", "--scale=4", "--cpu",
                                  "--test_only", "--dataset=Sample", *isolated(tmp_path))  # PNG tiles
    assert not loaded, {name: HEAVY[name] for name in loaded}  # SSIM's filter is numpy's: not even scipy.ndimage


@pytest.mark.parametrize("model", ["BASIC", "HSENET", "CONVFORMERSR"])
def test_deploy_builds_its_network_once(tmp_path, monkeypatch, model):
    """The configuration's check builds the network (weights on the meta device), and the Model that loads the
    checkpoint takes that same network: one constructor call, with the checkpoint's weights and bitwise the output
    of a network built for real."""
    import torch

    import checkpoint
    from model import Model, network_spec

    spec = network_spec(model)
    argv = [f"--model={model}", "--scale=4", "--cpu", *isolated(tmp_path)]
    # the published size (a dataset other than the Sample), saved as an official state_dict: what a user downloads
    reference = spec.make_model(option.parse_args([*argv, "--dataset=Official"], purpose="none"))
    path = tmp_path / "weights.pt"
    torch.save(reference.state_dict(), path)
    network_class = type(reference)
    calls = []
    original = network_class.__init__

    def counted(self, *args, **kwargs):
        calls.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(network_class, "__init__", counted)
    cfg = option.parse_args([*argv, "--pre_train", str(path)], purpose="deploy")
    built = Model(cfg, torch.device("cpu"))
    assert len(calls) == 1
    assert not any(t.is_meta for t in built.model.state_dict().values())
    x = torch.rand(1, 3, 12, 12)
    if built.channels_last:  # the layout the Model runs the network in, for both
        reference, x = reference.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(built.model.eval()(x), reference.eval()(x))
    with torch.no_grad():  # the network's weights are copies: training them leaves the checkpoint read as it was
        for weight in built.model.parameters():
            weight.add_(1.0)
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in checkpoint.read(path).weights.items())
