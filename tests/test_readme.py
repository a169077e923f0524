"""Every command block of the README and of the docs pages, run as written, in order, in one shell's working folder,
on a copy of the repository as a fresh clone has it. The blocks are read from the pages here (COMMAND_PAGES: the
README first, then each docs page in a fixed order), so the pages and this test cannot drift. A command that needs
what a fresh clone cannot hold (a download, a cluster, a GPU, your own scene, hours of training) is passed over only
when it matches an entry of NEEDS_OUTSIDE, each with its reason, and every entry must still match a command of those
pages."""
import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT

# the pages whose ```bash blocks run, in this order: the README first (its quick start makes the runs the other pages
# use), then the docs pages in the order a reader meets them. Each page's first block starts at the repository root.
COMMAND_PAGES = ["README.md", "docs/datasets.md", "docs/training.md", "docs/evaluation.md", "docs/deploy.md",
                 "docs/qgis.md", "docs/models.md", "docs/performance.md", "docs/model_zoo.md", "docs/contributing.md"]
# the pages that must hold no ```bash block (or be listed above)
OTHER_PAGES = ["CHANGELOG.md", "docs/*.md", "datasets/README.md", "experiment/README.md"]
# a block that begins with one of these starts at the repository root
ROOT_STARTS = ("cd ", "python codes/", "python bench/", "pip ")

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
    "pack_dataset.py": "a prepared UC Merced (tests/test_pack.py packs a prepared dataset of its own)",
    "bench_startup.py": "a 20-minute benchmark",
    "for m in": "the zoo loop trains every network on UC Merced",
    "python demo_train.py --model=$m": "the zoo loop trains every network on UC Merced",
    "python demo_deploy.py --model=$m": "the zoo loop trains every network on UC Merced",
    "my_rgb_tiles/": "your own RGB tiles",
    "--dir_data /data/mine": "a dataset of your own to fine-tune on",
    "--model=ESPCN": "the network docs/contributing.md walks through adding",
}
LOOP_END = "done"  # the zoo loop's last line


def readme_blocks(text):
    """The ```bash blocks of a page (indented ones too), each as its logical commands: continuation lines joined,
    comments and blank lines dropped."""
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


def page_blocks():
    """(page, its blocks) for each of COMMAND_PAGES, in order."""
    return [(page, readme_blocks((REPO_ROOT / page).read_text(encoding="utf-8"))) for page in COMMAND_PAGES]


def test_every_outside_need_still_matches_a_readme_command():
    commands = [c for _, blocks in page_blocks() for block in blocks for c in block]
    for key in NEEDS_OUTSIDE:
        assert any(key in command for command in commands), f"NEEDS_OUTSIDE {key!r} matches no command of the pages"


def test_every_page_with_commands_is_run_and_each_starts_at_the_repository_root():
    for pattern in OTHER_PAGES:
        for path in REPO_ROOT.glob(pattern):
            page = path.relative_to(REPO_ROOT).as_posix()
            assert page in COMMAND_PAGES or not readme_blocks(path.read_text(encoding="utf-8")), \
                f"{page} has ```bash blocks: add it to COMMAND_PAGES"
    for page, blocks in page_blocks():
        first = next((commands for commands in blocks if commands), None)
        assert first, f"{page} has no command block: take it out of COMMAND_PAGES"
        assert first[0].startswith(ROOT_STARTS), f"{page}: its first block must start at the repository root"


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
    """Every runnable command must succeed. Each page starts at the repository root, and so does a block that begins
    with `cd` or a repository-relative script; any other block continues in the folder the one before it left, as a
    reader would."""
    pages = page_blocks()
    assert sum(len(blocks) for _, blocks in pages) > 10
    ran = []
    for page, blocks in pages:
        folder = clone
        for commands in blocks:
            if commands and commands[0].startswith(ROOT_STARTS):
                folder = clone
            for command in filter(runnable, commands):
                script = f"set -e\n{command}\npwd"
                proc = subprocess.run(["bash", "-c", script], cwd=folder, capture_output=True, text=True,
                                      timeout=1200)
                assert proc.returncode == 0, (page, command, str(folder), proc.stdout[-1500:], proc.stderr[-2500:])
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
