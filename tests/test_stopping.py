"""Training that survives any budget: SIGTERM, SIGUSR1 (Slurm's warnings before a time limit or a preemption) and
SIGINT stop a run mid-epoch with a checkpoint, --time_budget stops it in time, and --resume then ends with the same
weights and the same metrics.csv as a run that was never stopped."""
import csv
import signal
import subprocess
import sys
import time

import pytest
import torch

import checkpoint
import demo_train
from errors import UserError
from helpers import CODES, TINY_BASIC, isolated

TRAIN = [*TINY_BASIC, "--scale=2", "--print_every=1"]
TWO_EPOCHS = ["--epochs=2", "--test_every=60"]


def start(tmp_path, save, *extra):
    return subprocess.Popen([sys.executable, "demo_train.py", *TRAIN, *isolated(tmp_path), f"--save={save}", *extra],
                            cwd=CODES, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def wait_for_batch(tmp_path, save, batch, timeout=300):
    """Wait until the run's log says it trained `batch` batches of epoch 1."""
    log = tmp_path / "experiment" / save / "log.txt"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.is_file() and f"[epoch 1 batch {batch}/" in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{log} never reached batch {batch}")


def outcome(tmp_path, save):
    """(weights, metrics.csv rows without the timing column) of a finished run."""
    run = tmp_path / "experiment" / save
    weights = torch.load(run / "model" / "model_latest.pt", weights_only=True)["model"]
    with open(run / "metrics.csv", newline="") as f:
        rows = [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]
    return weights, rows


def assert_same_run(a, b):
    """Two (tmp_path, save) runs ended with the same weights and metrics.csv."""
    (weights_a, rows_a), (weights_b, rows_b) = outcome(*a), outcome(*b)
    assert rows_a == rows_b and rows_a
    for key, tensor in weights_a.items():
        assert torch.equal(tensor, weights_b[key]), key


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """A run that was never stopped: 2 epochs of 60 batches."""
    tmp_path = tmp_path_factory.mktemp("straight")
    code, out, err = finish(start(tmp_path, "run", *TWO_EPOCHS))
    assert code == 0, err
    return tmp_path


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT])
def test_a_stop_signal_saves_mid_epoch_and_resume_is_bitwise_exact(tmp_path, straight, signum):
    proc = start(tmp_path, "run", *TWO_EPOCHS)
    wait_for_batch(tmp_path, "run", 3)
    proc.send_signal(signum)
    code, out, err = finish(proc)
    assert code == 128 + signum, (code, err[-2000:])
    assert "Traceback" not in err
    # where it stops depends on how far the run got before the signal: inside an epoch (nearly always), or at the
    # end of epoch 1 when it raced past the batches left
    lines = [line for line in out.splitlines() if line.startswith(f"{signum.name}: stopped ")]
    assert len(lines) == 1 and "continue it with the same command and --resume" in lines[0], out[-2000:]
    saved = checkpoint.read(tmp_path / "experiment" / "run" / "model" / "model_latest.pt").payload
    partial = saved["partial"]
    assert partial is None or (partial["epoch"] == saved["epoch"] + 1 and partial["batches"] >= 3)
    resumed = subprocess.run([sys.executable, "demo_train.py", "--save=run", "--resume", *isolated(tmp_path)],
                             cwd=CODES, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    if partial is not None:
        assert f"inside epoch {partial['epoch']} after batch {partial['batches']}" in resumed.stdout
    assert_same_run((straight, "run"), (tmp_path, "run"))


def test_the_time_budget_stops_in_time_and_resume_is_bitwise_exact(tmp_path):
    long_epoch = ["--epochs=1", "--test_every=3000", "--batch_size=1"]  # longer than the budget of 6 s
    code, out, err = finish(start(tmp_path, "straight", *long_epoch))
    assert code == 0, err
    code, out, err = finish(start(tmp_path, "budget", *long_epoch, "--time_budget=0.1"))
    assert code == 0, err  # the budget ended the command as asked
    assert "time budget: stopped at epoch 1, batch" in out and "done:" not in out
    resumed = subprocess.run([sys.executable, "demo_train.py", "--save=budget", "--resume", *isolated(tmp_path)],
                             cwd=CODES, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0 and "done:" in resumed.stdout, resumed.stderr[-2000:]
    assert_same_run((tmp_path, "straight"), (tmp_path, "budget"))


def test_a_damaged_epoch_in_progress_is_one_line_naming_the_file(tmp_path):
    demo_train.main([*TRAIN, *isolated(tmp_path), "--epochs=1", "--test_every=2", "--save=run"])
    latest = tmp_path / "experiment" / "run" / "model" / "model_latest.pt"
    payload = torch.load(latest, weights_only=True)
    payload["partial"] = {"epoch": 5, "batches": 1, "totals": [], "terms": [], "nan_streak": 0,
                          "rng": torch.get_rng_state()}
    payload[checkpoint.CHECKSUM_KEY] = checkpoint.payload_checksum(payload)
    torch.save(payload, latest)
    with pytest.raises(UserError, match=f"{latest}: the saved epoch in progress is damaged .*does not follow"):
        demo_train.main(["--save=run", "--resume", "--epochs=2", *isolated(tmp_path)])
