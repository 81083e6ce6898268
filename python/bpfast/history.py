"""History: what Network.fit returns, and its plot."""

__all__ = ["History"]


class History(list):
    """The per-epoch training losses (a list; epoch e, counted from 1, is history[e - 1]),
    with every per-epoch record in ``history``: "loss", and "val_loss" and
    "val_accuracy" when validation data was given.

    best_epoch: the epoch (from 1) with the lowest monitored loss (val_loss when
    there was validation data, else loss), or None before any epoch.
    stopped_early: whether patience stopped the fit (the best epoch's weights
    were then restored).
    """

    def __init__(self):
        super().__init__()
        self.history = {"loss": []}
        self.stopped_early = False
        self.best_epoch = None

    def plot(self, ax=None):
        """Draw the loss (and val_loss) per epoch, and val_accuracy on a second axis when it
        was recorded, with matplotlib (optional: pip install matplotlib); the legend sits above
        the axes, clear of every curve. Returns the Axes."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        if ax is None:
            _, ax = plt.subplots()
        epochs = range(1, len(self.history["loss"]) + 1)
        lines = ax.plot(epochs, self.history["loss"], marker=".", label="loss")
        if "val_loss" in self.history:
            lines += ax.plot(epochs, self.history["val_loss"], marker=".", label="val_loss")
        if self.best_epoch is not None:
            ax.axvline(self.best_epoch, color="0.6", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        if "val_accuracy" in self.history:
            accuracy_axis = ax.twinx()
            lines += accuracy_axis.plot(epochs, self.history["val_accuracy"], marker=".", color="tab:green",
                                        label="val_accuracy")
            accuracy_axis.set_ylabel("accuracy")
        # Above the axes, in one row: inside them "best" weighs only ax's own lines, not the
        # accuracy axis's, and so could sit on the val_accuracy curve.
        ax.legend(lines, [line.get_label() for line in lines], loc="lower left", bbox_to_anchor=(0.0, 1.01),
                  ncol=len(lines), frameon=False, borderaxespad=0.0)
        return ax
