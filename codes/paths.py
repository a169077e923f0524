"""Repository-relative default locations, so no default depends on the working directory."""
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = REPO_ROOT / "datasets"
EXPERIMENT_DIR = REPO_ROOT / "experiment"
RESULTS_DIR = EXPERIMENT_DIR / "results"
CACHE_DIR = EXPERIMENT_DIR / "cache"
