"""Formatting: the fixed-width tables printed to stdout and the markdown tables.

A result row is a dict made by run.py: suite, case, competitor, status
("baseline" for bpfast, "ok", "WRONG", "ERROR"), median/min/max seconds per
call, ratio (competitor median / bpfast median) and gflops.
"""

import math

BASELINE = "bpfast"


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


DISTURBED_NOTE = ("* other processes kept more than a quarter of a core busy while this case was timed, "
                  "even after waiting and re-timing; read its figures with care.")


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
    return [f"geometric mean of the ratios, {name} / bpfast: {mean:.2f} over {count} cases"
            for name, (mean, count) in geometric_means(rows).items()]


# ------------------------------------------------------------------ text

def text_table(title, note, rows):
    headers = ["case", "competitor", "check", "median", "min", "max", "GFLOP/s", "ratio"]
    body = []
    for case, by_name in _by_case(rows).items():
        for i, (name, row) in enumerate(by_name.items()):
            body.append([case if i == 0 else "", name, "-" if row["status"] == "baseline" else row["status"],
                         fmt_time(row.get("median")), fmt_time(row.get("min")), fmt_time(row.get("max")),
                         fmt_gflops(row.get("gflops")), fmt_ratio(row)])
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *body)]
    align = ["<", "<", "<", ">", ">", ">", ">", ">"]

    def line(cells):
        return "  ".join(f"{str(c):{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [title, note, "", line(headers), line(["-" * w for w in widths])]
    out += [line(cells) for cells in body]
    problems = [r for r in rows if r["status"] in ("WRONG", "ERROR")]
    out.append("")
    out += _mean_lines(rows)
    for r in problems:
        out.append(f"{r['status']}: {r['competitor']} on {r['case']}: {r['check']}")
    if _any_disturbed(rows):
        out.append(DISTURBED_NOTE)
    out.append("ratio = competitor median / bpfast median (>1: bpfast is faster); "
               "times are per call: median, min and max of the interleaved repeats.")
    return "\n".join(out)


def text_machine(machine):
    width = max(len(k) for k in machine)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in machine.items())


# ------------------------------------------------------------------ markdown

def _md_row(cells):
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown_table(rows):
    names = competitors_of(rows)
    others = [n for n in names if n != BASELINE]
    headers = ["case", "bpfast median (min-max)", "bpfast GFLOP/s"]
    for name in others:
        headers += [f"{name} median (min-max)", f"{name} GFLOP/s", f"ratio {name}/bpfast"]
    out = [_md_row(headers), _md_row(["---"] + ["---:"] * (len(headers) - 1))]
    for case, by_name in _by_case(rows).items():
        base = by_name.get(BASELINE, {})
        cells = [case, fmt_spread(base, "µs") if base else "-", fmt_gflops(base.get("gflops"))]
        for name in others:
            row = by_name.get(name)
            if row is None:
                cells += ["-", "-", "-"]
            else:
                cells += [fmt_spread(row, "µs"), fmt_gflops(row.get("gflops")), fmt_ratio(row)]
        out.append(_md_row(cells))
    return "\n".join(out)


def markdown_machine(machine):
    out = [_md_row(["", ""]), _md_row(["---", "---"])]
    out += [_md_row([k, v]) for k, v in machine.items()]
    return "\n".join(out)


def markdown_document(command, machine, suites, elapsed):
    """suites: list of (title, note, dtype, rows)."""
    out = [f"Command: `{command}` (took {elapsed:.0f} s)", "", "Machine:", "", markdown_machine(machine), ""]
    for title, note, dtype, rows in suites:
        out += [f"### {title}, {dtype}", "", note, "", markdown_table(rows), ""]
        means = _mean_lines(rows)
        if means:
            out += ["; ".join(means) + ".", ""]
        for r in rows:
            if r["status"] in ("WRONG", "ERROR"):
                out += [f"{r['status']}: {r['competitor']} on {r['case']}: {r['check']}", ""]
        if _any_disturbed(rows):
            out += [DISTURBED_NOTE, ""]
    return "\n".join(out)
