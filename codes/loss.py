"""Weighted sum of loss terms, parsed from --loss, e.g. "1*L1", "1*MSE", "1*L1+0.5*MSE", "1*L1+0.1*SPECTRAL".

SPECTRAL is this project's spectral ratio-index loss for cross-sensor SR (ConvFormerSR, Li et al. 2024): the L1
distance, per pixel, between normalized-difference indices (a - b) / (a + b + eps) computed from SR and from HR,
averaged over the indices named by --spectral_index (NDVI, NDWI, NDBI), using the band order given by --bands.
"""
import torch
import torch.nn as nn

import metrics
from errors import UserError


class SpectralIndexLoss(nn.Module):
    """Mean over indices of |ND(SR) - ND(HR)|, with ND(a, b) = (a - b) / (a + b + eps)."""

    def __init__(self, index_names, bands):
        super().__init__()
        if not bands:
            raise UserError("--loss SPECTRAL needs --bands, the band order of the data, e.g. --bands "
                            "blue,green,red,nir")
        self.pairs = [metrics.index_bands(name, bands) for name in index_names]
        if not self.pairs:
            raise UserError("--loss SPECTRAL needs at least one --spectral_index (NDVI, NDWI, NDBI)")

    @staticmethod
    def normalized_difference(x, a, b):
        # The data are reflectances >= 0; clamp so that a dark pixel's tiny negative SR value cannot flip the sign
        # of the denominator and blow the ratio up.
        return metrics.normalized_difference(x[:, a].clamp(min=0), x[:, b].clamp(min=0))

    def forward(self, sr, hr):
        terms = [torch.abs(self.normalized_difference(sr, a, b) - self.normalized_difference(hr, a, b)).mean()
                 for a, b in self.pairs]
        return torch.stack(terms).mean()


def make_term(name, args):
    if name == "L1":
        return nn.L1Loss()
    if name == "MSE":
        return nn.MSELoss()
    if name == "SPECTRAL":
        return SpectralIndexLoss(args.spectral_index, args.bands)
    raise UserError(f"--loss: unknown term {name!r}; use L1, MSE or SPECTRAL, e.g. '1*L1+0.1*SPECTRAL'")


def parse_loss(spec):
    """'1*L1+0.5*MSE' -> [(1.0, 'L1'), (0.5, 'MSE')]."""
    terms = []
    for part in spec.replace(" ", "").split("+"):
        weight, _, name = part.rpartition("*")
        try:
            terms.append((float(weight) if weight else 1.0, name.upper()))
        except ValueError:
            raise UserError(f"--loss {spec!r}: cannot read the weight {weight!r}; write terms like 1*L1") from None
    if not terms or any(not name for _, name in terms):
        raise UserError(f"--loss {spec!r}: write a weighted sum like '1*L1+0.1*SPECTRAL'")
    return terms


class Loss(nn.Module):
    """Total loss = sum of weight * term; `last` keeps each term's value of the last call, for the log."""

    def weighted_last(self):
        """{term: weight * value} of the last call: the terms' shares of the total (EDSR logs them so)."""
        return {n: w * self.last[n] for n, w in zip(self.names, self.weights)}

    def __init__(self, args):
        super().__init__()
        self.weights, names = zip(*parse_loss(args.loss))
        self.names = list(names)
        self.terms = nn.ModuleList(make_term(n, args) for n in self.names)
        self.last = {}

    def forward(self, sr, hr):
        sr = sr.float()
        values = [term(sr, hr) for term in self.terms]
        self.last = {n: float(v.detach()) for n, v in zip(self.names, values)}
        return sum(w * v for w, v in zip(self.weights, values))
