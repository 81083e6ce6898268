"""--plot: one PNG with two panels, drawn with matplotlib when it is installed.

Left: bpfast's speed-up over the numpy reference (bpfast.reference) per
case, reference median / bpfast median, as horizontal bars on a log scale,
for the suites that have a reference competitor (steps, the element-wise
kernels, fit). Right: GFLOP/s against n for the square GEMM A@B, bpfast
against numpy's `@`. Cases where a competitor came out WRONG or ERROR have no
bar or point. A disturbed case (the row's "disturbed" flag: other processes
crowded it, or a competitor's repeats spread beyond SPREAD_LIMIT, even after
the retries) gets a hatched bar, or a black ring around its GEMM points, and
the legends say so.
"""

from benchmarks.harness import optional

BAR_TABLES = (("steps", "training step"), ("elementwise", "element-wise kernel"), ("fit", "fit epoch"))
PREFIX = {"steps": "step ", "elementwise": "", "fit": "fit "}
COLOURS = {"steps": "tab:blue", "elementwise": "tab:orange", "fit": "tab:green"}
LINES = (("bpfast", "tab:red", "o"), ("numpy", "tab:gray", "s"))
HATCH = "////"
DISTURBED_LABEL = "disturbed (timing not clean after retries)"


def _bars(done):
    """[(table, case, speed-up, disturbed)] in run order."""
    bars = []
    for table, _ in BAR_TABLES:
        for suite, rows, _ in done:
            if suite.TABLE != table:
                continue
            for row in rows:
                if row["competitor"] == "reference" and row["status"] == "ok" and row.get("ratio"):
                    bars.append((table, PREFIX[table] + row["case"], row["ratio"], bool(row.get("disturbed"))))
    return bars


def _gemm_lines(done):
    """competitor -> [(n, GFLOP/s, disturbed)] for the square products."""
    lines = {}
    for suite, rows, _ in done:
        if suite.TABLE != "gemm":
            continue
        for row in rows:
            if row["params"].get("op") == "square" and row.get("gflops"):
                lines.setdefault(row["competitor"], []).append(
                    (row["params"]["m"], row["gflops"], bool(row.get("disturbed"))))
    return {name: sorted(points) for name, points in lines.items()}


def _empty(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def write(path, done, dtype, machine=None):
    """Draw the PNG; returns the line to print (also when matplotlib is missing)."""
    matplotlib = optional.load("matplotlib")
    if matplotlib is None:
        return optional.missing_note("matplotlib", f"no plot written to {path}")
    import matplotlib.pyplot as plt
    fig, marked = draw(done, dtype, machine)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"plot written to {path}" + (f" ({len(marked)} disturbed case{'s' if len(marked) != 1 else ''} "
                                        "marked)" if marked else "")


def draw(done, dtype, machine=None):
    """(the matplotlib figure, the labels of the disturbed cases it marks); needs matplotlib."""
    matplotlib = optional.load("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bars, lines = _bars(done), _gemm_lines(done)
    marked = []
    height = max(4.5, 0.3 * len(bars) + 2.2)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [1.35, 1]})

    if bars:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
        y = list(range(len(bars)))[::-1]
        ratios = [ratio for _, _, ratio, _ in bars]
        # Bars grow from 1 (no speed-up) to the ratio: rightwards where bpfast is faster, leftwards where slower.
        drawn = left.barh(y, [r - 1.0 for r in ratios], left=1.0,
                          color=[COLOURS[table] for table, _, _, _ in bars], height=0.7)
        for patch, (_, case, _, disturbed) in zip(drawn, bars):
            if disturbed:
                patch.set_hatch(HATCH)
                patch.set_edgecolor("black")
                marked.append(case)
        left.set_yticks(y)
        left.set_yticklabels([case for _, case, _, _ in bars], fontsize=8)
        left.set_ylim(-0.7, len(bars) - 0.3)
        left.set_xscale("log")
        left.axvline(1.0, color="black", linewidth=0.8)
        low, high = min(ratios + [1.0]), max(ratios + [1.0])
        left.set_xlim(low / 1.8, high * 1.8)
        left.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        left.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
        left.xaxis.set_minor_formatter(NullFormatter())
        for yi, ratio in zip(y, ratios):
            left.text(ratio * 1.04 if ratio >= 1 else ratio / 1.04, yi, f"{ratio:.2f}x", va="center",
                      ha="left" if ratio >= 1 else "right", fontsize=7)
        present = [table for table, _ in BAR_TABLES if any(t == table for t, _, _, _ in bars)]
        handles = [Patch(color=COLOURS[t], label=dict(BAR_TABLES)[t]) for t in present]
        if any(disturbed for _, _, _, disturbed in bars):
            handles.append(Patch(facecolor="white", edgecolor="black", hatch=HATCH, label=DISTURBED_LABEL))
        left.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.6 / height),
                    ncol=len(handles), fontsize=8, frameon=False)
        left.set_xlabel("speed-up = reference median / bpfast median (log scale; right of 1x: bpfast is faster)",
                        fontsize=9)
        left.grid(axis="x", which="major", alpha=0.3)
    else:
        _empty(left, "no case with a numpy-reference competitor in this run")
    left.set_title(f"bpfast speed-up over the numpy reference (bpfast.reference), {dtype}", fontsize=10)

    if lines:
        for name, colour, marker in LINES:
            points = lines.get(name)
            if points:
                right.plot([n for n, _, _ in points], [g for _, g, _ in points], marker=marker, color=colour,
                           label=name if name == "bpfast" else "numpy @")
        for name, points in lines.items():  # the others (PyTorch, a numpy child), drawn plainly
            if name not in dict((n, c) for n, c, _ in LINES):
                right.plot([n for n, _, _ in points], [g for _, g, _ in points], marker="^", label=name)
        rings = [(n, g) for points in lines.values() for n, g, disturbed in points if disturbed]
        if rings:
            right.scatter([n for n, _ in rings], [g for _, g in rings], s=160, facecolors="none",
                          edgecolors="black", linewidths=1.2, zorder=5)
            marked += sorted({f"A@B n={n}" for n, _ in rings})
        sizes = sorted({n for points in lines.values() for n, _, _ in points})
        right.set_xscale("log", base=2)
        right.set_xticks(sizes)
        right.set_xticklabels([str(n) for n in sizes])
        right.set_ylim(bottom=0)
        right.set_xlabel("n (A@B with n×n matrices)")
        right.set_ylabel("GFLOP/s (2·n³ / median time)")
        handles, labels = right.get_legend_handles_labels()
        if rings:
            handles.append(Line2D([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                                  markeredgecolor="black", label=DISTURBED_LABEL))
        right.legend(handles=handles, fontsize=9)
        right.grid(alpha=0.3)
    else:
        _empty(right, "no square GEMM case in this run")
    threads = ""
    if machine:
        threads = (f"; threads: bpfast {machine.get('bpfast_threads', '?')}, "
                   f"numpy {machine.get('numpy_blas_threads', '?')}")
    right.set_title(f"Square GEMM A@B, {dtype}{threads}", fontsize=10)

    fig.tight_layout()
    return fig, marked
