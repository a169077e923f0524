"""--precision bf16 on the CPU: the bf16 path against fp32 on real tiles with briefly trained weights, the fp32 path
unchanged, the note on a CPU without bf16, and the loss computed in fp32. (Speed is measured by bench/bench_speed.py,
not here.)"""
from pathlib import Path

import numpy as np
import pytest
import torch

import image_files
import image_io
import model as model_package
import option
from helpers import SAMPLE
from loss import Loss
from model import Model
from radiometry import Radiometry

needs_bf16 = pytest.mark.skipif(not model_package.cpu_supports_bf16(),
                                reason="this CPU has no native bf16 arithmetic (avx512_bf16 or AMX)")
SCALE = 2
# Small versions of the two networks, so that a brief training fits in a few seconds on one core.
SMALL = {"HSENET": ["--n_feats=16", "--n_basic_modules=2"],
         "CONVFORMERSR": ["--embed_dim=24", "--depths=2,2", "--num_heads=3,3", "--num_block=2", "--img_size=24"]}
TRAIN_STEPS, PATCH, BATCH = 30, 24, 4


def config(name, precision):
    return option.parse_args([f"--model={name}", f"--scale={SCALE}", *SMALL[name], f"--precision={precision}",
                              "--cpu"], purpose="none")


def sample_pairs(split):
    """(LR, HR) float tensors in [0, 1] of the embedded Sample (real Landsat-8 tiles) at x2."""
    pairs = []
    for hr_path in image_files.list_images(SAMPLE / split / "HR"):
        lr = image_io.read_image(SAMPLE / split / f"LR_x{SCALE}" / Path(hr_path).name)
        hr = image_io.read_image(hr_path)[:lr.shape[0] * SCALE, :lr.shape[1] * SCALE]
        pairs.append(tuple(Radiometry.of(a.dtype, None, 1.0).to_network(a) for a in (lr, hr)))
    return pairs


def random_batch(pairs, generator):
    lrs, hrs = [], []
    for index in torch.randint(len(pairs), (BATCH,), generator=generator).tolist():
        lr, hr = pairs[index]
        top, left = torch.randint(lr.shape[1] - PATCH + 1, (2,), generator=generator).tolist()
        lrs.append(lr[:, top:top + PATCH, left:left + PATCH])
        hrs.append(hr[:, top * SCALE:(top + PATCH) * SCALE, left * SCALE:(left + PATCH) * SCALE])
    return torch.stack(lrs), torch.stack(hrs)


@pytest.fixture(scope="module")
def trained_weights():
    """{model: state_dict} after a brief fp32 training on Sample patches: weights whose output is an image, as the
    accuracy bounds are about (random weights give small, smooth outputs that hide rounding)."""
    pairs, weights = sample_pairs("train"), {}
    for name in SMALL:
        torch.manual_seed(0)
        net = Model(config(name, "fp32")).net
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(0)
        for _ in range(TRAIN_STEPS):
            lr, hr = random_batch(pairs, generator)
            loss = (net(lr) - hr).abs().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        weights[name] = net.state_dict()
    return weights


def model_with(name, precision, state):
    wrapper = Model(config(name, precision))
    wrapper.net.load_state_dict(state)
    return wrapper.eval()


def to_uint8(sr):
    return (sr.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


@needs_bf16
@pytest.mark.parametrize("name", sorted(SMALL))
def test_bf16_output_is_within_the_bounds_of_fp32_on_real_tiles(name, trained_weights):
    """The bounds bench_speed.py checks on the full-size networks: PSNR >= 55 dB against the fp32 output, >= 99 %
    of the 8-bit pixels identical, the others 1 level apart."""
    lr = torch.stack([lr for lr, _ in sample_pairs("test")])  # 4 real 60x60 LR tiles
    fp32 = to_uint8(model_with(name, "fp32", trained_weights[name]).inference_fn()(lr)).astype(int)
    bf16 = to_uint8(model_with(name, "bf16", trained_weights[name]).inference_fn()(lr)).astype(int)
    difference = np.abs(bf16 - fp32)
    assert fp32.std() > 10  # the trained network outputs an image, not a constant
    assert difference.max() <= 1
    assert (difference == 0).mean() >= 0.99
    assert 10 * np.log10(255**2 / (difference**2).mean()) >= 55


@needs_bf16
@pytest.mark.parametrize("name", sorted(SMALL))
def test_bf16_runs_on_the_cpu_and_the_output_and_loss_are_fp32(name, trained_weights):
    wrapper = model_with(name, "bf16", trained_weights[name]).train()
    assert wrapper.amp_dtype == torch.bfloat16 and wrapper.precision_note is None
    lr, hr = random_batch(sample_pairs("train"), torch.Generator().manual_seed(1))
    bf16_ops = []
    handles = [m.register_forward_hook(lambda _m, _i, out: bf16_ops.append(out.dtype == torch.bfloat16))
               for m in wrapper.net.modules() if isinstance(m, torch.nn.Conv2d)]
    sr = wrapper(lr)
    for handle in handles:
        handle.remove()
    assert any(bf16_ops) and not all(bf16_ops)  # the body in bf16, the fp32 regions (head, tail) not
    assert sr.dtype == torch.float32
    loss = Loss(config(name, "bf16"))
    value = loss(sr, hr)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx((sr.detach().double() - hr.double()).abs().mean().item(), rel=1e-6)
    # A network output in bf16 is still compared in fp32 (as an fp32 copy of it).
    assert loss(sr.detach().bfloat16(), hr).dtype == torch.float32
    value.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in wrapper.net.parameters())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_fp32_path_is_the_plain_network(name, trained_weights, monkeypatch):
    """--precision fp32, and bf16 on a CPU without bf16, give exactly the network's own fp32 output."""
    lr = torch.stack([lr for lr, _ in sample_pairs("val")])
    fp32 = model_with(name, "fp32", trained_weights[name])
    with torch.no_grad():
        plain = fp32.net(lr)
    torch.testing.assert_close(fp32.inference_fn()(lr), plain, rtol=0, atol=0)
    monkeypatch.setattr(model_package, "cpu_supports_bf16", lambda: False)
    emulated = model_with(name, "bf16", trained_weights[name])
    assert emulated.amp_dtype is None
    torch.testing.assert_close(emulated.inference_fn()(lr), plain, rtol=0, atol=0)


def test_a_cpu_without_bf16_gets_a_one_line_note_and_fp32(monkeypatch):
    monkeypatch.setattr(model_package, "cpu_supports_bf16", lambda: False)
    cpu = torch.device("cpu")
    assert model_package.autocast_dtype("bf16", cpu) is None
    note = model_package.fallback_note("bf16", cpu)
    assert "\n" not in note and "bf16 instructions" in note and note.endswith("running fp32")
    assert "CUDA only" in model_package.fallback_note("fp16", cpu)
    assert model_package.fallback_note("fp32", cpu) is None
    assert Model(config("HSENET", "bf16")).precision_note == note


def test_bf16_is_used_on_a_cpu_with_bf16_and_never_fp16(monkeypatch):
    monkeypatch.setattr(model_package, "cpu_supports_bf16", lambda: True)
    cpu = torch.device("cpu")
    assert model_package.autocast_dtype("bf16", cpu) == torch.bfloat16
    assert model_package.fallback_note("bf16", cpu) is None
    assert model_package.autocast_dtype("half", cpu) is None


def test_detection_falls_back_to_the_cpuinfo_flags(monkeypatch, tmp_path):
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, probe, raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(model_package, "Path", lambda _path: cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not model_package.cpu_supports_bf16()
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert model_package.cpu_supports_bf16()
    cpuinfo.unlink()
    assert not model_package.cpu_supports_bf16()
