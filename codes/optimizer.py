"""The optimizer and learning-rate schedule a training run builds from its configuration (--optimizer, --lr,
--betas, --epsilon, --weight_decay, --momentum; --decay_type, --lr_decay, --milestones, --gamma): the trainer's for
the network, and the GAN loss's for its discriminator, as EDSR's utility.make_optimizer does for both."""
import torch


def make_optimizer(cfg, params):
    if cfg.optimizer == "SGD":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "RMSprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, eps=cfg.epsilon, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.epsilon, weight_decay=cfg.weight_decay)


def make_scheduler(cfg, optimizer):
    if cfg.decay_type == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.gamma)
    if cfg.decay_type == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr * 1e-2)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_decay, gamma=cfg.gamma)
