"""What Network.fit shows with verbose=True, after the Keras habit: one line per epoch
(its time and logs), and, on a terminal, a bar over the batches of an epoch that takes
more than about a second, redrawn in place and replaced by the epoch's line.

Without a terminal (a log file, CI, a notebook's captured output) only whole lines are
written, never carriage-return frames: the epoch lines, and for a long epoch a batch line
at most once every LINE_SECONDS.

fit runs a long epoch in spans of batches (each about SPAN_SECONDS long), one engine call
each, and reports each span here; a short epoch stays one call. On a terminal the bar is
tqdm's when tqdm is installed, else a plain one.
"""

import math
import sys
import time

SPAN_SECONDS = 0.1        # the length of one engine call while batches are shown
LONG_EPOCH_SECONDS = 1.0  # epochs expected to take longer than this show their batches
LINE_SECONDS = 1.0        # without a terminal: at most one batch line per this many seconds
BAR_WIDTH = 30            # the plain bar's width in characters


def _tqdm():
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def is_terminal(out):
    """Whether out is an interactive terminal (where a bar may redraw itself in place)."""
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed file
        return False


def epoch_line(epoch, epochs, seconds, logs):
    """The line of a finished epoch: "epoch 2/10  0.41s  loss 0.3127  val_loss 0.3518"."""
    text = "  ".join(f"{key} {value:.4g}" for key, value in logs.items())
    return f"epoch {epoch}/{epochs}  {seconds:.2f}s  {text}"


class Progress:
    """The display of one fit; every method does nothing when it is not enabled."""

    def __init__(self, epochs, rows, batch_size, enabled, out=None):
        self.enabled, self.epochs, self.batch_size = enabled, epochs, batch_size
        self.batches = math.ceil(rows / batch_size)
        self.seconds_per_batch = None  # measured on the first span, refined on each
        self.out = out if out is not None else sys.stdout
        self.terminal = enabled and is_terminal(self.out)
        self._tqdm = _tqdm() if self.terminal else None  # never a bar without a terminal
        self._batch_bar = None
        self._plain_bar = False  # a plain bar is on the terminal's current line
        self._last_line = 0.0
        self._epoch_started = time.perf_counter()

    def _epoch_is_long(self):
        return self.seconds_per_batch is not None and self.seconds_per_batch * self.batches > LONG_EPOCH_SECONDS

    def batches_per_span(self):
        """How many batches the next engine call should run: one until the speed is known, then
        the whole epoch when it is short, else about SPAN_SECONDS' worth."""
        if self.seconds_per_batch is None:
            return 1
        if not self._epoch_is_long():
            return self.batches
        return max(1, int(SPAN_SECONDS / max(self.seconds_per_batch, 1e-9)))

    def batches_done(self, epoch, rows_done, seconds, batches):
        """A span of `batches` batches took `seconds`; the epoch has reached row rows_done."""
        if not self.enabled or batches <= 0:
            return
        self.seconds_per_batch = seconds / batches
        if not self._epoch_is_long():
            return
        done = math.ceil(rows_done / self.batch_size)  # spans end on batch boundaries or at the last row
        if self._tqdm is not None:
            if self._batch_bar is None:
                self._batch_bar = self._tqdm(total=self.batches, unit="batch", leave=False,
                                             desc=f"epoch {epoch}/{self.epochs}", file=self.out)
            self._batch_bar.update(done - self._batch_bar.n)
        elif self.terminal:
            filled = BAR_WIDTH * done // self.batches
            bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + " " * (BAR_WIDTH - filled - 1)
            self.out.write(f"\repoch {epoch}/{self.epochs}  [{bar}] {done}/{self.batches} batches")
            self.out.flush()
            self._plain_bar = True
        elif done < self.batches and time.monotonic() - self._last_line >= LINE_SECONDS:
            self._last_line = time.monotonic()
            print(f"epoch {epoch}/{self.epochs}: batch {done}/{self.batches}", file=self.out, flush=True)

    def run_in_spans(self, epoch, batches, run_span, first=0, every=None):
        """One epoch of `batches` batches, from batch `first` on (a resumed epoch), as calls
        run_span(first, stop), each running the batches [first, stop): the whole epoch in one
        call when batches are not shown, else consecutive spans of about SPAN_SECONDS, each timed
        and reported; with `every`, no span crosses a multiple of every batches (a checkpoint's
        boundary). A call that returns False ends the epoch there (a non-finite step, a Ctrl-C)."""
        self._epoch_started = time.perf_counter()
        while first < batches:
            stop = min(batches, first + self.batches_per_span()) if self.enabled else batches
            if every is not None:
                stop = min(stop, (first // every + 1) * every)
            started = time.perf_counter()
            go_on = run_span(first, stop)
            self.batches_done(epoch, stop * self.batch_size, time.perf_counter() - started, stop - first)
            if not go_on:
                return
            first = stop

    def _clear_bar(self):
        """Take the epoch's bar off the terminal's current line."""
        if self._batch_bar is not None:
            self._batch_bar.close()
            self._batch_bar = None
        if self._plain_bar:
            self.out.write("\r\033[K")  # to the line's start, erased to its end
            self._plain_bar = False

    def end_epoch(self, epoch, logs):
        """The epoch `epoch` (numbered from 1) is complete with these logs: its line."""
        if not self.enabled:
            return
        self._clear_bar()
        print(epoch_line(epoch, self.epochs, time.perf_counter() - self._epoch_started, logs),
              file=self.out, flush=True)

    def say(self, text):
        """A message between epochs (why training stopped, say)."""
        if not self.enabled:
            return
        self._clear_bar()
        print(text, file=self.out, flush=True)

    def close(self):
        """The fit is over (finished, stopped or interrupted): no bar is left on the line."""
        if self.enabled:
            self._clear_bar()
            self.out.flush()
