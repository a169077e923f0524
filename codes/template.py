"""Presets: named sets of flag values. config.resolve layers them (see option.py for the order); a flag given on the
command line always wins.

- MODEL_PRESETS: per --model, the published training settings (used on UC Merced, AID and your own data).
- SAMPLE_PRESETS: per (--model, --dataset) for the embedded samples: short runs, so the used-by commands finish in
  minutes on 2 CPU cores.
- PRESETS_BY_NAME: what `--template NAME` applies (comma list allowed). A template may set --model and --dataset;
  the model and Sample presets are then chosen from those.

Training patches: `--patch_size` is the HR patch, as in EDSR-PyTorch and the official HSENet/TransENet code (192 at
x4 is 48 LR pixels). The published settings fix the LR patch at every scale (the HSENet README's 96/144/192 at
x2/x3/x4), so a preset states `lr_patch`, and `at_scale` turns it into the `--patch_size` of the run's scale.

What a dataset implies (band names, white level) is not a preset: it lives in the dataset's own `dataset.json`.
"""
from errors import UserError

# The baselines (SRCNN, VDSR, LGCNET, DCM from the HSENet repository, FSRCNN from TransENet) have no settings of their
# own there: they train with the repositories' option.py defaults (Adam, lr 1e-4 halved every 400 epochs, 500 epochs,
# batch 16, L1; HR patch 192 at x4, 96/144/192 in the README, i.e. LR 48), and their template.py only turns on
# cubic_input for SRCNN, VDSR and LGCNET. The original papers' own schedules (e.g. SGD for SRCNN and VDSR) are unused.
BASELINE_TRAINING = dict(epochs=500, lr=1e-4, decay_type="step", lr_decay=400, gamma=0.5, lr_patch=48,
                         batch_size=16)

MODEL_PRESETS = {
    # HSENet paper (UC Merced): 500 epochs, lr 1e-4 halved every 400 epochs, LR patch 48, batch 4, Adam.
    "HSENET": dict(epochs=500, lr=1e-4, decay_type="step", lr_decay=400, gamma=0.5, lr_patch=48, batch_size=4),
    # ConvFormerSR: SwinIR-style training on 64x64 LR patches (img_size 64), Adam 2e-4 halved at fixed milestones.
    "CONVFORMERSR": dict(epochs=500, lr=2e-4, decay_type="multistep", milestones=[250, 400, 450, 475], gamma=0.5,
                         lr_patch=64, batch_size=8),
    "BASIC": dict(epochs=300, lr=1e-4, decay_type="step", lr_decay=200, gamma=0.5, lr_patch=48, batch_size=16),
    # TransENet official code (option.py, template.py, README): 500 epochs, Adam lr 1e-4 halved every 400 epochs,
    # batch 16, HR patch 192/144/96 at x4/x3/x2, i.e. LR patch 48 (the network's fixed input size), and test by
    # blocks of that size (test_block: chop).
    "TRANSENET": dict(lr_patch=48, n_feats=64, en_depth=8, de_depth=1, epochs=500, lr=1e-4, decay_type="step",
                      lr_decay=400, gamma=0.5, batch_size=16, chop=True),
    # EDSR paper / EDSR-PyTorch (template EDSR_paper, option.py): 32 blocks of 256 features, residual scaling 0.1;
    # 300 epochs of 1000 batches of 16 LR 48x48 patches, Adam lr 1e-4 halved every 200 epochs (2e5 iterations).
    "EDSR": dict(n_resblocks=32, n_feats=256, res_scale=0.1, epochs=300, test_every=1000, lr=1e-4,
                 decay_type="step", lr_decay=200, gamma=0.5, lr_patch=48, batch_size=16),
    # RCAN paper / official RCAN_TrainCode (option.py, TrainRCAN_scripts.sh): 10 groups of 20 RCABs, 64 features,
    # reduction 16; 1000 epochs of 1000 batches of 16 LR 48x48 patches, Adam lr 1e-4 halved every 200 epochs.
    "RCAN": dict(n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, epochs=1000, test_every=1000, lr=1e-4,
                 decay_type="step", lr_decay=200, gamma=0.5, lr_patch=48, batch_size=16),
    # SwinIR classical SR (main_test_swinir.py; KAIR options/swinir/train_swinir_sr_classical.json): embed 180, 6 RSTBs
    # of 6 layers with 6 heads, window 8, MLP ratio 2, training size 48; 500k iterations (500 epochs of 1000 batches)
    # of 32 LR 48x48 patches, Adam lr 2e-4 halved at 250k/400k/450k/475k.
    "SWINIR": dict(embed_dim=180, depths=[6] * 6, num_heads=[6] * 6, window_size=8, mlp_ratio=2.0, img_size=48,
                   epochs=500, test_every=1000, lr=2e-4, decay_type="multistep", milestones=[250, 400, 450, 475],
                   gamma=0.5, lr_patch=48, batch_size=32),
    "SRCNN": dict(BASELINE_TRAINING, cubic_input=True),
    "VDSR": dict(BASELINE_TRAINING, cubic_input=True),
    "LGCNET": dict(BASELINE_TRAINING, cubic_input=True),
    "DCM": dict(BASELINE_TRAINING),
    "FSRCNN": dict(BASELINE_TRAINING),
}

# Each network's preset on the embedded Sample (RGB, 32 training tiles).
SAMPLE_RGB_PRESETS = {
    "BASIC": dict(n_feats=32, n_resblocks=4, epochs=30, batch_size=8, lr_patch=24, lr=5e-4, lr_decay=20),
    # The two papers' networks, lighter than published so that the used-by commands finish in minutes on 2 CPU cores
    # (HSENet: 32 features, 4 basic modules; ConvFormerSR: 2 stages of 2 blocks at embed 30, its light variant's
    # shape); train the full networks on UC Merced or AID with the model presets above.
    "HSENET": dict(n_feats=32, n_basic_modules=4, epochs=8, lr_patch=24, batch_size=4, lr=2e-4, lr_decay=400),
    "CONVFORMERSR": dict(embed_dim=30, depths=[2, 2], num_heads=[3, 3], num_block=2, epochs=3, lr_patch=32,
                         batch_size=4, decay_type="step", lr_decay=400),
    # The baselines, smaller than published (so they train in about a minute on 2 CPU cores), one pass per epoch.
    "TRANSENET": dict(n_feats=16, en_depth=1, de_depth=1, lr_patch=32, epochs=3, batch_size=4, lr=2e-4,
                      lr_decay=400),
    "EDSR": dict(n_resblocks=4, n_feats=32, res_scale=1.0, epochs=20, test_every=0, batch_size=8, lr_patch=24,
                 lr=5e-4, lr_decay=15),
    "RCAN": dict(n_resgroups=2, n_resblocks=2, n_feats=32, reduction=8, epochs=15, test_every=0, batch_size=8,
                 lr_patch=24, lr=5e-4, lr_decay=10),
    "SWINIR": dict(embed_dim=30, depths=[2, 2], num_heads=[3, 3], img_size=32, epochs=10, test_every=0, batch_size=4,
                   lr_patch=32, decay_type="step", lr_decay=400),
    # Baselines: about a minute each at x4 on 2 idle CPU cores. test_every fixes the batches per epoch, so Sample (32
    # training tiles) and SampleMS (14) run the same steps.
    "SRCNN": dict(epochs=30, test_every=4, batch_size=8, lr_patch=24, lr=5e-4, lr_decay=400),
    "VDSR": dict(epochs=10, test_every=4, batch_size=8, lr_patch=16, lr=5e-4, lr_decay=400),
    "LGCNET": dict(epochs=15, test_every=4, batch_size=8, lr_patch=24, lr=5e-4, lr_decay=400),
    "DCM": dict(epochs=15, test_every=4, batch_size=8, lr_patch=24, lr=5e-4, lr_decay=400),
    "FSRCNN": dict(epochs=20, test_every=20, batch_size=8, lr_patch=24, lr=1e-3, lr_decay=400),
}
# Where SampleMS (4 bands, 14 training tiles) differs from Sample; every other setting is Sample's. LGCNet takes 3 bands
# only, so it has no SampleMS preset.
SAMPLE_MS_DIFFERENCES = {
    "CONVFORMERSR": dict(epochs=6),  # fewer tiles per epoch (one pass each) than Sample
    "LGCNET": None,
}
SAMPLE_PRESETS = {
    **{(model, "Sample"): preset for model, preset in SAMPLE_RGB_PRESETS.items()},
    **{(model, "SampleMS"): dict(preset, **(SAMPLE_MS_DIFFERENCES.get(model) or {}))
       for model, preset in SAMPLE_RGB_PRESETS.items() if SAMPLE_MS_DIFFERENCES.get(model, {}) is not None},
}

PRESETS_BY_NAME = {
    # the paper protocol on UC Merced for HSENet (also what MODEL_PRESETS gives by default)
    "HSENET_UCMerced": dict(model="HSENET", dataset="UCMerced", **MODEL_PRESETS["HSENET"]),
    # a light ConvFormerSR (the embed_dim 60 variant of the paper)
    "CONVFORMERSR_light": dict(model="CONVFORMERSR", embed_dim=60),
    # EDSR-baseline of the EDSR paper (16 blocks of 64 features, no residual scaling)
    "EDSR_baseline": dict(model="EDSR", n_resblocks=16, n_feats=64, res_scale=1.0),
}


def at_scale(preset, scale):
    """The preset as flags for `scale`: its `lr_patch` (LR pixels) becomes `patch_size` = lr_patch x scale (HR)."""
    flags = dict(preset)
    if "lr_patch" in flags:
        flags["patch_size"] = flags.pop("lr_patch") * scale
    return flags


def named(text):
    """[(name, preset)] for a --template value ('.' or '': none), with a clear error for unknown names."""
    presets = []
    for name in [t.strip() for t in str(text).split(",") if t.strip() and t.strip() != "."]:
        if name not in PRESETS_BY_NAME:
            raise UserError(f"--template {name}: unknown preset; known: {', '.join(sorted(PRESETS_BY_NAME))}")
        presets.append((name, PRESETS_BY_NAME[name]))
    return presets
