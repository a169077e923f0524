"""Train (or, with --test_only, evaluate) a network.

    cd codes && python demo_train.py --model=BASIC --scale=4
    python demo_train.py --model=HSENET --scale=4 --dataset UCMerced --dir_data /data/UCMerced
    python demo_train.py --model=HSENET --scale=4 --dataset UCMerced --resume      # continue exactly
    python demo_train.py --model=HSENET --scale=4 --dataset UCMerced --test_only   # evaluate model_best.pt
    torchrun --standalone --nproc_per_node 4 demo_train.py --model=HSENET ...      # one process per GPU

Everything is checked (flags, checkpoint, data) before the run folder is touched, so --reset never loses a run to a
typo. Under torchrun each step is agreed by all ranks (distributed.agree): an error on one rank stops all of them
with its one-line message, and rank 0 alone owns the run folder.
"""
import cpu_runtime  # noqa: F401  (first: OpenMP's spin count and glibc's heap, before torch loads)

# isort: split
import torch

import distributed
import option
from data import Data, dataset_root
from errors import UserError, run_cli
from loss import Loss
from model import Model, network_spec
from runs import Bystander, RunFolder
from trainer import Trainer, seed_everything


def main(argv=None):
    cfg = option.parse_args(argv, purpose="train")
    testing = cfg.purpose == "test"
    if not testing and network_spec(cfg.model).parameter_free:
        raise UserError(f"--model {cfg.model} has no parameters to train: use demo_deploy.py to run it")
    ctx = distributed.setup(cfg.cpu)
    try:
        return run_training(cfg, ctx, testing)
    finally:
        distributed.teardown(ctx)


def open_run(cfg, ctx, testing):
    """The run folder (rank 0: locked, --reset done, config.txt written; other ranks write nothing)."""
    if not ctx.main:
        return Bystander(cfg)
    run = RunFolder(cfg, lock=not testing)
    try:
        run.write_config(cfg)
    except BaseException:
        run.close()
        raise
    return run


def run_training(cfg, ctx, testing):
    seed_everything(cfg.seed)
    loss = distributed.agree(ctx, Loss, cfg)  # a bad --loss, --spectral_index or --bands fails before the data
    data = Data(cfg, ctx.rank, ctx.world)
    splits = [(cfg.data_test, False)] if testing else [(cfg.data_train, True), (cfg.data_val, False)]
    distributed.agree(ctx, lambda: [data.loader(split, train=train) for split, train in splits])  # check every image
    model = distributed.agree(ctx, Model, cfg, device=ctx.device)
    run = distributed.agree(ctx, open_run, cfg, ctx, testing)
    try:
        trainer = distributed.agree(ctx, Trainer, cfg, data, model, loss, run, ctx)
        device = f"{model.device}" + (f" ({torch.cuda.get_device_name()})" if model.device.type == "cuda" else "")
        n_params = sum(p.numel() for p in model.parameters())
        ranks = f" x {ctx.world} processes" if ctx.active else ""
        run.log(f"{cfg.model} x{cfg.scale} on {cfg.dataset} ({dataset_root(cfg)}), {n_params / 1e6:.3f} M "
                f"parameters, {device}{ranks}, run folder {run.dir}")
        if model.precision_note:
            run.log(model.precision_note)
        if cfg.nodata is not None:
            run.log(f"nodata {cfg.nodata:g} (from the {cfg.sources['nodata']}): those pixels, and the HR pixels under "
                    f"LR ones, are left out of every loss term and score")
        if testing:
            trainer.test()
            return 0
        code = trainer.train()
        if trainer.state.epoch >= cfg.epochs and trainer.state.partial is None:
            run.log(f"done: best {run.path('model', 'model_best.pt')}, curves in {run.dir}/*.png")
        return code
    finally:
        # drop DDP's hold on the process group here: an error's traceback keeps this frame, and the model, alive
        model.unwrap_training()
        run.close()


if __name__ == "__main__":
    run_cli(main)
