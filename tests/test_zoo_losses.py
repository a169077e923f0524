"""Losses and data from the seed: VGG perceptual loss, GAN loss (EDSR's discriminator, exact resume), --noise, the
DIV2K converter, and calculate_PSNR_SSIM.py over several result folders.

The VGG tests use random VGG19 weights written to a temporary file (--vgg_weights): nothing is downloaded."""
import csv
import shutil
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

import checkpoint
import demo_deploy
import demo_train
import image_files
import image_io
from conftest import REPO_ROOT
from data import make_dataset
from data_scripts import prepare_div2k
from data_scripts.prepare_dataset import make_lr
from errors import UserError
from helpers import SAMPLE, TINY_BASIC, isolated
from loss import Loss, adversarial
from loss.adversarial import Adversarial, Discriminator
from loss.adversarial import average_gradients_across_processes as average_gradients
from loss.vgg import IMAGENET_MEAN, IMAGENET_STD, WEIGHTS_URL, conv_index, expected_shapes, vgg19_features
from option import parse_args

sys.path.insert(0, str(REPO_ROOT / "metric_scripts"))
import calculate_PSNR_SSIM as metric_script  # noqa: E402


# ------------------------------------------------------------------------------------------------------------ VGG
@pytest.fixture(scope="session")
def random_vgg(tmp_path_factory):
    """A VGG19 state_dict with random (He-initialised, seeded) weights, saved like torchvision's file."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in expected_shapes().items():
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        state[key] = (torch.randn(shape, generator=generator) * (2 / fan_in) ** 0.5 if len(shape) > 1
                      else torch.randn(shape, generator=generator) * 0.01)
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.pt"
    torch.save(state, path)
    return path, state


def torchvision_features(state, last):
    """torchvision's own vgg19().features[:last + 1] with `state`: the reference the official code used."""
    with torch.device("meta"):
        features = torchvision.models.vgg19(weights=None).features[:last + 1]
    features = features.to_empty(device="cpu")
    features.load_state_dict({k[len("features."):]: v for k, v in state.items() if int(k.split(".")[1]) <= last})
    return features


def sample_pair(rgb_range):
    """A real Sample HR tile and a blurred copy of it (bicubic x4 of its LR), as (1, 3, H, W) in [0, rgb_range]."""
    hr = image_io.read_image(SAMPLE / "test" / "HR" / "landsat_r0240_c0600.png")
    lr = image_io.read_image(SAMPLE / "test" / "LR_x4" / "landsat_r0240_c0600.png")
    sr = torch.nn.functional.interpolate(torch.from_numpy(lr.transpose(2, 0, 1)[None].astype(np.float32)),
                                         scale_factor=4, mode="bicubic", align_corners=False)
    hr = torch.from_numpy(hr.transpose(2, 0, 1)[None].astype(np.float32))
    return sr * rgb_range / 255, hr * rgb_range / 255


def test_vgg_layers_are_torchvision_vgg19():
    with torch.device("meta"):
        reference = torchvision.models.vgg19(weights=None)
    shapes = {k: tuple(v.shape) for k, v in reference.state_dict().items() if k.startswith("features.")}
    assert expected_shapes() == shapes
    assert conv_index(2, 2) == 7 and conv_index(5, 4) == 34  # EDSR-PyTorch: modules[:8] and modules[:35]
    with torch.device("meta"):
        ours = vgg19_features(34)
    assert [type(m) for m in ours] == [type(m) for m in reference.features[:35]]
    assert isinstance(ours[-1], torch.nn.Conv2d)  # before the ReLU


@pytest.mark.parametrize("layer, last, rgb_range", [("VGG54", 34, 255.0), ("VGG22", 7, 1.0)])
def test_vgg_loss_equals_the_torchvision_reference(random_vgg, layer, last, rgb_range):
    path, state = random_vgg
    loss = Loss(parse_args([f"--loss=1*{layer}", f"--vgg_weights={path}", f"--rgb_range={rgb_range}"]))
    sr, hr = sample_pair(rgb_range)
    value = loss(sr, hr)
    features = torchvision_features(state, last)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = F.mse_loss(features((sr / rgb_range - mean) / std), features((hr / rgb_range - mean) / std))
    assert float(expected) > 1e-3  # the pair differs: the check means something
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss(hr, hr)) == 0.0


def test_vgg_is_frozen_fp32_and_passes_gradients_to_sr(random_vgg):
    path, _ = random_vgg
    loss = Loss(parse_args(["--loss=1*VGG22", f"--vgg_weights={path}"]))
    assert not [p for p in loss.parameters() if p.requires_grad]
    sr, hr = sample_pair(1.0)
    sr.requires_grad_(True)
    value = loss(sr, hr)
    value.backward()
    assert sr.grad.abs().sum() > 0 and all(p.grad is None for p in loss.parameters())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert float(loss(sr, hr).detach()) == float(value.detach())  # the VGG runs in fp32 under autocast


def test_vgg_reads_torchvision_cache_and_never_downloads(random_vgg, tmp_path, monkeypatch):
    path, _ = random_vgg
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UserError) as err:
        Loss(parse_args(["--loss=1*L1+1*VGG54"]))
    message = str(err.value)
    assert "\n" not in message and WEIGHTS_URL in message and "--vgg_weights" in message
    assert str(tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in message
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    shutil.copy(path, tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth")
    sr, hr = sample_pair(1.0)
    cached = Loss(parse_args(["--loss=1*VGG54"]))(sr, hr)
    explicit = Loss(parse_args(["--loss=1*VGG54", f"--vgg_weights={path}"]))(sr, hr)
    assert float(cached) == float(explicit) > 0


def test_vgg_weights_are_checked_strictly(random_vgg, tmp_path):
    _, state = random_vgg

    def attempt(bad_state, *extra):
        bad = tmp_path / "bad.pt"
        torch.save(bad_state, bad)
        Loss(parse_args(["--loss=1*VGG54", f"--vgg_weights={bad}", *extra]))

    with pytest.raises(UserError, match="1 missing weight.*features.34.bias"):
        attempt({k: v for k, v in state.items() if k != "features.34.bias"})
    with pytest.raises(UserError, match="wrong shape.*features.0.weight"):
        attempt({**state, "features.0.weight": torch.zeros(64, 4, 3, 3)})
    with pytest.raises(UserError, match="unexpected.*head.weight"):
        attempt({**state, "head.weight": torch.zeros(1)})
    with pytest.raises(UserError, match="NaN"):
        attempt({**state, "features.2.bias": torch.full((64,), float("nan"))})
    attempt({**state, "classifier.0.weight": torch.zeros(2, 2)})  # torchvision's full file: the classifier is ignored
    with pytest.raises(UserError, match="no such file"):
        Loss(parse_args(["--loss=1*VGG54", f"--vgg_weights={tmp_path / 'none.pt'}"]))
    with pytest.raises(UserError, match="VGG<block><conv>"):
        Loss(parse_args(["--loss=1*VGG63"]))


def test_vgg_takes_red_green_blue_of_multispectral_data(random_vgg):
    path, _ = random_vgg
    loss = Loss(parse_args(["--dataset=SampleMS", "--loss=1*VGG22", f"--vgg_weights={path}"]))  # blue,green,red,nir
    sr, hr = sample_pair(1.0)
    as_bgrn = [2, 1, 0, 0]
    rgb = Loss(parse_args(["--loss=1*VGG22", f"--vgg_weights={path}"]))(sr, hr)
    assert float(loss(sr[:, as_bgrn], hr[:, as_bgrn])) == pytest.approx(float(rgb), rel=1e-6)
    with pytest.raises(UserError, match="name them with --bands"):
        Loss(parse_args(["--dataset=SampleMS", "--n_colors=5", "--loss=1*VGG22", f"--vgg_weights={path}"]))


# ------------------------------------------------------------------------------------------------------------ GAN
def test_discriminator_is_edsr_s():
    net = Discriminator(n_colors=3, patch_size=96)
    convs = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512)]
    strides = [1, 2, 1, 2, 1, 2, 1, 2]
    for i, ((cin, cout), stride) in enumerate(zip(convs, strides)):
        conv, bn, act = net.features[i]
        assert conv.weight.shape == (cout, cin, 3, 3) and conv.bias is None and conv.stride == (stride, stride)
        assert bn.num_features == cout and act.negative_slope == 0.2
    assert net.classifier[0].weight.shape == (1024, 512 * 6 * 6) and net.classifier[2].weight.shape == (1, 1024)
    # by hand: conv weights + BatchNorm affine + the two linear layers
    expected = sum(a * b * 9 for a, b in convs) + 2 * sum(b for _, b in convs) + (18432 + 1) * 1024 + 1025
    assert sum(p.numel() for p in net.parameters()) == expected == 23_563_713
    assert net(torch.rand(2, 3, 96, 96)).shape == (2, 1)
    odd = Discriminator(n_colors=4, patch_size=36)  # not a multiple of 16: the real 3x3 last map
    assert odd.classifier[0].in_features == 512 * 9 and odd(torch.rand(2, 4, 36, 36)).shape == (2, 1)


def gan_term(*extra):
    cfg = parse_args(["--loss=1*L1+1*GAN", "--patch_size=24", "--scale=2", "--lr=1e-3", *extra])
    return Loss(cfg), cfg


def real_patches(n=4, size=24):
    hr = image_io.read_image(SAMPLE / "train" / "HR" / "landsat_r0120_c0000.png").astype(np.float32) / 255
    return torch.stack([torch.from_numpy(hr[size * i:size * (i + 1), :size].transpose(2, 0, 1)) for i in range(n)])


def test_gan_steps_the_discriminator_gan_k_times_then_returns_the_generator_loss():
    torch.manual_seed(0)
    loss, _ = gan_term("--gan_k=3")
    term = loss.terms[1]
    assert isinstance(term, Adversarial)
    real = real_patches()
    sr = F.avg_pool2d(real, 3, 1, 1).requires_grad_(True)  # blurred: a fake the discriminator can learn to spot
    total = loss(sr, real)
    assert all(float(s["step"]) == 3 for s in term.optimizer.state.values())
    grads = [p.grad.clone() for p in term.discriminator.parameters()]
    total.backward()
    assert sr.grad.abs().sum() > 0
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, term.discriminator.parameters()))  # D: no G gradient
    # the generator's term is BCE(D(SR), 1) = softplus(-D(SR)) with the updated discriminator (train-mode BN)
    with torch.no_grad():
        expected = F.softplus(-term.discriminator(sr)).mean()
    assert loss.last["GAN"] == pytest.approx(float(expected), rel=1e-5)
    assert set(loss.weighted_last()) == {"L1", "GAN", "DIS"} and loss.last["DIS"] == term.discriminator_loss
    first = term.discriminator_loss
    for _ in range(4):
        loss(sr.detach(), real)
    assert term.discriminator_loss < 0.2 * first  # it learns to tell the blurred patches from the real ones


def test_gan_optimizer_and_schedule_follow_the_main_ones():
    loss, cfg = gan_term("--betas=0.5,0.99", "--lr_decay=1", "--gamma=0.5")
    term = loss.terms[1]
    group = term.optimizer.param_groups[0]
    assert isinstance(term.optimizer, torch.optim.Adam) and group["lr"] == cfg.lr and group["betas"] == (0.5, 0.99)
    loss(torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24))
    loss.end_epoch()
    assert term.optimizer.param_groups[0]["lr"] == cfg.lr / 2
    with pytest.raises(UserError, match="24x24 HR patches"):
        loss(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))


def train(tmp_path, *extra):
    return demo_train.main(TINY_BASIC + ["--scale=2"] + isolated(tmp_path) + list(extra))


def run_checkpoint(tmp_path, save):
    return torch.load(tmp_path / "experiment" / save / "model" / "model_latest.pt", weights_only=True)


def assert_same_state(a, b):
    if torch.is_tensor(a):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_state(a[key], b[key])
    else:
        assert a == b


def test_gan_vgg_noise_training_resumes_exactly(tmp_path, random_vgg, monkeypatch):
    """2 epochs straight == 1 epoch + --resume + 1 epoch: generator, discriminator, its optimizer and schedule."""
    flags = ["--loss=1*L1+0.1*VGG22+0.05*GAN", f"--vgg_weights={random_vgg[0]}", "--noise=G5", "--lr=1e-3",
             "--lr_decay=1"]
    train(tmp_path, "--epochs=2", "--save=straight", *flags)
    train(tmp_path, "--epochs=1", "--save=split", *flags)
    for copy in ("unrestored", "stateless"):
        shutil.copytree(tmp_path / "experiment" / "split", tmp_path / "experiment" / copy)
    train(tmp_path, "--epochs=2", "--save=split", "--resume", *flags)
    straight, split = run_checkpoint(tmp_path, "straight"), run_checkpoint(tmp_path, "split")
    assert_same_state(straight["model"], split["model"])
    assert_same_state(straight["loss"], split["loss"])
    gan = straight["loss"]["GAN"]
    assert gan["scheduler"]["last_epoch"] == 2 and gan["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2.5e-4)
    assert float(gan["optimizer"]["state"][0]["step"]) == 2 * 2  # 2 batches per epoch (--test_every 2), gan_k 1
    with open(tmp_path / "experiment" / "straight" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"loss_L1", "loss_VGG22", "loss_GAN", "loss_DIS"} <= set(rows[0]) and float(rows[1]["loss_DIS"]) > 0

    # the test can fail: resuming without the discriminator's state gives other weights
    monkeypatch.setattr(Adversarial, "load_checkpoint_state", lambda self, state, source: None)
    train(tmp_path, "--epochs=2", "--save=unrestored", "--resume", *flags)
    unrestored = run_checkpoint(tmp_path, "unrestored")
    assert not torch.equal(unrestored["model"]["head.weight"], straight["model"]["head.weight"])
    monkeypatch.undo()

    # a checkpoint without it cannot be resumed exactly: a one-line error, not a silent fresh discriminator
    path = tmp_path / "experiment" / "stateless" / "model" / "model_latest.pt"
    payload = torch.load(path, weights_only=True)
    checkpoint.save(path, {k: v for k, v in payload.items() if k not in ("loss", checkpoint.CHECKSUM_KEY)})
    with pytest.raises(UserError, match="no state of the GAN loss term"):
        train(tmp_path, "--epochs=2", "--save=stateless", "--resume", *flags)


def test_gan_averages_the_discriminator_gradients_over_processes(monkeypatch):
    """Under torchrun (mocked here: a second process whose gradients are 3x ours), every discriminator step uses the
    mean gradient, so all processes keep the same discriminator. (A real 2-process gloo run was checked once; it takes
    too long for the suite.)"""
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda tensor: tensor.mul_(4))  # ours + the other's 3x
    local = {}

    def spy(module):
        local.update({name: p.grad.clone() for name, p in module.named_parameters()})
        average_gradients(module)

    monkeypatch.setattr(adversarial, "average_gradients_across_processes", spy)
    loss, cfg = gan_term("--optimizer=SGD", "--momentum=0")  # plain SGD: the step is -lr x the gradient it gets
    term = loss.terms[1]
    before = {name: p.detach().clone() for name, p in term.discriminator.named_parameters()}
    real = real_patches()
    loss(F.avg_pool2d(real, 3, 1, 1), real)
    for name, p in term.discriminator.named_parameters():
        assert local[name].abs().sum() > 0
        assert torch.allclose(p.detach(), before[name] - cfg.lr * 2 * local[name], rtol=0, atol=1e-6), name


# ---------------------------------------------------------------------------------------------------------- noise
def noise_args(tmp_path, *extra):
    return parse_args(["--patch_size=96", "--scale=2", "--ext=img", *isolated(tmp_path), *extra])


def test_noise_is_seeded_gaussian_in_8bit_levels_on_training_lr_only(tmp_path):
    clean = make_dataset(noise_args(tmp_path), "train", train=True)
    noisy = make_dataset(noise_args(tmp_path, "--noise=10"), "train", train=True)
    again = make_dataset(noise_args(tmp_path, "--noise", "G10"), "train", train=True)
    differences = []
    for index in range(4):
        (lr_c, hr_c, _), (lr_n, hr_n, _), (lr_a, _, _) = clean[index], noisy[index], again[index]
        assert torch.equal(hr_c, hr_n) and torch.equal(lr_n, lr_a)  # same patch and HR; the same seed: same noise
        clean_levels, noisy_levels = (lr_c * 255).double(), (lr_n * 255).double()
        assert torch.allclose(noisy_levels, noisy_levels.round(), atol=1e-3)  # rounded to 8-bit levels
        inside = (clean_levels > 40) & (clean_levels < 215)  # away from the clip at 0 and 255
        differences.append((noisy_levels - clean_levels)[inside])
    differences = torch.cat(differences)
    assert differences.numel() > 10000
    assert float(differences.std()) == pytest.approx((10**2 + 1 / 12) ** 0.5, abs=0.3)  # sigma 10 (+ rounding)
    assert abs(float(differences.mean())) < 0.3
    noisy.set_epoch(1)
    assert not torch.equal(noisy[0][0], again[0][0])  # another epoch, other noise
    for split in ("val", "test"):
        plain = make_dataset(noise_args(tmp_path), split)
        with_flag = make_dataset(noise_args(tmp_path, "--noise=10"), split)
        assert all(torch.equal(plain[i][0], with_flag[i][0]) for i in range(len(plain)))


@pytest.mark.parametrize("text, message", [("S10", "Poisson"), ("-1", ">= 0"), ("Gx", "a number")])
def test_noise_flag_errors(text, message, capsys):
    with pytest.raises(SystemExit):
        parse_args([f"--noise={text}"])
    assert message in capsys.readouterr().err
    assert parse_args(["--noise=G7.5"]).noise == 7.5 and parse_args(["--noise=."]).noise == 0.0  # official spellings


# ---------------------------------------------------------------------------------------------------------- DIV2K
@pytest.fixture
def fake_div2k(tmp_path):
    """The official DIV2K layout, filled with real Sample tiles: 3 training and 3 validation images, official LR at
    x2 and x4 (x3 absent)."""
    src = tmp_path / "DIV2K"
    parts = {"train": (sorted((SAMPLE / "train" / "HR").iterdir())[:3], 1, "train"),
             "valid": (sorted((SAMPLE / "val" / "HR").iterdir())[:3], 801, "val")}
    for part, (files, first, sample_split) in parts.items():
        for number, hr in enumerate(files, first):
            (src / f"DIV2K_{part}_HR").mkdir(parents=True, exist_ok=True)
            shutil.copy(hr, src / f"DIV2K_{part}_HR" / f"{number:04d}.png")
            for scale in (2, 4):
                folder = src / f"DIV2K_{part}_LR_bicubic" / f"X{scale}"
                folder.mkdir(parents=True, exist_ok=True)
                shutil.copy(SAMPLE / sample_split / f"LR_x{scale}" / hr.name, folder / f"{number:04d}x{scale}.png")
    return src


def test_div2k_converter_and_dataset(tmp_path, fake_div2k):
    dst = tmp_path / "datasets" / "DIV2K"
    prepare_div2k.main(["--src", str(fake_div2k), "--dst", str(dst), "--val", "2"])
    names = {split: sorted(p.stem for p in image_files.list_images(dst / split / "HR")) for split in ("train", "val",
                                                                                                   "test")}
    assert names == {"train": ["0001", "0002", "0003"], "val": ["0801", "0802"], "test": ["0801", "0802", "0803"]}
    official = fake_div2k / "DIV2K_train_LR_bicubic" / "X4" / "0002x4.png"
    assert (dst / "train" / "LR_x4" / "0002.png").read_bytes() == official.read_bytes()  # the official LR, renamed
    assert (dst / "train" / "LR_x4" / "0002.png").stat().st_ino == official.stat().st_ino  # hard-linked
    hr = image_io.read_image(dst / "test" / "HR" / "0803.png")
    assert np.array_equal(image_io.read_image(dst / "test" / "LR_x3" / "0803.png"), make_lr(hr, 3))  # made here
    for scale in (2, 3, 4):
        cfg = parse_args(["--dataset=DIV2K", f"--dir_data={dst}", f"--scale={scale}", f"--patch_size={12 * scale}",
                          *isolated(tmp_path)])
        assert cfg.bands == ["red", "green", "blue"]  # dataset.json
        lr, hr, _ = make_dataset(cfg, "train", train=True)[0]
        assert lr.shape == (3, 12, 12) and hr.shape == (3, 12 * scale, 12 * scale)


def test_div2k_errors_say_what_to_download(tmp_path, fake_div2k):
    with pytest.raises(UserError) as err:
        make_dataset(parse_args(["--dataset=DIV2K", f"--dir_data={tmp_path / 'none'}", *isolated(tmp_path)]), "val")
    assert "https://data.vision.ee.ethz.ch/cvl/DIV2K/" in str(err.value) and "prepare_div2k.py" in str(err.value)
    with pytest.raises(UserError, match=r"DIV2K_valid_LR_bicubic/X2/0802x2.png is missing"):
        (fake_div2k / "DIV2K_valid_LR_bicubic" / "X2" / "0802x2.png").unlink()
        prepare_div2k.main(["--src", str(fake_div2k), "--dst", str(tmp_path / "out"), "--val", "2"])
    shutil.rmtree(fake_div2k / "DIV2K_valid_HR")
    with pytest.raises(UserError, match="DIV2K_valid_HR.zip"):
        prepare_div2k.main(["--src", str(fake_div2k), "--dst", str(tmp_path / "out2"), "--val", "2"])


def test_div2k_converter_checks_pair_sizes(tmp_path, fake_div2k):
    wrong = fake_div2k / "DIV2K_train_LR_bicubic" / "X2" / "0001x2.png"
    shutil.copy(fake_div2k / "DIV2K_train_LR_bicubic" / "X4" / "0001x4.png", wrong)
    with pytest.raises(UserError, match="0001x2.png is 30x30 but 0001.png is 120x120: not its x2"):
        prepare_div2k.main(["--src", str(fake_div2k), "--dst", str(tmp_path / "out"), "--val", "2"])


# ------------------------------------------------------------------------------------------------- metric script
def read_rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_metric_script_summarises_several_folders(tmp_path):
    for scale in (2, 4):
        demo_deploy.main(["--model=BICUBIC", f"--scale={scale}", *isolated(tmp_path)])
    results = tmp_path / "experiment" / "results"
    folders = [results / "BICUBICx2_Sample", results / "BICUBICx4_Sample"]
    metric_script.main(["--sr", *map(str, folders)])
    columns, rows = read_rows(results / "psnr_ssim_summary.csv")
    assert columns[:3] == ["model", "folder", "psnr_chmean"]
    assert [r["model"] for r in rows] == ["BICUBIC", "BICUBIC"] and [r["folder"] for r in rows] == list(map(str,
                                                                                                         folders))
    for row, folder in zip(rows, folders):
        own_columns, own = read_rows(folder / "psnr_ssim.csv")  # each folder's per-image CSV, as with one folder
        assert own[-1]["image"] == "average" and len(own) == 5
        assert all(row[c] == own[-1][c] for c in own_columns[1:])
    assert float(rows[0]["psnr_rgb"]) > float(rows[1]["psnr_rgb"]) + 1  # x2 is easier than x4
    metric_script.main(["--sr", *map(str, folders), "--csv", str(tmp_path / "table.csv")])
    assert read_rows(tmp_path / "table.csv")[1] == rows
