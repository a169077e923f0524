"""Weighted sum of loss terms, parsed from --loss, e.g. "1*L1", "1*MSE", "1*L1+0.5*MSE", "1*L1+0.1*SPECTRAL",
"1*VGG54", "1*L1+0.005*GAN".

- L1, MSE: pixel losses.
- VGG22, VGG54 (any VGG<block><conv>): the perceptual loss of SRGAN / EDSR (loss/vgg.py).
- GAN: the adversarial loss with EDSR's discriminator (loss/adversarial.py); its discriminator loss is logged as the
  term DIS (weight 1, not part of the total), as EDSR logs it.
- SPECTRAL: this project's spectral ratio-index loss for cross-sensor SR (ConvFormerSR, Li et al. 2024): the L1
  distance, per pixel, between normalized-difference indices (a - b) / (a + b + eps) computed from SR and from HR,
  averaged over the indices named by --spectral_index (NDVI, NDWI, NDBI), using the band order given by --bands.
"""
import argparse

import torch
import torch.nn as nn

import metrics
from errors import UserError
from loss.base import LossTerm, PixelLoss, masked_mean
from loss.terms import MASKING_TERMS, loss_terms


class SpectralIndexLoss(LossTerm):
    """Mean over indices of |ND(SR) - ND(HR)|, with ND(a, b) = (a - b) / (a + b + eps)."""

    def __init__(self, index_names, bands):
        super().__init__()
        if not bands:
            raise UserError("--loss SPECTRAL needs --bands, the band order of the data, e.g. --bands "
                            "blue,green,red,nir")
        if not metrics.computable_indices(metrics.SPECTRAL_INDICES, bands):  # RGB data: no index at all
            needs = ", ".join(f"{name} ({' and '.join(pair)})" for name, pair in metrics.SPECTRAL_INDICES.items())
            raise UserError(f"--loss SPECTRAL compares spectral indices, and the bands {','.join(bands)} make none of "
                            f"them ({needs}): drop SPECTRAL from --loss, or name the bands with --bands if they "
                            f"hold these")
        self.pairs = [metrics.index_bands(name, bands) for name in index_names]
        if not self.pairs:
            raise UserError("--loss SPECTRAL needs at least one --spectral_index (NDVI, NDWI, NDBI)")

    @staticmethod
    def normalized_difference(x, a, b):
        # The data are reflectances >= 0; clamp so that a dark pixel's tiny negative SR value cannot flip the sign
        # of the denominator and blow the ratio up.
        return metrics.normalized_difference(x[:, a].clamp(min=0), x[:, b].clamp(min=0))

    def forward(self, sr, hr, valid=None):
        """`valid` (N, 1, H, W): the pixels that count (None: all)."""
        differences = [torch.abs(self.normalized_difference(sr, a, b) - self.normalized_difference(hr, a, b))
                       for a, b in self.pairs]
        if valid is None:
            return torch.stack([d.mean() for d in differences]).mean()
        return torch.stack([masked_mean(d, valid[:, 0]) for d in differences]).mean()


def make_term(name, args):
    if name in ("L1", "MSE"):
        return PixelLoss(name)
    if name == "SPECTRAL":
        return SpectralIndexLoss(args.spectral_index, args.bands)
    # imported when asked for: the adversarial term brings torch.distributed and the optimizers, a part of every
    # script's start-up that only GAN training uses (option.py imports this package for the term names)
    if name.startswith("VGG"):
        from loss.vgg import VGGLoss
        return VGGLoss.from_config(name, args)
    if name == "GAN":
        from loss.adversarial import Adversarial
        return Adversarial(args)
    raise UserError(f"--loss: unknown term {name!r}; use L1, MSE, SPECTRAL, VGG54, VGG22 or GAN, e.g. "
                    f"'1*L1+0.1*SPECTRAL'")


def parse_loss(spec):
    """'1*L1+0.5*MSE' -> [(1.0, 'L1'), (0.5, 'MSE')] (the spelling that loss.terms.loss_terms checks when option.py
    parses --loss)."""
    try:
        return loss_terms(spec)
    except argparse.ArgumentTypeError as err:
        raise UserError(f"--loss {err}") from None


class Loss(nn.Module):
    """Total loss = sum of weight * term; `last` keeps each term's value of the last call, for the log.

    Terms with a state of their own (the GAN's discriminator and its optimizer) give it to the checkpoint
    (`state_for_checkpoint`, `load_checkpoint_state`) and step their schedule with the trainer's (`end_epoch`). The
    trainer moves the loss to the network's device."""

    def weighted_last(self):
        """{term: weight * value} of the last call: the terms' shares of the total (EDSR logs them so), and the
        discriminator's own loss as DIS."""
        shares = {n: w * self.last[n] for n, w in zip(self.names, self.weights)}
        if "DIS" in self.last:
            shares["DIS"] = self.last["DIS"]
        return shares

    def __init__(self, args):
        super().__init__()
        self.weights, names = zip(*parse_loss(args.loss))
        self.names = list(names)
        unmasked = [n for n in self.names if n not in MASKING_TERMS]
        if args.nodata is not None and unmasked:  # before the terms are built (VGG reads its weights)
            raise UserError(f"--loss {args.loss}: {' and '.join(unmasked)} cannot leave out the nodata pixels "
                            f"(--nodata {args.nodata:g}, or the dataset.json's): use L1, MSE and SPECTRAL, or a "
                            f"dataset of whole tiles (prepare_dataset.py without --min_valid)")
        self.terms = nn.ModuleList(make_term(n, args) for n in self.names)
        self.last = {}

    def forward(self, sr, hr, valid=None):
        """The weighted sum of the terms; `valid` (N, 1, H, W): the pixels that count (None: all; --nodata)."""
        sr = sr.float()
        values = [term(sr, hr) if valid is None else term(sr, hr, valid) for term in self.terms]
        self.last = {n: float(v.detach()) for n, v in zip(self.names, values)}
        for term in self.terms:
            self.last.update(term.logged_values())
        return sum(w * v for w, v in zip(self.weights, values))

    def stateful_terms(self):
        return {n: t for n, t in zip(self.names, self.terms) if t.stateful}

    def state_for_checkpoint(self):
        """{term: state} of the terms that have one ({} for pixel and VGG losses): for the checkpoint."""
        return {n: t.state_for_checkpoint() for n, t in self.stateful_terms().items()}

    def load_checkpoint_state(self, state, source):
        """Restore what state_for_checkpoint saved (--resume); `source` names the checkpoint in errors."""
        for name, term in self.stateful_terms().items():
            if name not in (state or {}):
                raise UserError(f"{source} holds no state of the {name} loss term (its discriminator), so it cannot "
                                f"be resumed exactly; start a new run from it with --pre_train {source}")
            term.load_checkpoint_state(state[name], source)

    def end_epoch(self):
        """Step the terms' own learning-rate schedules (the trainer steps the network's at the same time)."""
        for term in self.terms:
            term.end_epoch()
