"""Training and validation loop (EDSR-style), with exact resume.

Exact resume: every epoch starts by seeding torch (patch positions, augmentation, stochastic depth) and the
loader's shuffling generator from (--seed, epoch), and a checkpoint holds the model, optimizer, scheduler, epoch,
best score and RNG states. So 2 epochs straight and 1 epoch + --resume + 1 epoch give the same weights.
"""
import math
import shutil
import time
import warnings

import numpy as np
import torch
from tqdm import tqdm

import image_io
import metrics
import utility
from atomic import atomic_target
from errors import UserError
from model import check_checkpoint_args, read_checkpoint

BEST_KEY = "psnr_rgb"  # pooled PSNR over all bands: defined for any band count


def make_optimizer(args, params):
    if args.optimizer == "SGD":
        return torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    if args.optimizer == "RMSprop":
        return torch.optim.RMSprop(params, lr=args.lr, eps=args.epsilon, weight_decay=args.weight_decay)
    return torch.optim.Adam(params, lr=args.lr, betas=tuple(args.betas), eps=args.epsilon,
                            weight_decay=args.weight_decay)


def make_scheduler(args, optimizer):
    if args.decay_type == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=args.milestones, gamma=args.gamma)
    if args.decay_type == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs, eta_min=args.lr * 1e-2)
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=args.lr_decay, gamma=args.gamma)


def average(rows):
    """Mean of each metric over the images; a metric undefined for these images (psnr_y of 4 bands) stays NaN."""
    keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float))]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


class Trainer:
    def __init__(self, args, data, model, loss, run):
        self.args = args
        self.data = data
        self.model = model
        self.loss = loss
        self.run = run
        self.device = model.device
        self.optimizer = make_optimizer(args, [p for p in model.parameters() if p.requires_grad])
        self.scheduler = make_scheduler(args, self.optimizer)
        # fp16 autocast needs loss scaling so small gradients do not flush to zero; a no-op otherwise
        self.scaler = torch.amp.GradScaler("cuda", enabled=model.amp_dtype == torch.float16)
        self.epoch = 0
        self.best = -math.inf
        self.nan_streak = 0
        if args.resume:
            self.load_latest()

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def state(self):
        return {"model": self.model.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "epoch": self.epoch, "best": self.best,
                "rng": utility.rng_state(), "generator": self.data.generator.get_state(),
                "args": {k: v for k, v in vars(self.args).items() if isinstance(v, (int, float, str, bool, list,
                                                                                    tuple, type(None)))}}

    def save(self, is_best):
        latest = self.run.path("model", "model_latest.pt")
        utility.atomic_torch_save(self.state(), latest)
        if is_best:  # the same bytes: copy the file rather than serialise the state a second time
            with atomic_target(self.run.path("model", "model_best.pt")) as tmp:
                shutil.copyfile(latest, tmp)

    def load_latest(self):
        path = self.run.path("model", "model_latest.pt")
        ckpt = read_checkpoint(path)
        check_checkpoint_args(ckpt.get("args"), self.args, path)
        self.model.net.load_state_dict(ckpt["model"], strict=True)
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch, self.best = int(ckpt["epoch"]), float(ckpt["best"])
        utility.set_rng_state(ckpt["rng"])
        self.data.generator.set_state(ckpt["generator"])
        self.run.log(f"resumed {path} at epoch {self.epoch} (best {BEST_KEY} {self.best:.4f})")

    # -- training ------------------------------------------------------------------------------------------------
    def seed_epoch(self, epoch):
        seed = self.args.seed * 100003 + epoch
        torch.manual_seed(seed)
        self.data.generator.manual_seed(seed)

    def train(self):
        args = self.args
        loader_train = self.data.loader(args.data_train, train=True)
        loader_val = self.data.loader(args.data_val)
        if self.epoch >= args.epochs:
            self.run.log(f"nothing to do: the run is at epoch {self.epoch} of --epochs {args.epochs}")
        while self.epoch < args.epochs:
            self.epoch += 1
            start = time.time()
            train_loss = self.train_epoch(loader_train)
            scores = self.evaluate(loader_val, desc=f"val {self.epoch}")
            self.finish_epoch(train_loss, scores, time.time() - start)

    def train_epoch(self, loader):
        self.seed_epoch(self.epoch)
        self.model.train()
        lr = self.optimizer.param_groups[0]["lr"]
        losses = []
        bar = tqdm(loader, desc=f"epoch {self.epoch}/{self.args.epochs} lr {lr:.2e}", leave=False,
                   dynamic_ncols=True)
        for batch, (lr_img, hr_img, _) in enumerate(bar, 1):
            value = self.train_step(lr_img.to(self.device), hr_img.to(self.device))
            if value is not None:
                losses.append(value)
                bar.set_postfix(loss=f"{value:.4f}")
            if batch % self.args.print_every == 0:
                self.run.log(f"[epoch {self.epoch} batch {batch}/{len(loader)}] loss {np.mean(losses):.5f}",
                             echo=False)
        self.scheduler.step()
        if not losses:
            raise UserError(f"epoch {self.epoch}: no batch gave a finite loss; lower --lr or check the data")
        return float(np.mean(losses))

    def train_step(self, lr_img, hr_img):
        """One optimizer step; a non-finite loss skips the batch, and --max_nan of them in a row stop the run."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(lr_img), hr_img)
        if not torch.isfinite(loss):
            self.nan_streak += 1
            warnings.warn(f"epoch {self.epoch}: non-finite loss ({loss.item()}), batch skipped "
                          f"({self.nan_streak} in a row)", stacklevel=2)
            if self.nan_streak >= self.args.max_nan:
                raise UserError(f"training stopped: {self.nan_streak} non-finite losses in a row at epoch "
                                f"{self.epoch}; lower --lr (now {self.args.lr}) or check the data for NaNs")
            return None
        self.nan_streak = 0
        self.scaler.scale(loss).backward()
        if self.args.gclip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.args.gclip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def finish_epoch(self, train_loss, scores, seconds):
        is_best = scores[BEST_KEY] > self.best
        self.best = max(self.best, scores[BEST_KEY])
        self.save(is_best)
        row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], "loss": train_loss,
               "psnr": scores[BEST_KEY], "ssim": scores["ssim_rgb"],
               **{k: v for k, v in scores.items() if k not in (BEST_KEY, "ssim_rgb")}, "seconds": seconds}
        self.run.append_csv(row)
        self.run.plot()
        self.run.log(f"epoch {self.epoch}/{self.args.epochs}: loss {train_loss:.5f}, val PSNR {scores[BEST_KEY]:.3f}"
                     f" dB, SSIM {scores['ssim_rgb']:.4f}{' (best)' if is_best else ''}, {seconds:.1f} s")

    # -- validation ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, loader, desc="val"):
        """Metrics of the one metrics module, averaged over the split (SR rounded to the data's levels first)."""
        self.model.eval()
        args, dataset = self.args, loader.dataset
        tile, overlap = (self.model.default_tile() if args.chop else (0, 0))
        rows = []
        for index, (lr_img, _, name) in enumerate(tqdm(loader, desc=desc, leave=False, dynamic_ncols=True)):
            sr = self.model(lr_img.to(self.device), tile=tile, tile_overlap=overlap)
            sr_img = utility.tensor_to_image(sr[0], args.rgb_range, dataset.data_range, dataset.dtype)
            hr_img = dataset.load_pair(index)[1]  # the file's own values (batch 1, unshuffled: index = item)
            row = metrics.evaluate_pair(sr_img, hr_img, scale=args.scale, crop_border=args.scale,
                                        data_range=dataset.data_range, bands=args.bands,
                                        indices=args.spectral_index if args.bands else ())
            rows.append(row)
            if args.save_results:
                image_io.write_image(self.run.path("results", f"{name[0]}.png" if sr_img.shape[2] in (1, 3)
                                                   else f"{name[0]}.tif"), sr_img)
        return average(rows)

    def test(self):
        """--test_only: report the metrics of the loaded model on --data_test."""
        scores = self.evaluate(self.data.loader(self.args.data_test), desc="test")
        self.run.log(f"test on {self.args.dataset}/{self.args.data_test} x{self.args.scale}: "
                     + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        return scores
