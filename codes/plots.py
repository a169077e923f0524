"""The run's plots, drawn from its history (metrics.csv's rows): loss.png, psnr.png, ssim.png and summary.png.

Each names its metric on the axis and in the title (the PSNR is pooled over the bands, `psnr_rgb`, which is not the
HSENet paper's channel mean `psnr_chmean`), draws the BICUBIC model's score on the val split as a dashed line, and
puts ticks on whole epochs only. summary.png puts the loss and PSNR curves above a comparison crop of one validation
image (LR | bicubic | SR | HR, compare.Comparison): one picture of the run.
"""
import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import atomic  # noqa: E402

CURVES = (
    ("loss.png", "loss", "training loss (L1 etc., weighted)"),
    ("psnr.png", "psnr_rgb", "validation PSNR (pooled over the bands, dB)"),
    ("ssim.png", "ssim_rgb", "validation SSIM (mean over bands)"),
)


def run_plots(run, history, bicubic):
    """Write the plots of `history` into the run folder (each file recorded as the run's, written atomically)."""
    for name, key, label in CURVES:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw_curve(ax, history, key, bicubic)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(f"{run.dir.name}: {label}")
        fig.tight_layout()
        save_figure(fig, run.target(name))


def summary(run, history, bicubic, comparison, epoch):
    """summary.png: the loss and PSNR curves, and the panels of `comparison` for the weights of `epoch`."""
    n = len(comparison.panels)
    fig = plt.figure(figsize=(3 * n, 6.5))
    grid = fig.add_gridspec(2, n, height_ratios=(1, 1.1))
    for column, (_, key, label) in enumerate(CURVES[:2]):
        ax = fig.add_subplot(grid[0, column * n // 2:(column + 1) * n // 2])
        draw_curve(ax, history, key, bicubic)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label, fontsize=8)
    for column, (panel, (title, detail)) in enumerate(zip(comparison.panels, comparison.captions)):
        ax = fig.add_subplot(grid[1, column])
        ax.imshow(panel, interpolation="nearest")
        ax.set_title(f"{title}\n{detail}" + (f" (epoch {epoch})" if title.startswith("SR") else ""), fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{run.dir.name}: validation, PSNR pooled over the bands (psnr_rgb)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, run.target("summary.png"))


def draw_curve(ax, history, key, bicubic):
    """One metric over the epochs, with the loss terms or the bicubic reference line."""
    epochs = [int(row["epoch"]) for row in history]
    marker = "o" if len(history) < 30 else None
    ax.plot(epochs, [float(row[key]) for row in history], marker=marker, label=key)
    terms = [k for k in history[0] if k.startswith("loss_")]
    if key == "loss" and len(terms) > 1:  # one term is the total itself
        for term in terms:
            ax.plot(epochs, [float(row[term]) for row in history], marker=marker, label=term[5:])
    if bicubic and key in bicubic:
        ax.axhline(bicubic[key], linestyle="--", color="gray", label=f"bicubic ({bicubic[key]:.3f})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)


def save_figure(fig, path):
    with atomic.atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
