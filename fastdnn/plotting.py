"""Training curves (matplotlib is the optional extra ``fastdnn[plot]``)."""

from pathlib import Path


def plot_history(history, path):
    """Write a PNG of every metric per epoch: loss curves left, accuracy curves right.

    Parameters
    ----------
    history : History or dict
        What ``fit`` returned, or its ``.history`` dict.
    path : str or os.PathLike
        Output file (PNG).

    Returns
    -------
    pathlib.Path
        The written file.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plot_history needs matplotlib: pip install 'fastdnn[plot]'") from exc
    metrics = getattr(history, "history", history)
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError("history must be a History or a non-empty dict of metric lists")
    groups = [
        [k for k in metrics if "acc" not in k],
        [k for k in metrics if "acc" in k],
    ]
    groups = [g for g in groups if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.5), squeeze=False)
    for ax, keys in zip(axes[0], groups):
        for key in keys:
            values = metrics[key]
            ax.plot(
                range(1, len(values) + 1),
                values,
                label=key,
                marker="." if len(values) < 30 else None,
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if "acc" in keys[0] else "loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
