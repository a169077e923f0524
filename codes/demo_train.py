"""Train (or, with --test_only, evaluate) a network.

    cd codes && python demo_train.py --model=BASIC --scale=4
    python demo_train.py --model=HSENET --scale=4 --dataset UCMerced --dir_data /data/UCMerced
"""
import torch

import option
import utility
from data import Data, dataset_root
from errors import UserError, run_cli
from loss import Loss
from model import Model
from trainer import Trainer


def main(argv=None):
    args = option.parse_args(argv)
    utility.seed_everything(args.seed)
    loss = Loss(args)  # a bad --loss / --spectral_index / --bands fails here, before any data is read
    data = Data(args)
    data.loader(args.data_test if args.test_only else args.data_train, train=not args.test_only)  # fail early
    model = Model(args)
    if not args.test_only and not any(p.requires_grad for p in model.parameters()):
        raise UserError(f"--model {args.model} has no parameters to train: use demo_deploy.py to run it")
    run = utility.RunFolder(args)
    trainer = Trainer(args, data, model, loss, run)
    device = f"{model.device}" + (f" ({torch.cuda.get_device_name()})" if model.device.type == "cuda" else "")
    n_params = sum(p.numel() for p in model.parameters())
    run.log(f"{args.model} x{args.scale} on {args.dataset} ({dataset_root(args)}), {n_params / 1e6:.3f} M parameters, "
            f"{device}, run folder {run.dir}")
    if args.test_only:
        trainer.test()
    else:
        trainer.train()
        run.log(f"done: best {run.path('model', 'model_best.pt')}, curves in {run.dir}/*.png")
    return 0


if __name__ == "__main__":
    run_cli(main)
