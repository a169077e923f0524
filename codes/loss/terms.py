"""The spelling of --loss: a weighted sum of known terms, '1*L1+0.1*SPECTRAL'. option.py checks it when the flag is
parsed; loss/__init__.py builds the terms from it."""
import argparse
import math

LOSS_TERMS = ("L1", "MSE", "SPECTRAL", "VGG54", "VGG22", "GAN")  # and any VGG<block><conv>, e.g. VGG34
# The terms that can leave pixels out (nodata): per-pixel distances. A perceptual or adversarial term sees whole
# patches, so a fill value in one changes its value wherever it is masked.
MASKING_TERMS = ("L1", "MSE", "SPECTRAL")


def term_weight(text, name):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite weight > 0 for {name}, got {text}")
    return value


def loss_terms(text):
    """'1*L1+0.5*MSE' -> [(1.0, 'L1'), (0.5, 'MSE')]. A weight is a finite number > 0 (a negative one would train by
    gradient ascent, NaN fails an epoch later); each known term appears once."""
    terms = []
    for part in str(text).replace(" ", "").split("+"):
        weight, _, name = part.rpartition("*")
        name = name.upper()
        if name not in LOSS_TERMS and not (name.startswith("VGG") and name[3:].isdigit() and len(name) == 5):
            raise argparse.ArgumentTypeError(f"{text!r}: unknown term {name!r}; use {', '.join(LOSS_TERMS)}, e.g. "
                                             f"'1*L1+0.1*SPECTRAL'")
        value = term_weight(weight or "1", name)
        if name in [n for _, n in terms]:
            raise argparse.ArgumentTypeError(f"{text!r}: {name} appears twice; give each term once with its weight")
        terms.append((value, name))
    return terms
