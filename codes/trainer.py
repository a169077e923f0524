"""Training and validation loop (EDSR-style), with exact, crash-consistent resume.

Exact resume: every epoch reseeds the sampler and the training patches from (--seed, epoch) (see data/) and torch's
RNG (stochastic depth) from the same pair, and a checkpoint holds the model, optimizer, scheduler, scaler, epoch and
best score, and the loss terms' own state (the GAN's discriminator and its optimizer). So 2 epochs straight and 1
epoch + --resume + 1 epoch give the same weights.

Stopping early (stopping.py): a stop signal (SIGTERM, SIGUSR1, SIGINT) or the --time_budget ends training after a
batch with a checkpoint whose `partial` entry holds the epoch in progress: its batches done, the losses so far, the
NaN streak and torch's RNG state. --resume continues inside that epoch: the sampler skips the batches done (every
training sample's patch and noise come from (--seed, epoch, index), not from its position), so a run stopped and
resumed any number of times ends with the same weights as one that ran straight.

Crash consistency: the metric history lives in the checkpoint, and metrics.csv and the plots are rewritten from it
(on --resume too, so a kill between the checkpoint and the CSV leaves no gap). A new best is written to
model_best.pt before model_latest.pt (a byte copy of it), so model_best.pt is never older than the best that
model_latest.pt records.

Under torchrun (distributed.py) the network trains through DistributedDataParallel, each rank on its share of the
global batch; a non-finite loss on any rank skips the step on all of them; validation is sharded over the ranks and
its per-image rows gathered; rank 0 alone writes the run folder. --ema keeps an exponential moving average of the
weights (BasicSR's params_ema) on every rank, validated, saved and restored with the rest.
"""
import copy
import csv
import functools
import hashlib
import io
import os
import random
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import atomic
import checkpoint
import distributed
import image_io
import metrics
import progress
import stopping
import template
from compare import Comparison
from data import dataset_root
from data.dataset_json import read_dataset_metadata
from errors import UserError
from optimizer import make_optimizer, make_scheduler
from radiometry import bicubic_baseline

BEST_KEY = "psnr_rgb"  # pooled PSNR over all bands: defined for any band count
METRIC_COLUMNS = ("psnr_rgb", "ssim_rgb", "psnr_chmean", "psnr_y", "ssim_y")  # as in calculate_PSNR_SSIM.py's CSV


def metric_label(key, bands):
    """How the log names a metric column: psnr_rgb and ssim_rgb are pooled over the bands, which are RGB only when
    there are 3 (the column names stay, as in the metric script's CSV)."""
    if bands == 3 or not key.endswith("_rgb"):
        return key
    return f"{key[:-4]} ({bands} bands)"


def average(rows):
    """Mean of each metric over the images (every image of a split has the same band count, so the same keys)."""
    keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the mean of NaNs is NaN, as meant
        return {k: float(np.mean([r[k] for r in rows])) for k in keys}


class Trainer:
    def __init__(self, cfg, data, model, loss, run, ctx=distributed.ONE_PROCESS):
        self.cfg = cfg
        self.data = data
        self.model = model
        self.loss = loss.to(model.device)  # VGG / discriminator weights, before their optimizer state is restored
        self.run = run
        self.ctx = ctx
        self.device = model.device
        weights = [p for p in model.parameters() if p.requires_grad]
        if not weights and not cfg.test_only:
            raise UserError(f"--model {cfg.model} has no weights to train: score it with --test_only, or deploy it")
        # --test_only (and a network without weights, BICUBIC, which is only scored) needs no optimizer, and creating
        # one imports torch._dynamo: seconds of start-up
        trains = bool(weights) and not cfg.test_only
        self.optimizer = make_optimizer(cfg, weights) if trains else None
        self.scheduler = make_scheduler(cfg, self.optimizer) if trains else None
        # fp16 autocast needs loss scaling so small gradients do not flush to zero; a no-op otherwise
        self.scaler = torch.amp.GradScaler("cuda", enabled=model.amp_dtype == torch.float16)
        self.state = checkpoint.TrainingState()  # epoch, best, history, bicubic, partial, NaN streak
        # the training HR's ground sample distance (dataset.json; None when unknown): deploy's GSD guard reads it
        self.training_gsd = read_dataset_metadata(dataset_root(cfg)).get("gsd")
        self.step_seconds, self.save_seconds, self.val_seconds = 0.0, None, None  # what the time budget plans with
        self.ema = copy.deepcopy(model.model).eval().requires_grad_(False) if cfg.ema else None
        if cfg.purpose == "resume":
            self.restore(checkpoint.read(cfg.checkpoint_path))
        if ctx.active and cfg.purpose != "test":
            model.wrap_for_training(lambda net: torch.nn.parallel.DistributedDataParallel(
                net, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None))

    # -- checkpoints ---------------------------------------------------------------------------------------------
    def payload(self):
        records = {"radiometry": self.radiometry.record(), "gsd": self.training_gsd,
                   "training_data": self.training_data}
        return checkpoint.training_payload(
            self.model.net.state_dict(), self.cfg, self.state, self.optimizer, self.scheduler, self.scaler,
            self.loss.state_for_checkpoint(),  # the GAN's discriminator and its optimizer; {} otherwise
            records, self.ema.state_dict() if self.ema is not None else None)

    def resume_hint(self):
        """How to continue the run: --resume, never beside the --reset that would start it over."""
        if self.cfg.reset:
            return "continue it with the same command, --resume instead of --reset"
        return "continue it with the same command and --resume"

    @functools.cached_property
    def training_data(self):
        """{images, names_sha256, sizes_sha256} of the training split, read once: --resume compares it to say when
        the data changed. The file sizes (HR and LR) change when an image is replaced under its name; unlike
        modification times, they survive a copy of the dataset."""
        dataset = self.data.loader(self.cfg.data_train, train=True).dataset
        names = "\n".join(Path(f).name for f in dataset.hr_files).encode()
        sizes = "\n".join(str(os.path.getsize(f)) for f in (*dataset.hr_files, *dataset.lr_files) if f).encode()
        return {"images": len(dataset.hr_files), "names_sha256": hashlib.sha256(names).hexdigest(),
                "sizes_sha256": hashlib.sha256(sizes).hexdigest()}

    @property
    def radiometry(self):
        """The training data's radiometry."""
        return self.data.loader(self.cfg.data_train, train=True).dataset.radiometry

    def save(self, is_best):
        """Rank 0 writes; every rank learns whether it could (a full disk stops all of them in one line)."""
        distributed.on_main(self.ctx, self.write_checkpoints, is_best)

    def write_checkpoints(self, is_best):
        start = time.monotonic()
        self.write_checkpoint_files(is_best)
        self.save_seconds = time.monotonic() - start

    def write_checkpoint_files(self, is_best):
        latest = self.run.target("model", checkpoint.LATEST)
        if not is_best:
            checkpoint.save(latest, self.payload())
            return
        best = self.run.target("model", checkpoint.BEST)
        checkpoint.save(best, self.payload())
        with atomic.atomic_target(latest) as tmp:  # the same bytes: copy rather than serialise a second time
            shutil.copyfile(best, tmp)

    def restore(self, ckpt):
        """--resume: the weights are already in the model (config.resolve loaded this checkpoint); the rest here."""
        payload = ckpt.payload
        checkpoint.check_resumable(ckpt)
        state = checkpoint.TrainingState.from_payload(payload, ckpt.path)
        fresh_optimizer, fresh_scheduler = self.optimizer.state_dict(), self.scheduler.state_dict()
        try:
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scheduler.load_state_dict(payload["scheduler"])
            if payload.get("scaler"):
                self.scaler.load_state_dict(payload["scaler"])
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError) as err:
            raise UserError(f"{ckpt.path}: its optimizer, scheduler or scaler state does not fit this run "
                            f"({type(err).__name__}); the file is damaged, or resume with the flags it was trained "
                            f"with") from None
        checkpoint.check_training_state(self.optimizer, self.scheduler, fresh_optimizer, fresh_scheduler, ckpt.path)
        self.loss.load_checkpoint_state(payload.get("loss"), ckpt.path)
        if self.ema is not None:
            if ckpt.ema_weights is None:
                raise UserError(f"{ckpt.path} holds no EMA weights (the run was trained without --ema): resume "
                                f"without --ema, or start a new run from it with --pre_train")
            checkpoint.load_weights(self.ema, ckpt, None, "the EMA network", use_ema=True)
        self.state = state
        if self.ctx.main:
            self.write_history()  # fills a metrics.csv left behind by a kill after the checkpoint
        inside = f", inside epoch {state.epoch + 1} after batch {state.partial['batches']}" if state.partial else ""
        self.run.log(f"resumed {ckpt.path} at epoch {state.epoch}{inside} (best {BEST_KEY} {state.best:.4f} at epoch "
                     f"{state.best_epoch})")
        recorded, now = payload.get("training_data"), self.training_data
        if isinstance(recorded, dict) and any(recorded.get(key, value) != value for key, value in now.items()):
            self.run.log(f"note: the training data changed since {ckpt.path} was saved ({recorded.get('images')} "
                         f"images then, {now['images']} now): the run continues over today's data, so it is no "
                         f"longer the run an uninterrupted training would have made")

    # -- training ------------------------------------------------------------------------------------------------
    def train(self):
        """Train to --epochs; returns the exit code: 0, or 128 + the number of a stop signal."""
        cfg = self.cfg
        loader_train = self.data.loader(cfg.data_train, train=True)
        loader_val = self.data.loader(cfg.data_val)
        if self.state.bicubic is None:
            self.state.bicubic = self.bicubic_scores(loader_val.dataset)
            self.run.log(f"bicubic on {cfg.data_val}: {metric_label(BEST_KEY, cfg.n_colors)} "
                         f"{self.state.bicubic[BEST_KEY]:.4f} dB, {metric_label('ssim_rgb', cfg.n_colors)} "
                         f"{self.state.bicubic['ssim_rgb']:.4f}")
        if self.state.epoch >= cfg.epochs:
            self.run.log(f"nothing to do: the run is at epoch {self.state.epoch} of --epochs {cfg.epochs}")
        with stopping.Stopper(cfg.time_budget) as stopper:
            while self.state.epoch < cfg.epochs:
                self.state.epoch += 1
                start = time.time()
                lr = self.optimizer.param_groups[0]["lr"]  # the rate this epoch uses (the scheduler steps after it)
                losses = self.train_epoch(loader_train, loader_val, lr, stopper)
                if losses is None:
                    return stopper.exit_code(self.stop_reason)
                validation_start = time.monotonic()
                scores = self.evaluate(loader_val, desc=f"val {self.state.epoch}")
                self.val_seconds = time.monotonic() - validation_start
                self.finish_epoch(lr, losses, scores, time.time() - start)
                reason = stopper.reason(self.ctx, self.step_seconds + self.checkpoint_seconds())
                if reason and self.state.epoch < cfg.epochs:
                    self.run.log(f"{reason}: stopped after epoch {self.state.epoch} of {cfg.epochs}; "
                                 f"{self.run.path('model', checkpoint.LATEST)} holds the run: {self.resume_hint()}")
                    return stopper.exit_code(reason)
                if reason and reason != "time budget":  # a signal during the last validation: the run is complete
                    saved = self.run.path("model", checkpoint.LATEST)
                    self.run.log(f"{reason}: received during the last epoch ({self.state.epoch} of {cfg.epochs}), "
                                 f"which is complete and saved in {saved}; the summary figure was not drawn")
                    return stopper.exit_code(reason)
        if self.ctx.main and self.state.history:
            self.write_summary(loader_val.dataset)
            self.warn_below_bicubic()
        return 0

    def warn_below_bicubic(self):
        """One line at the end when the best validation score never beat bicubic, with the likely causes."""
        if self.state.bicubic is None or self.state.best > self.state.bicubic[BEST_KEY]:
            return
        sample = (self.cfg.model, self.cfg.dataset) in template.SAMPLE_PRESETS
        cause = ("the Sample preset is a small network on a short schedule, made to exercise the pipeline"
                 if sample else "the schedule is short for this network")
        state = self.state
        self.run.log(f"warning: the best val {metric_label(BEST_KEY, self.cfg.n_colors)} ({state.best:.3f} dB, epoch "
                     f"{state.best_epoch}) is below bicubic's ({state.bicubic[BEST_KEY]:.3f} dB): {cause}; train "
                     f"longer (--epochs, --test_every: batches per epoch) or on more data before using this model")

    def seed_epoch(self, epoch, skip_batches=0):
        self.data.set_epoch(epoch, skip_batches)
        torch.manual_seed(self.cfg.seed * 100003 + epoch)  # stochastic depth and anything else the network draws

    def train_epoch(self, loader, loader_val, lr, stopper):
        """Mean total loss and mean weighted loss terms over the epoch's finite batches; None when a stop request
        ended training first (the epoch in progress is then saved, see stopping.py)."""
        done, totals, terms, batches = self.begin_epoch(loader)
        self.model.train()
        total = done + len(loader)
        bar = progress.bar(batches, f"epoch {self.state.epoch}/{self.cfg.epochs} lr {lr:.2e}", total=len(loader),
                           unit="batch")
        for batch, (lr_img, hr_img, _, *valid) in enumerate(bar, done + 1):  # valid: with --nodata (SRData)
            if self.stopped_early(stopper, batch - 1, total, totals, terms, self.step_seconds):
                return None
            start = time.monotonic()
            value = self.train_step(*(t.to(self.device) for t in (lr_img, hr_img, *valid)))
            self.step_seconds = time.monotonic() - start
            if value is not None:
                totals.append(value)
                terms.append(self.loss.weighted_last())
                bar.set_postfix(loss=f"{value:.4f}")
            if batch % self.cfg.print_every == 0:
                self.run.log(f"[epoch {self.state.epoch} batch {batch}/{total}] loss {np.mean(totals):.5f}", echo=False)
        if self.stopped_early(stopper, total, total, totals, terms, self.validation_estimate(loader_val)):
            return None
        self.scheduler.step()
        self.loss.end_epoch()  # the discriminator's schedule follows the network's
        if not totals:
            raise UserError(f"epoch {self.state.epoch}: no batch gave a finite loss; lower --lr or check the data")
        means = {"loss": float(np.mean(totals)),
                 **{f"loss_{name}": float(np.mean([t[name] for t in terms])) for name in terms[0]}}
        return distributed.mean_over_ranks(self.ctx, means)  # the global batch's loss, whatever the ranks

    def begin_epoch(self, loader):
        """(batches done, losses so far, loss terms so far, the batch iterator) of the epoch starting or resumed."""
        partial = self.state.partial if self.state.partial and self.state.partial["epoch"] == self.state.epoch else None
        done = partial["batches"] if partial else 0
        if done > len(loader):
            raise UserError(f"{self.run.path('model', checkpoint.LATEST)}: its epoch in progress stopped after batch "
                            f"{done}, but this epoch has {len(loader)} batches: the file is damaged, or the training "
                            f"data or --batch_size changed; resume with those of the run, or start a new run with "
                            f"--pre_train")
        self.seed_epoch(self.state.epoch, skip_batches=done)
        batches = iter(loader)  # before the RNG is restored: creating the iterator draws from torch's RNG
        self.state.partial = None
        if partial is None:
            return 0, [], [], batches
        torch.set_rng_state(partial["rng"])
        self.state.nan_streak = partial["nan_streak"]
        return done, list(partial["totals"]), [dict(t) for t in partial["terms"]], batches

    def stopped_early(self, stopper, done, total, totals, terms, seconds_next):
        """Whether a stop request (or too little time for the next `seconds_next` and a checkpoint) ends training
        after `done` batches of this epoch; if so the epoch in progress is saved and the stop is logged."""
        reason = stopper.reason(self.ctx, seconds_next + self.checkpoint_seconds())
        if reason is None:
            return False
        self.state.partial = {"epoch": self.state.epoch, "batches": done, "totals": totals, "terms": terms,
                        "nan_streak": self.state.nan_streak, "rng": torch.get_rng_state()}
        self.save(is_best=False)
        self.stop_reason = reason
        self.run.log(f"{reason}: stopped at epoch {self.state.epoch}, batch {done} of {total}; "
                     f"{self.run.path('model', checkpoint.LATEST)} holds the run: {self.resume_hint()}")
        return True

    def checkpoint_seconds(self):
        """Seconds to write a checkpoint: the last one's (rank 0 writes them), else the weights and Adam's two
        moments at 50 MB/s."""
        if self.save_seconds is not None:
            return self.save_seconds
        size = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return 1.0 + 3 * size / 50e6

    def validation_estimate(self, loader_val):
        """Seconds of a validation: the last one's, else the training step's time scaled by the pixels (a forward
        is about a third of a training step)."""
        if self.val_seconds is not None:
            return self.val_seconds
        dataset = loader_val.dataset
        pixels = sum(int(np.prod(dataset.lr_size(i))) for i in range(len(dataset)))
        step_pixels = self.cfg.batch_size * self.cfg.lr_patch ** 2
        return self.step_seconds * pixels / (3 * step_pixels)

    def train_step(self, lr_img, hr_img, valid=None):
        """One optimizer step; a non-finite loss (on any rank) skips the batch, and --max_nan of them in a row stop
        the run. `valid` (N, 1, H, W): the HR pixels the loss counts (None: all)."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(lr_img, radiometry=self.radiometry), hr_img, valid)
        if not distributed.all_finite(self.ctx, loss):
            self.state.nan_streak += 1
            warnings.warn(f"epoch {self.state.epoch}: non-finite loss ({loss.item()}), batch skipped "
                          f"({self.state.nan_streak} in a row)", stacklevel=2)
            if self.state.nan_streak >= self.cfg.max_nan:
                raise UserError(f"training stopped: {self.state.nan_streak} non-finite losses in a row at epoch "
                                f"{self.state.epoch}; lower --lr (now {self.cfg.lr}) or check the data for NaNs")
            return None
        self.state.nan_streak = 0
        self.scaler.scale(loss).backward()
        if self.cfg.gclip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.gclip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.update_ema()
        return float(loss.detach())

    @torch.no_grad()
    def update_ema(self):
        """ema = decay * ema + (1 - decay) * weights for the parameters; buffers are copied (BasicSR's model_ema)."""
        weights = dict(self.model.model.named_parameters())
        for name, average in self.ema.named_parameters():
            average.mul_(self.cfg.ema).add_(weights[name].detach(), alpha=1 - self.cfg.ema)
        for average, buffer in zip(self.ema.buffers(), self.model.model.buffers()):
            average.copy_(buffer)

    def finish_epoch(self, lr, losses, scores, seconds):
        is_best = scores[BEST_KEY] > self.state.best
        if is_best:
            self.state.best, self.state.best_epoch = scores[BEST_KEY], self.state.epoch
        row = {"epoch": self.state.epoch, "lr": lr, **losses,
               **{k: scores[k] for k in METRIC_COLUMNS if k in scores},
               **{k: v for k, v in scores.items() if k not in METRIC_COLUMNS},
               "seconds": round(seconds, 3)}
        self.state.history.append(row)
        self.save(is_best)
        if self.ctx.main:
            self.write_history()
        terms = ", ".join(f"{k[5:]} {v:.5f}" for k, v in losses.items() if k.startswith("loss_"))
        self.run.log(f"epoch {self.state.epoch}/{self.cfg.epochs}: lr {lr:.2e}, loss {losses['loss']:.5f} ({terms}), "
                     f"val "
                     f"{metric_label(BEST_KEY, self.cfg.n_colors)} {scores[BEST_KEY]:.3f} dB, "
                     f"{metric_label('ssim_rgb', self.cfg.n_colors)} {scores['ssim_rgb']:.4f}"
                     f"{' (best)' if is_best else ''}, {seconds:.1f} s")

    def write_history(self):
        """metrics.csv and the plots, rewritten from the history the checkpoint holds."""
        if not self.state.history:
            return
        columns = list(dict.fromkeys(k for row in self.state.history for k in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.state.history)
        atomic.write_text(self.run.target("metrics.csv"), text.getvalue())
        import plots  # matplotlib, imported at the first plot: --test_only never draws one

        plots.run_plots(self.run, self.state.history, self.state.bicubic)

    @torch.no_grad()
    def write_summary(self, dataset):
        """summary.png: the curves and a comparison crop of the first validation image with the final weights."""
        lr, hr = dataset.load_pair(0)
        net = self.ema if self.ema is not None else self.model.model
        with self.model.swapped(net):
            self.model.eval()
            sr = self.model(dataset.radiometry.to_network(lr, fill=dataset.fill_mask(lr))[None],
                            plan=self.model.validation_plan, radiometry=dataset.radiometry)
        comparison = Comparison(lr, dataset.radiometry.from_network(sr[0]), hr, self.cfg.scale,
                                dataset.radiometry.white, self.cfg.model, self.cfg.bands)
        import plots

        plots.summary(self.run, self.state.history, self.state.bicubic, comparison, self.state.epoch)

    # -- validation ----------------------------------------------------------------------------------------------
    def bicubic_scores(self, dataset):
        """The val split's scores of the BICUBIC model: the dashed reference line of the curves."""
        rows = []
        for index in range(len(dataset)):
            lr, hr = dataset.load_pair(index)
            lr_fill, valid = dataset.masks(lr, hr)
            rows.append(self.score(bicubic_baseline(lr, self.cfg.scale, lr_fill), hr, dataset.radiometry, valid))
        return average(rows)

    def score(self, sr_img, hr_img, radiometry, valid=None):
        """The metrics of one image, over its `valid` pixels (None: all; see SRData.valid_pixels)."""
        cfg = self.cfg
        return metrics.evaluate_pair(sr_img, hr_img, scale=cfg.scale, crop_border=cfg.scale,
                                     data_range=radiometry.white, bands=cfg.bands,
                                     indices=metrics.computable_indices(cfg.spectral_index, cfg.bands), valid=valid)

    def evaluate(self, loader, desc="val"):
        """Metrics of the one metrics module, averaged over the split (SR in the files' dtype, as deploy writes it),
        with the EMA weights when --ema is on."""
        if self.ema is None:
            return self.evaluate_net(loader, desc)
        with self.model.swapped(self.ema):
            return self.evaluate_net(loader, desc)

    @torch.no_grad()
    def evaluate_net(self, loader, desc):
        """Each rank scores its share of the split (the loader's sampler); the rows are gathered and averaged."""
        self.model.eval()
        dataset = loader.dataset
        rows = []
        for index, (lr_img, _, name, *_) in zip(loader.sampler, progress.bar(loader, desc, unit="img")):
            sr = self.model(lr_img, plan=self.model.validation_plan, radiometry=dataset.radiometry)
            sr_img = dataset.radiometry.from_network(sr[0])
            lr_file, hr_img = dataset.load_pair(index)  # the file's own values
            rows.append((index, self.score(sr_img, hr_img, dataset.radiometry, dataset.valid_pixels(lr_file, hr_img))))
            if self.cfg.save_results and self.ctx.main:
                ext = ".png" if sr_img.shape[2] in (1, 3) and sr_img.dtype in (np.uint8, np.uint16) else ".tif"
                image_io.write_image(self.run.target("results", f"{name[0]}{ext}"), sr_img)
        return average([row for _, row in sorted(distributed.gather(self.ctx, rows), key=lambda item: item[0])])

    def test(self):
        """--test_only: the metrics of the loaded model on --data_test (equal to deploy + calculate_PSNR_SSIM.py)."""
        cfg = self.cfg
        scores = self.evaluate(self.data.loader(cfg.data_test), desc="test")
        self.run.log(f"test of {cfg.checkpoint_path or cfg.model} on {cfg.dataset}/{cfg.data_test} x{cfg.scale}: "
                     + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
        return scores


def seed_everything(seed):
    """Seed every generator the weight initialisation may use (the data draws from its own per-sample seeds)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


