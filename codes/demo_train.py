"""Train (or, with --test_only, evaluate) a network.

    cd codes && python demo_train.py --model=BASIC --scale=4
    python demo_train.py --model=HSENET --scale=4 --dataset UCMerced --dir_data /data/UCMerced
    python demo_train.py --model=HSENET --scale=4 --dataset UCMerced --resume      # continue exactly
    python demo_train.py --model=HSENET --scale=4 --dataset UCMerced --test_only   # evaluate model_best.pt

Everything is checked (flags, checkpoint, data) before the run folder is touched, so --reset never loses a run to a
typo.
"""
import torch

import option
from data import Data, dataset_root
from errors import UserError, run_cli
from loss import Loss
from model import Model, network_module
from runs import RunFolder
from trainer import Trainer, seed_everything


def main(argv=None):
    cfg = option.parse_args(argv, purpose="train")
    testing = cfg.purpose == "test"
    if not testing and getattr(network_module(cfg.model), "PARAMETER_FREE", False):
        raise UserError(f"--model {cfg.model} has no parameters to train: use demo_deploy.py to run it")
    seed_everything(cfg.seed)
    loss = Loss(cfg)  # a bad --loss / --spectral_index / --bands fails here, before any data is read
    data = Data(cfg)
    for split, train in ([(cfg.data_test, False)] if testing else [(cfg.data_train, True), (cfg.data_val, False)]):
        data.loader(split, train=train)  # scan and check every image now
    model = Model(cfg)
    run = RunFolder(cfg, lock=not testing)
    try:
        run.write_config(cfg)
        trainer = Trainer(cfg, data, model, loss, run)
        device = f"{model.device}" + (f" ({torch.cuda.get_device_name()})" if model.device.type == "cuda" else "")
        n_params = sum(p.numel() for p in model.parameters())
        run.log(f"{cfg.model} x{cfg.scale} on {cfg.dataset} ({dataset_root(cfg)}), {n_params / 1e6:.3f} M "
                f"parameters, {device}, run folder {run.dir}")
        if model.precision_note:
            run.log(model.precision_note)
        if testing:
            trainer.test()
        else:
            trainer.train()
            run.log(f"done: best {run.path('model', 'model_best.pt')}, curves in {run.dir}/*.png")
    finally:
        run.close()
    return 0


if __name__ == "__main__":
    run_cli(main)
