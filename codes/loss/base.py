"""The base of every loss term: its hooks, which do nothing unless a term has a state of its own; and the pixel
terms L1 and MSE."""
from torch import nn


class LossTerm(nn.Module):
    """A term of the loss. Its hooks do nothing here; a term with a state of its own (the GAN: its discriminator and
    that one's optimizer) sets `stateful` and overrides them, so Loss calls every hook of every term without probing."""

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
    """L1 or MSE between SR and HR (nn.L1Loss / nn.MSELoss: no parameters, no state)."""

    def __init__(self, name):
        super().__init__()
        self.distance = nn.functional.l1_loss if name == "L1" else nn.functional.mse_loss

    def forward(self, sr, hr):
        return self.distance(sr, hr)
