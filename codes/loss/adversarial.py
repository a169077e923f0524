"""The adversarial loss (`--loss 1*L1+0.005*GAN`) and its discriminator, as in EDSR-PyTorch.

Official code: EDSR-PyTorch src/loss/adversarial.py and src/loss/discriminator.py (B. Lim et al., "Enhanced Deep
Residual Networks for Single Image Super-Resolution", CVPRW 2017), which the HSENet code base imports
(codes/loss/__init__.py; its trainer steps a `scheduler` of the loss terms at every epoch). The discriminator is
SRGAN's (C. Ledig et al., CVPR 2017): a VGG-style stack of 3x3 conv + BatchNorm + LeakyReLU(0.2) blocks, 64
features doubled every second block and stride 2 every other block (8 blocks, 4 halvings), then Linear(-, 1024),
LeakyReLU(0.2), Linear(1024, 1) on the flattened features. Its output is a logit.

Each training step of the generator first takes --gan_k steps of the discriminator on the detached SR batch (fake)
and the HR batch (real), minimising BCE(D(real), 1) + BCE(D(fake), 0), then returns the generator's loss
BCE(D(SR), 1) through the updated discriminator. The discriminator has its own optimizer, built like the main one
(--optimizer, --lr, --betas, --epsilon, --weight_decay) with its own copy of the learning-rate schedule, as EDSR's
`utility.make_optimizer(args, discriminator)` and `make_scheduler(args, ...)` do. Its weights, optimizer and
schedule go into the checkpoint, so --resume continues exactly. No random numbers are drawn after construction. As
in the official code the discriminator steps inside the loss, so a batch whose total loss is non-finite (skipped for
the generator) has still moved the discriminator.

Differences from the official code:
- the first linear layer's input size is the real size of the last feature map, ceil(HR patch / 16)^2 x 512, where
  the official `patch_size // 16` only fits HR patches that are multiples of 16 (the same number there; as
  officially, --patch_size is the HR patch);
- the discriminator's weights get no gradient from the generator's loss (the official code computed one and
  discarded it at the next discriminator step: same updates, less work);
- under torchrun the discriminator's gradients are averaged over the processes, so every process keeps the same
  discriminator (BatchNorm still normalises each process's own part of the batch).
"""
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from checkpoint import describe_mismatch
from errors import UserError
from loss.base import LossTerm
from optimizer import make_optimizer, make_scheduler


def conv_bn_lrelu(in_channels, out_channels, stride):
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2, inplace=True))


class Discriminator(nn.Module):
    """SRGAN/EDSR discriminator for `patch_size` x `patch_size` HR patches of `n_colors` bands; returns (B, 1)
    logits. State_dict keys are the official ones (features.<i>.0/1, classifier.0/2)."""

    def __init__(self, n_colors=3, patch_size=96, n_feats=64, depth=7):
        super().__init__()
        blocks = [conv_bn_lrelu(n_colors, n_feats, 1)]
        channels, size = n_feats, patch_size
        for i in range(depth):
            stride = 2 if i % 2 == 0 else 1
            out_channels = channels * 2 if i % 2 == 1 else channels
            blocks.append(conv_bn_lrelu(channels, out_channels, stride))
            channels, size = out_channels, (size - 1) // stride + 1  # a padded 3x3 conv: ceil(size / stride)
        self.patch_size = patch_size
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Linear(channels * size * size, 1024), nn.LeakyReLU(0.2, inplace=True),
                                        nn.Linear(1024, 1))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def real_fake_bce(d_real, d_fake):
    """The discriminator's loss: real patches labelled 1, fake ones 0 (on logits)."""
    return (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))


def average_gradients_across_processes(module):
    """Under torchrun, average the gradients over the processes (what DDP does for the generator)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    world = dist.get_world_size()
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world)


class Adversarial(LossTerm):
    """The GAN term: `forward(sr, hr)` updates the discriminator --gan_k times, then returns the generator's loss.
    `discriminator_loss` is the mean discriminator loss of the last call (logged as the DIS term)."""

    def __init__(self, cfg):
        super().__init__()
        self.discriminator = Discriminator(cfg.n_colors, cfg.patch_size)
        self.gan_k = cfg.gan_k
        self.optimizer = make_optimizer(cfg, self.discriminator.parameters())
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.discriminator_loss = float("nan")
        self.stateful = True  # the discriminator and its optimizer: saved with the checkpoint, resumed exactly
        self.patch_flags = f"--patch_size {cfg.patch_size}"

    def check_size(self, x):
        size = self.discriminator.patch_size
        if tuple(x.shape[-2:]) != (size, size):
            raise UserError(f"--loss GAN: the discriminator takes {size}x{size} HR patches ({self.patch_flags}), "
                            f"got {x.shape[-1]}x{x.shape[-2]}")

    def forward(self, sr, hr):
        self.check_size(sr)
        self.discriminator.train()
        fake, real = sr.detach().float(), hr.float()
        total = 0.0
        for _ in range(self.gan_k):
            self.optimizer.zero_grad(set_to_none=True)
            d_fake = self.discriminator(fake)  # fake first, then real: the official order (BatchNorm statistics)
            loss = real_fake_bce(self.discriminator(real), d_fake)
            loss.backward()
            average_gradients_across_processes(self.discriminator)
            self.optimizer.step()
            total += float(loss.detach())
        self.discriminator_loss = total / self.gan_k
        self.discriminator.requires_grad_(False)  # the generator's loss trains the generator only
        try:
            d_sr = self.discriminator(sr.float())
        finally:
            self.discriminator.requires_grad_(True)
        return F.binary_cross_entropy_with_logits(d_sr, torch.ones_like(d_sr))

    # -- checkpoints: what --resume needs to continue exactly -----------------------------------------------------
    def logged_values(self):
        return {"DIS": self.discriminator_loss}

    def state_for_checkpoint(self):
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_checkpoint_state(self, state, source):
        problem = describe_mismatch(self.discriminator, state.get("discriminator", {}))
        if problem:
            raise UserError(f"{source}: its discriminator does not fit this run ({problem}); check --patch_size, "
                            f"--scale and --n_colors")
        self.discriminator.load_state_dict(state["discriminator"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])

    def end_epoch(self):
        self.scheduler.step()
