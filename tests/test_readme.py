"""Every command block of the README, run as written, in order, in one shell's working folder, on a copy of the
repository as a fresh clone has it. The blocks are read from README.md here, so the README and this test cannot
drift. A command that needs what a fresh clone cannot hold (a download, a cluster, a GPU, your own scene, hours of
training) is passed over only when it matches an entry of NEEDS_OUTSIDE, each with its reason, and every entry must
still match a README command."""
import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

# substring of a command -> why a fresh clone cannot run it here
NEEDS_OUTSIDE = {
    "pip install": "installing is what CI does before the tests",
    "python -m pytest": "the test suite itself",
    "UCMerced_LandUse/Images": "the UC Merced download",
    "--src AID": "the AID download",
    "prepare_div2k.py": "the DIV2K download",
    "--dataset=UCMerced": "a prepared UC Merced and hours of training",
    "x4_UCMerced": "the results of UC Merced runs",
    "x3_UCMerced": "the results of UC Merced runs",
    "torchrun": "several GPUs or nodes",
    "srun": "a Slurm cluster",
    "scontrol": "a Slurm cluster",
    "scene.tif": "your own scene",
    "landsat7.tif": "your own scene (tests/test_own_scene.py runs this recipe on a generated 6-band scene)",
    "--dir_data ../datasets/Mine": "a dataset made from your own scene (as above)",
    "scenes/": "your own scenes",
    "--dir_data tiles/": "your own tiles",
    "bench_speed.py": "a 30-minute benchmark",
    "gpu_session.sh": "a GPU and the UC Merced download",
    "for m in": "the zoo loop trains every network on UC Merced",
    "python demo_train.py --model=$m": "the zoo loop trains every network on UC Merced",
    "python demo_deploy.py --model=$m": "the zoo loop trains every network on UC Merced",
}
LOOP_END = "done"  # the zoo loop's last line


def readme_blocks(text):
    """The ```bash blocks of the README (indented ones too), each as its logical commands: continuation lines
    joined, comments and blank lines dropped."""
    blocks = []
    for match in re.finditer(r"^( *)```bash\n(.*?)^\1```", text, flags=re.S | re.M):
        indent = len(match.group(1))
        lines = [line[indent:] for line in match.group(2).splitlines()]
        commands, current = [], ""
        for line in lines:
            current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
            if line.endswith("\\"):
                continue
            command = strip_comment(current).strip()
            current = ""
            if command:
                commands.append(command)
        blocks.append(commands)
    return blocks


def strip_comment(line):
    """The line without a trailing `# ...` comment (a # inside quotes stays)."""
    quote = None
    for i, char in enumerate(line):
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or line[i - 1] == " "):
            return line[:i]
    return line


def runnable(command):
    return command != LOOP_END and not any(key in command for key in NEEDS_OUTSIDE)


def test_every_outside_need_still_matches_a_readme_command():
    commands = [c for block in readme_blocks((REPO_ROOT / "README.md").read_text()) for c in block]
    for key in NEEDS_OUTSIDE:
        assert any(key in command for command in commands), f"NEEDS_OUTSIDE {key!r} matches no README command"


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme") / "repo"
    for part in ("codes", "metric_scripts", "datasets", "pretrained", "bench"):
        if (REPO_ROOT / part).is_dir():
            shutil.copytree(REPO_ROOT / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "UCMerced"))
    shutil.copy(REPO_ROOT / "requirements.txt", root / "requirements.txt")
    (root / "experiment").mkdir()
    return root


def test_every_readme_command_block_runs_as_written_in_order(clone):
    """Every runnable command must succeed. A block that begins with `cd` or a repository-relative script starts at
    the repository root; any other block continues in the folder the one before it left, as a reader would."""
    blocks = readme_blocks((REPO_ROOT / "README.md").read_text())
    assert len(blocks) > 10
    folder, ran = clone, []
    for commands in blocks:
        if commands and commands[0].startswith(("cd ", "python codes/", "python bench/", "pip ")):
            folder = clone
        for command in filter(runnable, commands):
            script = f"set -e\n{command}\npwd"
            proc = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True, timeout=1200)
            assert proc.returncode == 0, (command, str(folder), proc.stdout[-1500:], proc.stderr[-2500:])
            folder = Path(proc.stdout.strip().splitlines()[-1])
            ran.append((command, proc))
    outputs = {}
    for command, proc in ran:  # a command's first run: the quick start's
        outputs.setdefault(command, proc)
    # the quick start: the used-by commands as the design card types them, after README command 1
    quick_start = ["python codes/quickstart.py", "python demo_train.py --model=CONVFORMERSR --scale=3",
                   "python demo_deploy.py --model=HSENET --scale=4", "python calculate_PSNR_SSIM.py"]
    assert all(command in outputs for command in quick_start)
    results = clone / "experiment" / "results" / "HSENETx4_Sample"
    assert "4 images ->" in outputs[quick_start[2]].stdout and len(list(results.glob("*.png"))) == 4
    assert f"SR {results}" in outputs[quick_start[3]].stdout  # it scores what the deploy wrote, not an older folder
    assert (clone / "experiment" / "CONVFORMERSRx3_Sample" / "model" / "model_best.pt").is_file()
    with open(results / "psnr_ssim.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["image"] == "average" and 10 < float(rows[-1]["psnr_chmean"]) < 40
    for command in quick_start[1:]:  # logs stay clean when the output is not a terminal
        assert "\r" not in outputs[command].stdout + outputs[command].stderr, command
