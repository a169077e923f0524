"""The base of every loss term: its hooks, which do nothing unless a term has a state of its own; and the pixel
terms L1 and MSE."""
import torch
from torch import nn


def masked_mean(values, valid):
    """The mean of `values` over the entries where `valid` (broadcast to them) is True; 0 when none is (a patch of
    nodata only adds nothing to the loss or its gradient)."""
    kept = torch.where(valid, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return kept.sum() / valid.expand_as(values).sum().clamp(min=1)


class LossTerm(nn.Module):
    """A term of the loss. Its hooks do nothing here; a term with a state of its own (the GAN: its discriminator and
    that one's optimizer) sets `stateful` and overrides them, so Loss calls every hook of every term without probing.
    The terms of loss.terms.MASKING_TERMS also take the pixels that count: forward(sr, hr, valid), with valid
    (N, 1, H, W)."""

    stateful = False

    def logged_values(self):
        """{name: value} logged beside the term's own value after a call (the GAN's discriminator loss as DIS)."""
        return {}

    def state_for_checkpoint(self):
        return None

    def load_checkpoint_state(self, state, source):
        """Restore what state_for_checkpoint gave (--resume); `source` names the checkpoint in errors."""

    def end_epoch(self):
        """Step the term's own learning-rate schedule (the trainer steps the network's at the same time)."""


class PixelLoss(LossTerm):
    """L1 or MSE between SR and HR (nn.L1Loss / nn.MSELoss: no parameters, no state); over the `valid` pixels only
    when given."""

    def __init__(self, name):
        super().__init__()
        self.distance = nn.functional.l1_loss if name == "L1" else nn.functional.mse_loss

    def forward(self, sr, hr, valid=None):
        if valid is None:
            return self.distance(sr, hr)
        return masked_mean(self.distance(sr, hr, reduction="none"), valid)
