"""Presets per model and per dataset. A preset fills only the options the user did not write on the command line.

- MODEL_PRESETS: the published training settings, used on UC Merced / AID and your own data.
- DATASET_PRESETS: what a dataset implies (bands, band order).
- SAMPLE_PRESETS: short runs on the embedded samples, so the used-by commands finish in minutes on 2 CPU cores.

`--template NAME` applies PRESETS_BY_NAME[NAME] (comma list allowed) on top; '.' (the default) applies none extra.
"""
from errors import UserError

MODEL_PRESETS = {
    # HSENet paper (UC Merced): 500 epochs, lr 1e-4 halved every 400 epochs, LR patch 48, batch 4, Adam.
    "HSENET": dict(epochs=500, lr=1e-4, decay_type="step", lr_decay=400, gamma=0.5, patch_size=48, batch_size=4),
    # ConvFormerSR: SwinIR-style training on 64x64 LR patches (img_size 64), Adam 2e-4 halved at fixed milestones.
    "CONVFORMERSR": dict(epochs=500, lr=2e-4, decay_type="multistep", milestones=[250, 400, 450, 475], gamma=0.5,
                         patch_size=64, batch_size=8),
    "BASIC": dict(epochs=300, lr=1e-4, decay_type="step", lr_decay=200, gamma=0.5, patch_size=48, batch_size=16),
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
