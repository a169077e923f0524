"""torchrun support: one process per GPU (NCCL) or per CPU worker (gloo), one node or many.

    torchrun --standalone --nproc_per_node 4 demo_train.py --model=HSENET --scale=4 --dataset=UCMerced
    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29500 demo_train.py ...

Without torchrun's environment (WORLD_SIZE unset or 1) everything runs in one process.

- `setup(cpu)` joins the process group (NCCL on CUDA, gloo with --cpu or without a GPU) with a timeout on every
  collective, so a rank that hangs or dies brings the others down within DIST_TIMEOUT_S instead of never (torchrun
  itself stops the others as soon as one process exits with an error).
- `agree(step)` runs a step on every rank and shares the outcome: a UserError raised on any rank is raised on all of
  them, with that rank's one-line message, so no rank waits for a collective that will never come. Only rank 0
  prints it (errors.run_cli). `on_main(step)` is the same for a step that rank 0 alone takes (writing files).
- `gather(items)`: the concatenation of every rank's list, in rank order (rank 0 gets it, and so do the others).
"""
import datetime
import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401  (imported before any process group exists: see teardown)

from errors import UserError

DIST_TIMEOUT_S = 120


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self):
        return self.rank == 0

    @property
    def active(self):
        return self.world > 1


ONE_PROCESS = Context()


def launched_by_torchrun():
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(cpu):
    """The process's Context; joins the process group when torchrun started several processes."""
    use_cuda = not cpu and torch.cuda.is_available()
    if not launched_by_torchrun():
        return Context(device=torch.device("cuda" if use_cuda else "cpu"))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=DIST_TIMEOUT_S),
                                device_id=torch.device("cuda", local_rank) if use_cuda else None)
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return Context(rank, world, local_rank, device)


def agree(ctx, step, *args, **kwargs):
    """step(*args, **kwargs) on every rank; a UserError on any rank becomes the same UserError on all of them."""
    try:
        result, problem = step(*args, **kwargs), None
    except UserError as err:
        result, problem = None, str(err)
    if ctx.active:
        problems = [None] * ctx.world
        dist.all_gather_object(problems, problem)
        failed = [(rank, text) for rank, text in enumerate(problems) if text]
        if failed:
            rank, text = failed[0]
            raise UserError(text if rank == 0 else f"{text} (on rank {rank})")
    elif problem:
        raise UserError(problem)
    return result


def on_main(ctx, step, *args, default=None, **kwargs):
    """step(*args, **kwargs) on rank 0 alone (the others get `default` once it is done); a UserError there is raised
    on every rank."""
    return agree(ctx, step if ctx.main else (lambda *_, **__: default), *args, **kwargs)


def gather(ctx, items):
    """Every rank's list, concatenated in rank order (a plain copy without torchrun)."""
    if not ctx.active:
        return list(items)
    parts = [None] * ctx.world
    dist.all_gather_object(parts, list(items))
    return [item for part in parts for item in part]


def mean_over_ranks(ctx, values):
    """{name: mean over the ranks} of a dict of floats (each rank's mean over equal shares: the global mean)."""
    if not ctx.active:
        return values
    keys = sorted(values)
    stacked = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(stacked)
    return {k: float(v) / ctx.world for k, v in zip(keys, stacked)}


def all_finite(ctx, value):
    """True when `value` (a loss) is finite on every rank: a rank that skips a step must not leave the others
    waiting in DDP's gradient all-reduce."""
    finite = torch.tensor([1.0 if torch.isfinite(value).all() else 0.0], device=value.device)
    if ctx.active:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    return bool(finite.item())


def max_over_ranks(ctx, value):
    """The largest of an integer over the ranks (e.g. a stop request that only some ranks received)."""
    if not ctx.active:
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=ctx.device)  # NCCL reduces CUDA tensors only
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def shard(ctx, items):
    """This rank's share of a list: every world-th item, starting at its rank."""
    return list(items)[ctx.rank::ctx.world]


def barrier(ctx):
    if ctx.active:
        dist.barrier()


def teardown(ctx):
    """Leave the process group while the interpreter is fully alive: once nothing holds the group (the DDP wrapper is
    gone, see Model.unwrap_training), destroying it joins gloo's worker threads here rather than during shutdown.

    Why it matters: a gloo worker that drops the last collective's tensors while the interpreter shuts down aborts the
    process in C++ ("terminate called without an active exception"; about 1 two-rank run in 12 on 2 busy cores). The
    group was kept alive by torch.distributed.nn, which DistributedDataParallel imports: its functions take
    `group=group.WORLD` as a default argument, which holds the group forever when the module is first imported after
    init_process_group. This module imports it at the top, before any group exists."""
    if ctx.active and dist.is_initialized():
        gc.collect()  # a DDP wrapper caught in a reference cycle would keep the group alive
        dist.destroy_process_group()
