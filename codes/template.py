"""Presets per model and per dataset. A preset fills only the options the user did not write on the command line.

- MODEL_PRESETS: the published training settings, used on UC Merced / AID and your own data.
- DATASET_PRESETS: what a dataset implies (bands, band order).
- SAMPLE_PRESETS: short runs on the embedded samples, so the used-by commands finish in minutes on 2 CPU cores.

`--template NAME` applies PRESETS_BY_NAME[NAME] (comma list allowed) on top; '.' (the default) applies none extra.
"""
from errors import UserError

# The baselines (SRCNN, VDSR, LGCNET, DCM from the HSENet repository, FSRCNN from TransENet) have no settings of their
# own there: they train with the repositories' option.py defaults (Adam, lr 1e-4 halved every 400 epochs, 500 epochs,
# batch 16, L1; HR patch 192 at x4, 96/144/192 in the README, i.e. LR 48), and their template.py only turns on
# cubic_input for SRCNN, VDSR and LGCNET. The original papers' own schedules (e.g. SGD for SRCNN and VDSR) are unused.
BASELINE_TRAINING = dict(epochs=500, lr=1e-4, decay_type="step", lr_decay=400, gamma=0.5, patch_size=48,
                         batch_size=16)

MODEL_PRESETS = {
    # HSENet paper (UC Merced): 500 epochs, lr 1e-4 halved every 400 epochs, LR patch 48, batch 4, Adam.
    "HSENET": dict(epochs=500, lr=1e-4, decay_type="step", lr_decay=400, gamma=0.5, patch_size=48, batch_size=4),
    # ConvFormerSR: SwinIR-style training on 64x64 LR patches (img_size 64), Adam 2e-4 halved at fixed milestones.
    "CONVFORMERSR": dict(epochs=500, lr=2e-4, decay_type="multistep", milestones=[250, 400, 450, 475], gamma=0.5,
                         patch_size=64, batch_size=8),
    "BASIC": dict(epochs=300, lr=1e-4, decay_type="step", lr_decay=200, gamma=0.5, patch_size=48, batch_size=16),
    "SRCNN": dict(BASELINE_TRAINING, cubic_input=True),
    "VDSR": dict(BASELINE_TRAINING, cubic_input=True),
    "LGCNET": dict(BASELINE_TRAINING, cubic_input=True),
    "DCM": dict(BASELINE_TRAINING),
    "FSRCNN": dict(BASELINE_TRAINING),
}

DATASET_PRESETS = {
    "SampleMS": dict(n_colors=4, bands=["blue", "green", "red", "nir"]),
}

SAMPLE_PRESETS = {
    ("BASIC", "Sample"): dict(n_feats=32, n_resblocks=4, epochs=30, batch_size=8, patch_size=24, lr=5e-4,
                              lr_decay=20),
    ("BASIC", "SampleMS"): dict(n_feats=32, n_resblocks=4, epochs=30, batch_size=8, patch_size=24, lr=5e-4,
                                lr_decay=20),
    ("HSENET", "Sample"): dict(epochs=3, patch_size=24, batch_size=4, lr_decay=400),
    ("HSENET", "SampleMS"): dict(epochs=3, patch_size=24, batch_size=4, lr_decay=400),
    ("CONVFORMERSR", "Sample"): dict(epochs=3, patch_size=32, batch_size=4, decay_type="step", lr_decay=400),
    ("CONVFORMERSR", "SampleMS"): dict(epochs=6, patch_size=32, batch_size=4, decay_type="step", lr_decay=400),
    # Baselines: about a minute each at x4 on 2 idle CPU cores. test_every fixes the batches per epoch, so Sample (32
    # training tiles) and SampleMS (14) run the same steps. LGCNet takes 3 bands only, so it has no SampleMS preset.
    ("SRCNN", "Sample"): dict(epochs=30, test_every=4, batch_size=8, patch_size=24, lr=5e-4, lr_decay=400),
    ("SRCNN", "SampleMS"): dict(epochs=30, test_every=4, batch_size=8, patch_size=24, lr=5e-4, lr_decay=400),
    ("VDSR", "Sample"): dict(epochs=10, test_every=4, batch_size=8, patch_size=16, lr=5e-4, lr_decay=400),
    ("VDSR", "SampleMS"): dict(epochs=10, test_every=4, batch_size=8, patch_size=16, lr=5e-4, lr_decay=400),
    ("LGCNET", "Sample"): dict(epochs=15, test_every=4, batch_size=8, patch_size=24, lr=5e-4, lr_decay=400),
    ("DCM", "Sample"): dict(epochs=15, test_every=4, batch_size=8, patch_size=24, lr=5e-4, lr_decay=400),
    ("DCM", "SampleMS"): dict(epochs=15, test_every=4, batch_size=8, patch_size=24, lr=5e-4, lr_decay=400),
    ("FSRCNN", "Sample"): dict(epochs=20, test_every=20, batch_size=8, patch_size=24, lr=1e-3, lr_decay=400),
    ("FSRCNN", "SampleMS"): dict(epochs=20, test_every=20, batch_size=8, patch_size=24, lr=1e-3, lr_decay=400),
}

PRESETS_BY_NAME = {
    # the paper protocol on UC Merced for HSENet (also what MODEL_PRESETS gives by default)
    "HSENET_UCMerced": dict(model="HSENET", dataset="UCMerced", **MODEL_PRESETS["HSENET"]),
    # a tiny ConvFormerSR (embed_dim 60 variant of the paper)
    "CONVFORMERSR_light": dict(model="CONVFORMERSR", embed_dim=60),
}


def apply(args, explicit):
    """Fill args from the presets, never overriding a flag in `explicit`."""
    layers = [MODEL_PRESETS.get(args.model, {}), DATASET_PRESETS.get(args.dataset, {}),
              SAMPLE_PRESETS.get((args.model, args.dataset), {})]
    for name in [t for t in args.template.split(",") if t and t != "."]:
        if name not in PRESETS_BY_NAME:
            raise UserError(f"--template {name}: unknown preset; known: {', '.join(sorted(PRESETS_BY_NAME))}")
        layers.append(PRESETS_BY_NAME[name])
    for layer in layers:
        for key, value in layer.items():
            if key not in explicit:
                setattr(args, key, value)
