"""torchrun on the CPU (gloo, 2 processes): DDP training equals one process, exact resume, an error on one rank, a
dead rank, data-parallel deploy, and EMA weights. Every run uses one thread per process (torchrun's default for
several processes; the single-process references set the same), so the float reduction order is comparable."""
import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import checkpoint
import demo_deploy
import demo_train
import image_files
from errors import UserError
from helpers import CODES, SAMPLE, TINY_BASIC, isolated

TRAIN = TINY_BASIC + ["--scale=2"]
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


def torchrun(*args, script=CODES / "demo_train.py", timeout=300, env=ONE_THREAD):
    """Run `script` under torchrun with 2 CPU processes; returns the CompletedProcess."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--max_restarts", "0", str(script), *map(str, args)]
    return subprocess.run(command, cwd=CODES, capture_output=True, text=True, timeout=timeout, env=env)


def one_process(*args, script=CODES / "demo_train.py"):
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=CODES, capture_output=True, text=True,
                          timeout=300, env=ONE_THREAD)


def payload(tmp, save, name=checkpoint.LATEST):
    return torch.load(tmp / "experiment" / save / "model" / name, weights_only=True)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """2 epochs with 2 ranks, the same 2 epochs in one process, and 1 + --resume + 1 with 2 ranks."""
    tmp = tmp_path_factory.mktemp("ddp")
    flags = TRAIN + isolated(tmp)
    runs = [torchrun(*flags, "--epochs=2", "--save=ranks"), one_process(*flags, "--epochs=2", "--save=single"),
            torchrun(*flags, "--epochs=1", "--save=split"), torchrun(*flags, "--epochs=2", "--save=split", "--resume")]
    for proc in runs:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, runs


def test_two_ranks_train_like_one_process_with_the_same_global_batch(ddp_run):
    tmp, runs = ddp_run
    ranks, single = payload(tmp, "ranks"), payload(tmp, "single")
    for key, value in single["model"].items():
        torch.testing.assert_close(ranks["model"][key], value, rtol=0, atol=1e-6)  # up to float reduction order
    for a, b in zip(ranks["history"], single["history"]):
        assert abs(a["psnr_rgb"] - b["psnr_rgb"]) < 0.01 and abs(a["loss"] - b["loss"]) < 1e-5
    log = (tmp / "experiment" / "ranks" / "log.txt").read_text()
    assert "x 2 processes" in log and log.count("epoch 2/2") == 1  # rank 0 alone writes the run folder
    with open(tmp / "experiment" / "ranks" / "metrics.csv") as f:
        assert len(f.read().splitlines()) == 3  # a header and one row per epoch


def test_resume_under_torchrun_is_exact(ddp_run):
    tmp, runs = ddp_run
    straight, split = payload(tmp, "ranks"), payload(tmp, "split")
    assert split["epoch"] == 2 and "resumed" in (tmp / "experiment" / "split" / "log.txt").read_text()
    for key, value in straight["model"].items():
        assert torch.equal(value, split["model"][key]), key


ERROR_ON_RANK_1 = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, sys.argv[1])
    import data, demo_train
    from errors import UserError, run_cli
    real = data.Data.loader

    def loader(self, split, train=False):
        if os.environ["RANK"] == "1":
            raise UserError(f"{split}: a folder missing on this node only")
        return real(self, split, train)

    data.Data.loader = loader
    run_cli(demo_train.main, sys.argv[2:])
''')


def test_a_user_error_on_one_rank_stops_every_rank_promptly_with_one_line(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(ERROR_ON_RANK_1)
    start = time.monotonic()
    proc = torchrun(CODES, *TRAIN, "--epochs=1", *isolated(tmp_path), script=driver, timeout=120)
    assert proc.returncode != 0 and time.monotonic() - start < 60
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: train: a folder missing on this node only (on rank 1)"], proc.stderr[-2000:]
    # torchrun's launcher reports a failed worker with its own traceback; none comes from a process of ours
    assert f'File "{CODES}' not in proc.stderr and "ChildFailedError" in proc.stderr
    assert not (tmp_path / "experiment" / "BASICx2_Sample" / "model").exists()  # nothing started


KILL_RANK_1 = textwrap.dedent('''
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import demo_train, trainer
    real = trainer.Trainer.train_epoch

    def train_epoch(self, *args):
        if self.state.epoch == 2 and os.environ["RANK"] == "1":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(self, *args)

    trainer.Trainer.train_epoch = train_epoch
    demo_train.main(sys.argv[2:])
''')


def test_a_dead_rank_brings_the_others_down_and_the_run_resumes(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(KILL_RANK_1)
    flags = [*TRAIN, *isolated(tmp_path), "--save=run"]
    start = time.monotonic()
    proc = torchrun(CODES, *flags, "--epochs=3", script=driver, timeout=240)
    assert proc.returncode != 0 and time.monotonic() - start < 120, proc.stderr[-2000:]
    assert payload(tmp_path, "run")["epoch"] == 1  # epoch 2 died; epoch 1 is safe
    proc = torchrun(*flags, "--epochs=3", "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [row["epoch"] for row in payload(tmp_path, "run")["history"]] == [1, 2, 3]


def test_data_parallel_deploy_writes_the_same_bytes_as_one_process(tmp_path):
    torch.manual_seed(0)
    demo_train.main(TRAIN + ["--epochs=1", "--save=m"] + isolated(tmp_path))
    ckpt = tmp_path / "experiment" / "m" / "model" / checkpoint.BEST
    flags = ["--model=BASIC", "--scale=2", "--cpu", f"--pre_train={ckpt}", *isolated(tmp_path),
             f"--dir_data={SAMPLE / 'test' / 'LR_x2'}"]
    assert one_process(*flags, f"--dir_out={tmp_path / 'one'}", script=CODES / "demo_deploy.py").returncode == 0
    proc = torchrun(*flags, f"--dir_out={tmp_path / 'two'}", script=CODES / "demo_deploy.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = [p.name for p in image_files.list_images(SAMPLE / "test" / "LR_x2")]
    for name in names:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["outputs"] == names and proc.stdout.count("manifest:") == 1


def test_ema_weights_are_saved_restored_exactly_and_deployed(tmp_path):
    flags = TRAIN + isolated(tmp_path) + ["--ema=0.9"]
    demo_train.main(flags + ["--epochs=2", "--save=straight"])
    demo_train.main(flags + ["--epochs=1", "--save=split"])
    demo_train.main(flags + ["--epochs=2", "--save=split", "--resume"])
    straight, split = payload(tmp_path, "straight"), payload(tmp_path, "split")
    for part in ("model", "model_ema"):
        for key, value in straight[part].items():
            assert torch.equal(value, split[part][key]), (part, key)
    assert any(not torch.equal(straight["model"][k], straight["model_ema"][k]) for k in straight["model"])
    best = tmp_path / "experiment" / "straight" / "model" / checkpoint.BEST
    deploy = ["--scale=2", "--cpu", f"--pre_train={best}", *isolated(tmp_path)]
    demo_deploy.main(deploy + [f"--dir_out={tmp_path / 'ema'}"])
    demo_deploy.main(deploy + [f"--dir_out={tmp_path / 'raw'}", "--no_ema"])
    name = image_files.list_images(SAMPLE / "test" / "LR_x4")[0].name
    assert (tmp_path / "ema" / name).read_bytes() != (tmp_path / "raw" / name).read_bytes()
    demo_train.main(TRAIN + isolated(tmp_path) + ["--epochs=1", "--save=plain"])
    with pytest.raises(UserError, match="holds no EMA weights .*trained without --ema"):
        demo_train.main(TRAIN + isolated(tmp_path) + ["--epochs=2", "--save=plain", "--resume", "--ema=0.5"])


# Counts the process's threads before the script and after its teardown. gloo runs each process group's collectives on
# worker threads; if they outlive the script, one of them can drop a collective's tensors while the interpreter shuts
# down, and the rank aborts in C++ ("terminate called without an active exception"), a race that ends about 1 two-rank
# run in 12 on 2 busy cores without distributed.teardown. The count makes its precondition visible in every run.
COUNT_THREADS = textwrap.dedent('''
    import os, sys
    sys.path.insert(0, sys.argv[1])
    import demo_deploy, demo_train, trainer
    from errors import UserError, run_cli
    entry, flags = sys.argv[2], sys.argv[3:]
    if os.environ.get("FAIL_IN_TRAINING"):
        def train_epoch(self, *args):
            raise UserError("a problem found during training")
        trainer.Trainer.train_epoch = train_epoch

    def threads():
        return len(os.listdir("/proc/self/task"))

    before = threads()
    try:
        run_cli({"train": demo_train.main, "deploy": demo_deploy.main}[entry], flags)
    finally:
        print(f"rank {os.environ['RANK']}: {before} threads before, {threads()} after", flush=True)
''')


@pytest.mark.parametrize("entry, fail", [("train", False), ("train", True), ("deploy", False)])
def test_gloo_threads_end_with_the_script_not_at_interpreter_shutdown(tmp_path, entry, fail):
    driver = tmp_path / "driver.py"
    driver.write_text(COUNT_THREADS)
    if entry == "train":
        flags = [*TRAIN, "--epochs=1", *isolated(tmp_path)]
    else:
        flags = ["--model=BICUBIC", "--scale=2", "--cpu", *isolated(tmp_path), f"--dir_out={tmp_path / 'out'}",
                 f"--dir_data={SAMPLE / 'test' / 'LR_x2'}"]
    env = {**ONE_THREAD, **({"FAIL_IN_TRAINING": "1"} if fail else {})}
    proc = torchrun(CODES, entry, *flags, script=driver, env=env)
    assert (proc.returncode != 0) == fail, proc.stderr[-3000:]
    if fail:
        assert "error: a problem found during training" in proc.stderr
    # the two ranks' lines may interleave in the shared stdout
    counts = sorted(re.findall(r"rank (\d): (\d+) threads before, (\d+) after", proc.stdout))
    assert counts == [("0", "1", "1"), ("1", "1", "1")], proc.stdout
