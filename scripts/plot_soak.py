#!/usr/bin/env python3
"""Draws the soak's samples (crossmatch-faults soak --soak-csv FILE) as an SVG: each member's
resident memory and data directory over time, one panel each, restarts as thin vertical lines
in the member's colour and the members' midnights (a run on sped-up clocks) as dotted grey ones.

    scripts/plot_soak.py soak.csv docs/soak.svg [--title TEXT] [--days]

With --days it also prints, as a Markdown table, each member's largest resident set and its data
directory at the last sample of each day of the members' clocks (the stretch between two
midnights), so that a level, or its absence, reads off the CSV.

Standard library only: the CSV's columns are seconds,member,event,rss_kib,disk_kib, an event
being sample, restart, restart-killed or midnight (no member).
"""

import argparse
import csv
import math
from xml.sax.saxutils import escape

WIDTH, PANEL_HEIGHT, MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, GAP = 860, 260, 70, 120, 40, 60
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def read(path):
    samples, marks = {}, []
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            seconds = float(row["seconds"])
            if row["event"] == "midnight":
                marks.append((seconds / 60, None, "midnight"))
                continue
            member = int(row["member"])
            if row["event"] == "sample":
                rss, disk = int(row["rss_kib"]) / 1024, int(row["disk_kib"]) / 1024
                samples.setdefault(member, []).append((seconds / 60, rss, disk))
            else:
                marks.append((seconds / 60, member, row["event"]))
    return samples, marks


def nice_top(value):
    """The smallest 1, 2 or 5 times a power of ten at or above value."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def panel(out, top, title, unit, samples, marks, column, minutes):
    height = PANEL_HEIGHT
    plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    highest = nice_top(max((point[column] for points in samples.values() for point in points),
                           default=1))

    def x(minute):
        return MARGIN_LEFT + plot_width * minute / minutes

    def y(value):
        return top + height - height * value / highest

    out.append(f'<text x="{MARGIN_LEFT}" y="{top - 10}" font-weight="bold">{escape(title)}</text>')
    for tick in range(6):
        value = highest * tick / 5
        out.append(f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT + plot_width}" y1="{y(value):.1f}" '
                   f'y2="{y(value):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{MARGIN_LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
                   f'{value:g} {unit}</text>')
    step = max(1, round(minutes / 12))
    for minute in range(0, int(minutes) + 1, step):
        out.append(f'<text x="{x(minute):.1f}" y="{top + height + 16}" text-anchor="middle">'
                   f'{minute}</text>')
    out.append(f'<text x="{MARGIN_LEFT + plot_width / 2}" y="{top + height + 32}" '
               f'text-anchor="middle">minutes</text>')
    for minute, member, event in marks:
        dash = {"restart": "", "midnight": ' stroke-dasharray="1 3"'}.get(
            event, ' stroke-dasharray="4 3"')
        colour = "#555" if member is None else COLOURS[member % len(COLOURS)]
        out.append(f'<line x1="{x(minute):.1f}" x2="{x(minute):.1f}" y1="{top}" '
                   f'y2="{top + height}" stroke="{colour}" stroke-opacity="0.35"{dash}/>')
    for member, points in sorted(samples.items()):
        colour = COLOURS[member % len(COLOURS)]
        line = " ".join(f"{x(p[0]):.1f},{y(p[column]):.1f}" for p in points)
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>')
        label_y = top + 16 + 18 * member
        out.append(f'<text x="{WIDTH - MARGIN_RIGHT + 12}" y="{label_y}" fill="{colour}">'
                   f'M{member}</text>')
    out.append(f'<rect x="{MARGIN_LEFT}" y="{top}" width="{plot_width}" height="{height}" '
               'fill="none" stroke="#444"/>')


def days_table(samples, marks):
    """Markdown: per day of the members' clocks (minutes from, to), each member's largest resident
    set and its data directory at the day's last sample (MiB); the first and last days are
    partial."""
    midnights = sorted(minute for minute, _, event in marks if event == "midnight")
    bounds = [0.0] + midnights + [math.inf]
    members = sorted(samples)
    lines = ["| day (minutes) | " + " | ".join(f"M{m}" for m in members) + " |",
             "| --- |" + " --- |" * len(members)]
    for day, (start, end) in enumerate(zip(bounds, bounds[1:])):
        cells = []
        for member in members:
            inside = [p for p in samples[member] if start <= p[0] < end]
            restarted = any(m == member and start <= t < end for t, m, _ in marks)
            cells.append(("—" if not inside else
                          f"{max(p[1] for p in inside):.0f}, {inside[-1][2]:.1f}")
                         + (" (restarted)" if restarted else ""))
        if end == math.inf:
            if all(cell == "—" for cell in cells):
                break  # the run ended (or was stopped) before a sample of the last day
            end = max(p[0] for ps in samples.values() for p in ps)
        lines.append(f"| {day} ({start:.1f}–{end:.1f}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("svg")
    parser.add_argument("--title", default="crossmatch soak")
    parser.add_argument("--days", action="store_true",
                        help="print each day's largest resident set and data directory (MiB)")
    args = parser.parse_args()
    samples, marks = read(args.csv)
    if not samples:
        raise SystemExit(f"{args.csv}: no samples")
    minutes = max(point[0] for points in samples.values() for point in points) or 1
    height = MARGIN_TOP + 2 * PANEL_HEIGHT + 2 * GAP + 20
    midnights = "; dotted grey: midnights" if any(e == "midnight" for _, _, e in marks) else ""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14">'
           f'{escape(args.title)} (vertical lines: restarts; dashed: killed after the stop '
           f'limit{midnights})</text>']
    panel(out, MARGIN_TOP, "Resident memory per member", "MiB", samples, marks, 1, minutes)
    panel(out, MARGIN_TOP + PANEL_HEIGHT + GAP, "Data directory per member", "MiB", samples,
          marks, 2, minutes)
    out.append("</svg>")
    with open(args.svg, "w") as file:
        file.write("\n".join(out) + "\n")
    if args.days:
        print("largest resident set in the day, data directory at its last sample (MiB)")
        print(days_table(samples, marks))


if __name__ == "__main__":
    main()
