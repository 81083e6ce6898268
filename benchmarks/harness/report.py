"""Formatting: the fixed-width tables printed to stdout and the markdown tables.

A result row is a dict made by runner.py: suite, case, competitor, status
("baseline" for bpfast, "ok", "WRONG", "ERROR"), median/min/max seconds per
call, ratio (competitor median / bpfast median) and gflops.
"""

import math

from benchmarks.harness.competitor import BASELINE


def _unit(seconds, micro):
    if seconds < 1e-3:
        return 1e6, micro
    if seconds < 1:
        return 1e3, "ms"
    return 1.0, "s"


def _num(value):
    """Three significant digits, never in exponent form."""
    return f"{value:.0f}" if value >= 999.5 else f"{value:.3g}"


def fmt_time(seconds, micro="us"):
    if seconds is None:
        return "-"
    scale, unit = _unit(seconds, micro)
    return f"{_num(seconds * scale)} {unit}"


def fmt_spread(row, micro="us"):
    """'median (min-max)' in the median's unit."""
    if row.get("median") is None:
        return "-"
    scale, unit = _unit(row["median"], micro)
    return f"{_num(row['median'] * scale)} {unit} ({_num(row['min'] * scale)}-{_num(row['max'] * scale)})"


def fmt_gflops(value):
    return "-" if value is None else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def fmt_ratio(row):
    if row["status"] in ("WRONG", "ERROR"):
        return row["status"]
    return "-" if row.get("ratio") is None else f"{row['ratio']:.2f}"


def competitors_of(rows):
    names = []
    for row in rows:
        if row["competitor"] not in names:
            names.append(row["competitor"])
    return names


def geometric_means(rows):
    """competitor -> (geometric mean of its ratios over the cases it got right, case count)."""
    means = {}
    for name in competitors_of(rows):
        if name == BASELINE:
            continue
        ratios = [r["ratio"] for r in rows if r["competitor"] == name and r["status"] == "ok" and r.get("ratio")]
        if ratios:
            means[name] = (math.exp(sum(math.log(x) for x in ratios) / len(ratios)), len(ratios))
    return means


# Competitors that are bpfast itself (another path into the same kernels) or the injected wrong one: never
# "the best competitor".
BPFAST_SIDE = {"bpfast", "bpfast + input checks", "train_step", "wrong", "bpfast float32"}
SUMMARY_TABLES = ("steps", "gemm", "fit", "sklearn")


def best_competitors(rows):
    """[(case, bpfast row, best row)] in case order: for each case the fastest competitor (smallest median)
    that got the answer right and is not bpfast itself; best row is None when there is none."""
    out = []
    for case, by_name in _by_case(rows).items():
        base = by_name.get(BASELINE)
        others = [row for name, row in by_name.items() if name not in BPFAST_SIDE
                  and row["status"] == "ok" and row.get("median") is not None and row.get("ratio") is not None]
        out.append((case, base, min(others, key=lambda row: row["median"]) if others else None))
    return out


def _summary_body(rows, micro="us"):
    body, ratios = [], []
    for case, base, best in best_competitors(rows):
        if base is None or base.get("median") is None:
            body.append([case, "-", "-", "-", "-"])
            continue
        if best is None:
            body.append([case, fmt_time(base["median"], micro), "none", "-", "-"])
            continue
        ratios.append(best["ratio"])
        body.append([case, fmt_time(base["median"], micro), best["competitor"], fmt_time(best["median"], micro),
                     f"{best['ratio']:.2f}"])
    mean = math.exp(sum(math.log(x) for x in ratios) / len(ratios)) if ratios else None
    return body, mean, len(ratios)


SUMMARY_HEADERS = ["case", "bpfast", "best competitor", "its median", "best / bpfast"]
SUMMARY_LEGEND = ("best competitor = the fastest of the case's other competitors that passed the check (numpy, "
                  "numpy on its best BLAS kernel, PyTorch, numpy plain, the reference, scikit-learn); best / "
                  "bpfast above 1 means bpfast is faster than all of them.")


def _cases(count):
    return f"{count} case{'s' if count != 1 else ''}"


def _summary_parts(done, dtype, micro="us"):
    """[(title, body, geometric mean, count)] for the tables the summary covers."""
    parts = []
    for table in SUMMARY_TABLES:
        for suite, rows, _ in done:
            if suite.TABLE == table and rows:
                body, mean, count = _summary_body(rows, micro)
                parts.append((f"{suite.TITLE}, {dtype}", body, mean, count))
    return parts


def text_summary(done, dtype):
    """Per case, bpfast against the fastest competitor, for the steps, GEMM, fit and scikit-learn tables."""
    out = ["== Summary: bpfast against the best competitor of each case =="]
    for title, body, mean, count in _summary_parts(done, dtype):
        out += ["", title] + _text_grid(SUMMARY_HEADERS, ["<", ">", "<", ">", ">"], body)
        if mean is not None:
            out.append(f"geometric mean of best / bpfast: {mean:.2f} over {_cases(count)}")
    out.append(SUMMARY_LEGEND)
    return "\n".join(out)


def markdown_summary(done, dtype):
    out = ["## Summary: bpfast against the best competitor of each case", "", SUMMARY_LEGEND, ""]
    for title, body, mean, count in _summary_parts(done, dtype, "µs"):
        out += [f"**{title}**", "", _md_row(SUMMARY_HEADERS), _md_row(["---", "---:", "---", "---:", "---:"])]
        out += [_md_row(cells) for cells in body] + [""]
        if mean is not None:
            out += [f"Geometric mean of best / bpfast: {mean:.2f} over {_cases(count)}.", ""]
    return out


DISTURBED_NOTE = ("* disturbed: while this case was timed, other processes kept more than a quarter of a core "
                  "busy, or a competitor's slowest repeat took more than 3 times its fastest, and re-timing "
                  "did not give a clean timing; read its figures with care.")


def _retry_lines(rows):
    """One line per case that was timed more than once: why, and which attempt the table shows."""
    out, seen = [], set()
    for row in rows:
        if row.get("attempts", 0) > 1 and row["case"] not in seen:
            seen.add(row["case"])
            out.append(f"retried: {row['case']}, timed {row['attempts']} times ({'; '.join(row['retried'])}); "
                       f"the table shows attempt {row['kept_attempt']}"
                       + (", still disturbed" if row.get("disturbed") else ""))
    for row in rows:
        if row.get("not_retried") and row["case"] not in seen:
            seen.add(row["case"])
            out.append(f"not retried: {row['case']} ({'; '.join(row['disturbed_by'])}): {row['not_retried']}")
    return out


def _by_case(rows):
    """case label (with " *" when disturbed) -> competitor -> row."""
    cases = {}
    for row in rows:
        label = row["case"] + (" *" if row.get("disturbed") else "")
        cases.setdefault(label, {})[row["competitor"]] = row
    return cases


def _any_disturbed(rows):
    return any(row.get("disturbed") for row in rows)


def _mean_lines(rows):
    """One line per competitor with ratios on two cases or more (with one, the table says it all)."""
    return [f"geometric mean of the ratios, {name} / bpfast: {mean:.2f} over {count} cases"
            for name, (mean, count) in geometric_means(rows).items() if count > 1]


def fmt_speedup(value):
    return "-" if value is None else f"{value:.2f}x"


def fmt_percent(value):
    return "-" if value is None else f"{value * 100:.0f}%"


def fmt_bytes(value):
    if value is None:
        return "-"
    return f"{value / 2**20:.1f} MiB" if value >= 2**20 / 10 else f"{value / 1024:.0f} KiB"


def fmt_score(value):
    return "-" if value is None else f"{value:.4f}"


EXTRA_FORMATS = {"speedup": fmt_speedup, "efficiency": fmt_percent, "sum_share": fmt_percent, "score": fmt_score}
RATIO_LEGEND = ("ratio = competitor median / bpfast median (>1: bpfast is faster); "
                "times are per call: median, min and max of the timed repeats.")
PEAK_LEGEND = ("% peak = GFLOP/s / the FMA probe's GF/s for the ISA the competitor runs, the dtype and the "
               "thread count (machine table: fma_peak_*).")
MEMORY_LEGEND = ("growth = peak - baseline resident memory; per byte = growth / (parameter + data bytes); "
                 "ratio = competitor growth / bpfast growth (>1: bpfast needs less).")


def _extras(suite):
    return list(getattr(suite, "EXTRA_COLUMNS", []))


def _has_flops(rows):
    return any(r.get("flops") for r in rows)


def _has_peak(rows):
    return any(r.get("peak") is not None for r in rows)


def _problem_lines(rows):
    return [f"{r['status']}: {r['competitor']} on {r['case']}: {r['check']}"
            for r in rows if r["status"] in ("WRONG", "ERROR")]


def _settle_lines(rows):
    """One line per competitor and case whose repeats did not all start with the other threads idle."""
    return [f"busy threads: {r['settle_timeouts']} of {r['competitor']}'s repeats on {r['case']} began while "
            "other threads of the run were still busy (the wait for them gave up)"
            for r in rows if r.get("settle_timeouts")]


def _method_lines(rows):
    """The line that says how the table's times were taken (the rows' method: alone, interleaved, or the
    suite's own processes)."""
    from benchmarks.harness import alone
    methods = list(dict.fromkeys(row.get("method") for row in rows if row.get("method")))
    return [f"timed {method}: {alone.DESCRIPTIONS[method]}" if method in alone.DESCRIPTIONS
            else f"measured in {method}" for method in methods]


def _status_cell(row):
    return "-" if row["status"] == "baseline" else row["status"]


def _memory_cells(row):
    return [fmt_bytes(row.get("baseline_rss")), fmt_bytes(row.get("peak_rss")), fmt_bytes(row.get("delta")),
            fmt_bytes(None if row.get("param_bytes") is None else row["param_bytes"] + row["data_bytes"]),
            "-" if row.get("delta_per_byte") is None else f"{row['delta_per_byte']:.2f}",
            fmt_ratio(row), fmt_time(row.get("fit_s"))]


MEMORY_HEADERS = ["baseline", "peak", "growth", "params+data", "per byte", "ratio", "fit time"]


# ------------------------------------------------------------------ text

def _text_grid(headers, align, body):
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *body)]

    def line(cells):
        return "  ".join(f"{str(c):{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(cells) for cells in body]


def _long_table(rows, extras, time_headers, time_cells):
    """(headers, body) of a table with a row per case and competitor; time_cells(row) gives its time columns."""
    flops, peak = _has_flops(rows), _has_peak(rows)
    headers = ["case", "competitor", "check"] + time_headers + (["GFLOP/s"] if flops else []) \
        + (["% peak"] if peak else []) + [title for title, _ in extras] + ["ratio"]
    body = []
    for case, by_name in _by_case(rows).items():
        for i, (name, row) in enumerate(by_name.items()):
            cells = [case if i == 0 else "", name, _status_cell(row)] + time_cells(row)
            if flops:
                cells.append(fmt_gflops(row.get("gflops")))
            if peak:
                cells.append(fmt_percent(row.get("peak")))
            cells += [EXTRA_FORMATS[key](row.get(key)) for _, key in extras] + [fmt_ratio(row)]
            body.append(cells)
    return headers, body


def text_table(suite, dtype, rows, notes=()):
    """The fixed-width table of one suite, with its means, problems and notes."""
    memory = suite.TABLE == "memory"
    body = []
    if memory:
        headers = ["case", "competitor", "check"] + MEMORY_HEADERS
        for case, by_name in _by_case(rows).items():
            for i, (name, row) in enumerate(by_name.items()):
                body.append([case if i == 0 else "", name, _status_cell(row)] + _memory_cells(row))
    else:
        headers, body = _long_table(rows, _extras(suite), ["median", "min", "max"], lambda row: [
            fmt_time(row.get("median")), fmt_time(row.get("min")), fmt_time(row.get("max"))])
    align = ["<", "<", "<"] + [">"] * (len(headers) - 3)
    out = [f"== {suite.TITLE}, {dtype} ==", suite.NOTE, ""] + _text_grid(headers, align, body) + [""]
    out += _mean_lines(rows) + _problem_lines(rows) + _retry_lines(rows) + _settle_lines(rows) + list(notes)
    out += _method_lines(rows)
    if _any_disturbed(rows):
        out.append(DISTURBED_NOTE)
    if _has_peak(rows):
        out.append(PEAK_LEGEND)
    out.append(MEMORY_LEGEND if memory else RATIO_LEGEND)
    return "\n".join(out)


def text_machine(machine):
    width = max(len(k) for k in machine)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in machine.items())


# ------------------------------------------------------------------ markdown

def _md_row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _md_grid(headers, body):
    return "\n".join([_md_row(headers), _md_row(["---"] * 3 + ["---:"] * (len(headers) - 3))]
                     + [_md_row(cells) for cells in body])


def markdown_table(suite, rows):
    """Wide (one row per case, a column group per competitor) or, for suites with
    MARKDOWN_LAYOUT = "long" and for memory, one row per case and competitor."""
    if suite.TABLE == "memory":
        body = [[case if i == 0 else "", name, _status_cell(row)] + _memory_cells(row)
                for case, by_name in _by_case(rows).items() for i, (name, row) in enumerate(by_name.items())]
        return _md_grid(["case", "competitor", "check"] + MEMORY_HEADERS, body)
    flops = _has_flops(rows)
    if getattr(suite, "MARKDOWN_LAYOUT", "wide") == "long":
        return _md_grid(*_long_table(rows, _extras(suite), ["median (min-max)"], lambda row: [fmt_spread(row, "µs")]))
    names = competitors_of(rows)
    others = [n for n in names if n != BASELINE]
    peak = _has_peak(rows)

    def rates(row):  # GFLOP/s and % peak, where the table has them
        return ([fmt_gflops(row.get("gflops"))] if flops else []) + ([fmt_percent(row.get("peak"))] if peak else [])

    headers = ["case", "bpfast median (min-max)"] + (["bpfast GFLOP/s"] if flops else []) \
        + (["bpfast % peak"] if peak else [])
    for name in others:
        headers += [f"{name} median (min-max)"] + ([f"{name} GFLOP/s"] if flops else []) \
            + ([f"{name} % peak"] if peak else []) + [f"ratio {name}/bpfast"]
    body = []
    for case, by_name in _by_case(rows).items():
        base = by_name.get(BASELINE, {})
        cells = [case, fmt_spread(base, "µs") if base else "-"] + rates(base)
        for name in others:
            row = by_name.get(name)
            width = 2 + flops + peak
            if row is None:
                cells += ["-"] * width
            else:
                cells += [fmt_spread(row, "µs")] + rates(row) + [fmt_ratio(row)]
        body.append(cells)
    out = [_md_row(headers), _md_row(["---"] + ["---:"] * (len(headers) - 1))]
    return "\n".join(out + [_md_row(cells) for cells in body])


def markdown_machine(machine):
    out = [_md_row(["", ""]), _md_row(["---", "---"])]
    out += [_md_row([k, v]) for k, v in machine.items()]
    return "\n".join(out)


GENERAL_EXPLANATION = [
    "**Times** are per call. Each competitor runs a number of calls in a row, chosen so that one such repeat "
    "takes about 30 ms (one call, when a call takes longer), after one warm-up repeat. By default (`--method "
    "alone`) each competitor is timed alone, in a process of its own (one per competitor and suite, and only "
    "PyTorch's imports PyTorch), the processes taking turns: what a competitor is measured doing is what it "
    "does on its own, with no other library's caches, allocations or thread pools in its process. With "
    "`--method interleaved` every competitor is timed in the runner's process and their repeats take turns, "
    "A B A B ..., so that a noisy moment hits all of them; on a 2-core Intel Xeon that made PyTorch look up to "
    "2x slower than it runs alone. Either way, before each repeat the timing process waits (up to 0.5 s) "
    "until its own threads, and those of the run's other processes, are idle, so that no competitor inherits "
    "another's spinning BLAS or OpenMP threads. The machine table's `timing_method` names the method used, "
    "and every row of the JSON output has it (`method`). The tables show the median repeat, with the fastest "
    "and slowest in brackets.",
    "**ratio = competitor median / bpfast median.** Above 1 means bpfast is faster; below 1 means the "
    "competitor is faster. 0.50 means the competitor needs half of bpfast's time. In the memory table the "
    "ratio compares memory growth instead of time. The geometric mean of a table's ratios is given under it.",
    "**GFLOP/s** is given where a FLOP count is defined: 2·m·n·k for a matrix product; for a training step "
    "2·batch·n_in·n_out per layer for the forward product and as much for the weight gradient, and as much "
    "again for the input gradient of every layer but the first (no one needs the gradient of the input), "
    "that is 6·batch·Σ n_in·n_out − 2·batch·n_0·n_1 (earlier runs counted the first layer's input gradient "
    "too, and so overstated a step's GFLOP/s); that per sample for an epoch. Element-wise kernels have none.",
    "**Correctness first.** Before timing, each competitor's result is compared with bpfast's (what is "
    "compared is said per suite below). A competitor that disagrees is marked WRONG and gets no ratio and no "
    "GFLOP/s, so a fast wrong answer can't look good; one that fails is marked ERROR.",
    "**Disturbed cases.** The script measures how much CPU other processes use while each case is timed, and "
    "the spread of each competitor's repeats (slowest / fastest). A case whose spread exceeds 3 is timed "
    "again (up to the retry count), after waiting for quiet when the waiting budget allows; one that other "
    "processes crowded (more than a quarter of a core) is timed again while that budget lasts. The tables "
    "show the cleanest attempt, a line under the table says which cases were retried and why, and a case "
    "still disturbed is marked with `*` (hatched in the plot).",
    "**Optional competitors.** PyTorch (CPU, with as many threads as the run uses), scikit-learn and "
    "threadpoolctl join in when they can be imported; without them their columns are left out and a note "
    "under the table says so. The machine table gives their versions.",
]


def markdown_document(command, machine, dtype, done, elapsed):
    """The report for BENCHMARKS.md. done: list of (suite module, rows, notes)."""
    out = [f"**{machine['interrupted']}.**", ""] if machine.get("interrupted") else []
    out += markdown_summary(done, dtype) + ["## What the figures mean", ""]
    out += [f"- {text}" for text in GENERAL_EXPLANATION]
    seen = set()
    for suite, _, _ in done:
        if suite.TABLE not in seen:
            seen.add(suite.TABLE)
            out.append(f"- **{suite.TITLE}.** {suite.EXPLANATION}")
    out += ["", "## The run", "",
            "In the machine table, `cpu_busy_before_start` is the share of all cores that was busy just before "
            "the run began; `foreign_cores_max` is the most CPU, in cores, that other processes used while any "
            "one case was being timed.", "",
            f"Command: `{command}` (took {elapsed:.0f} s)", "", "Machine:", "", markdown_machine(machine), ""]
    for suite, rows, notes in done:
        out += [f"### {suite.TITLE}, {dtype}", "", suite.NOTE, "", markdown_table(suite, rows), ""]
        means = _mean_lines(rows)
        if means:
            out += ["; ".join(means) + ".", ""]
        for line in (_problem_lines(rows) + _retry_lines(rows) + _settle_lines(rows) + list(notes)
                     + _method_lines(rows)):
            out += [line, ""]
        if _any_disturbed(rows):
            out += [DISTURBED_NOTE, ""]
    return "\n".join(out)
