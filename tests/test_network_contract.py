"""What every registered network owes the toolbox (docs/contributing.md, "Adding a network"), checked for each name in
model.REGISTRY: a module that ends with its NetworkSpec; a configuration that resolves from the command line; a
network built from that configuration alone, whose evaluation through model.Model takes a real LR tile of the
embedded Sample to its scale; the tile plan deploy derives from the spec; and weights that a checkpoint of ours
carries back bit for bit. A network added to the registry is checked here with no test of its own; its official
outputs need their own test (tests/test_zoo_*.py)."""
import pytest
import torch

import checkpoint
import image_files
import image_io
from conftest import REPO_ROOT
from model import REGISTRY, Model, network_spec
from model.spec import NetworkSpec
from option import parse_args
from radiometry import Radiometry

# Command-line sizes that build each network in a moment (their defaults are the published sizes).
TINY = {
    "BASIC": ["--n_feats=8", "--n_resblocks=1"],
    "HSENET": ["--n_feats=8", "--n_basic_modules=1"],
    "CONVFORMERSR": ["--embed_dim=30", "--depths=2", "--num_heads=3", "--num_block=1"],
    "EDSR": ["--n_resblocks=1", "--n_feats=8"],
    "RCAN": ["--n_resgroups=1", "--n_resblocks=1", "--n_feats=8", "--reduction=2"],
    "SWINIR": ["--embed_dim=12", "--depths=2", "--num_heads=2", "--window_size=4", "--img_size=8"],
    "TRANSENET": ["--n_feats=8", "--en_depth=1", "--de_depth=1", "--patch_size=80"],  # its fixed input: 40 LR pixels
}
SCALE = 2


def resolved(name, tmp_path):
    argv = [f"--model={name}", f"--scale={SCALE}", "--cpu", f"--dir_experiment={tmp_path}", *TINY.get(name, [])]
    return parse_args(argv, purpose="none")


def sample_lr():
    """The first test LR of the embedded Sample at x2 (40 x 40, RGB, 8-bit)."""
    path = image_files.list_images(REPO_ROOT / "datasets" / "Sample" / "test" / f"LR_x{SCALE}")[0]
    return image_io.read_image(path)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_registered_network_keeps_the_contract(name, tmp_path):
    spec = network_spec(name)
    assert isinstance(spec, NetworkSpec) and spec.make_model is not None
    cfg = resolved(name, tmp_path)
    torch.manual_seed(0)
    model = Model(cfg).eval()
    assert (sum(p.numel() for p in model.net.parameters()) == 0) == spec.parameter_free
    lr = sample_lr()
    radiometry = Radiometry.of(lr.dtype, None, cfg.rgb_range)
    x = radiometry.to_network(lr)[None]
    with torch.no_grad():
        sr = model(x, plan=model.tile_plan, radiometry=radiometry)
    assert sr.shape == (1, 3, lr.shape[0] * SCALE, lr.shape[1] * SCALE) and torch.isfinite(sr).all()
    fixed = spec.fixed_input_size_of(cfg)
    assert model.tile_plan.fixed == bool(fixed) and (not fixed or model.tile_plan.tile == fixed)
    assert model.tile_plan.tile % spec.tile_multiple_of(cfg) == 0


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - {"BICUBIC"}))
def test_every_registered_network_comes_back_from_a_checkpoint_of_ours(name, tmp_path):
    """Saved as training saves it, loaded by deploy's --pre_train with no size flag: the same weights."""
    cfg = resolved(name, tmp_path)
    torch.manual_seed(0)
    net = Model(cfg).net
    path = tmp_path / "net.pt"
    checkpoint.save(path, {"model": net.state_dict(), "config": cfg.values()})
    loaded = parse_args([f"--pre_train={path}", "--cpu", f"--dir_experiment={tmp_path}"], purpose="deploy")
    assert (loaded.model, loaded.scale) == (name, SCALE)
    other = Model(loaded).net
    for key, value in net.state_dict().items():
        assert torch.equal(value, other.state_dict()[key]), key


def test_every_network_module_is_registered_and_nothing_else_is_a_model():
    """REGISTRY is the one registration: every module of codes/model/ that declares a SPEC is in it (so the tests
    above reach it), and a name that is not a network (a helper module) is the one-line unknown-model error."""
    import importlib

    from errors import UserError

    folder = REPO_ROOT / "codes" / "model"
    declared = {path.stem for path in folder.glob("*.py")
                if path.stem != "__init__" and hasattr(importlib.import_module(f"model.{path.stem}"), "SPEC")}
    assert declared == set(REGISTRY.values())
    for helper in ("common", "spec"):
        with pytest.raises(UserError, match=f"--model {helper}: unknown model"):
            network_spec(helper)
