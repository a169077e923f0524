"""Presets: named sets of flag values. config.resolve layers them (see option.py for the order); a flag given on the
command line always wins.

- MODEL_PRESETS: per --model, the published training settings (used on UC Merced, AID and your own data).
- SAMPLE_PRESETS: per (--model, --dataset) for the embedded samples: short runs, so the used-by commands finish in
  minutes on 2 CPU cores.
- PRESETS_BY_NAME: what `--template NAME` applies (comma list allowed). A template may set --model and --dataset;
  the model and Sample presets are then chosen from those.

What a dataset implies (band names, white level) is not a preset: it lives in the dataset's own `dataset.json`.
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
    # a light ConvFormerSR (the embed_dim 60 variant of the paper)
    "CONVFORMERSR_light": dict(model="CONVFORMERSR", embed_dim=60),
}


def named(text):
    """[(name, preset)] for a --template value ('.' or '': none), with a clear error for unknown names."""
    presets = []
    for name in [t.strip() for t in str(text).split(",") if t.strip() and t.strip() != "."]:
        if name not in PRESETS_BY_NAME:
            raise UserError(f"--template {name}: unknown preset; known: {', '.join(sorted(PRESETS_BY_NAME))}")
        presets.append((name, PRESETS_BY_NAME[name]))
    return presets
