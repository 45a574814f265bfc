"""The scale figures as one picture: a load's cost and the maintenance's memory against the
store's size, from the JSON the benchmarks print.

    .venv/bin/python -m benchmarks.scale_plot [--results benchmarks/results]
                                              [--out docs/images/scale.svg]

It reads ``load_cost-N.json`` (``python -m benchmarks.load_cost --articles N --json``) and
``maintenance-N.json`` (``python -m benchmarks.maintenance --articles N --json``) for every
size N there, and draws two panels as a self-contained SVG (no plotting package needed):
left, a 500-article load into a store of N articles against the same load into an empty one
(wall time and peak RSS, as ratios; target ≤ 1.25); right, each maintenance step's peak RSS
(target ≤ 1.5 GB). Prints the table it drew.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path
from xml.sax.saxutils import escape

from benchmarks.common import ROOT

W, H, PAD = 420, 300, 52
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def read(results: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    loads, maint = {}, {}
    for path in sorted(results.glob("*.json")):
        m = re.fullmatch(r"(load_cost|maintenance)-(\d+)\.json", path.name)
        if m:
            (loads if m[1] == "load_cost" else maint)[int(m[2])] = json.loads(path.read_text())
    return loads, maint


def panel(x0: int, title: str, series: dict[str, list[tuple[int, float]]], target: float,
          unit: str) -> str:  # fmt: skip
    """One log-x line chart at horizontal offset ``x0``, a dashed line at ``target``."""
    points = [p for s in series.values() for p in s]
    if not points:
        return ""
    xs = sorted({x for x, _ in points})
    lo, hi = math.log10(xs[0]) - 0.15, math.log10(xs[-1]) + 0.15
    top = max(max(y for _, y in points), target) * 1.5  # (room for the legend above)

    def px(x: float) -> float:
        return x0 + PAD + (math.log10(x) - lo) / (hi - lo) * (W - 2 * PAD)

    def py(y: float) -> float:
        return H - PAD - y / top * (H - 2 * PAD)

    out = [
        f'<text x="{x0 + W / 2}" y="22" text-anchor="middle" font-weight="bold">'
        f"{escape(title)}</text>",
        f'<line x1="{x0 + PAD}" y1="{H - PAD}" x2="{x0 + W - PAD}" y2="{H - PAD}" stroke="#333"/>',
        f'<line x1="{x0 + PAD}" y1="{PAD}" x2="{x0 + PAD}" y2="{H - PAD}" stroke="#333"/>',
        f'<line x1="{x0 + PAD}" y1="{py(target):.1f}" x2="{x0 + W - PAD}" y2="{py(target):.1f}"'
        ' stroke="#888" stroke-dasharray="5,4"/>',
        f'<text x="{x0 + W - PAD}" y="{py(target) - 4:.1f}" text-anchor="end" fill="#666">'
        f"target {target:g}{unit}</text>",
    ]
    for x in xs:
        label = f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}k"
        out.append(f'<text x="{px(x):.1f}" y="{H - PAD + 16}" text-anchor="middle">{label}</text>')
    for i in range(5):
        y = top * i / 4
        out.append(f'<text x="{x0 + PAD - 6}" y="{py(y) + 4:.1f}" text-anchor="end">{y:.3g}</text>')
    out.append(f'<text x="{x0 + W / 2}" y="{H - 12}" text-anchor="middle">articles stored</text>')
    for i, (name, pts) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        pts = sorted(pts)
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        out += [
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>' for x, y in pts
        ]
        out.append(
            f'<text x="{x0 + PAD + 8}" y="{PAD + 14 * i:.1f}" fill="{colour}">{escape(name)}</text>'
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "scale.svg")
    args = parser.parse_args()
    loads, maint = read(args.results)
    if not loads and not maint:
        raise SystemExit(f"no load_cost-N.json or maintenance-N.json in {args.results}")
    load_series = {
        "load wall time, ratio to an empty store": [
            (n, r["ratio"]["seconds"]) for n, r in loads.items()
        ],
        "load peak RSS, ratio to an empty store": [
            (n, r["ratio"]["peak_rss_mb"]) for n, r in loads.items()
        ],
    }
    steps = sorted({s for r in maint.values() for s in r["steps"]})
    maint_series = {
        step: [(n, r["steps"][step]["peak_rss_mb"] / 1024) for n, r in maint.items()
               if step in r["steps"]]
        for step in steps
    }  # fmt: skip
    svg = "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}"'
            ' font-family="sans-serif" font-size="11">',
            f'<rect width="{2 * W}" height="{H}" fill="white"/>',
            panel(0, "a 500-article load into the store", load_series, 1.25, "×"),
            panel(W, "maintenance: each step's peak RSS (GB)", maint_series, 1.5, " GB"),
            "</svg>",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg + "\n", encoding="utf-8")
    print(f"{'articles':>12}  {'load s ratio':>12}  {'load RSS ratio':>14}  maintenance peak MB")
    for n in sorted(set(loads) | set(maint)):
        r = loads.get(n, {}).get("ratio", {})
        m = maint.get(n, {}).get("steps", {})
        steps_text = ", ".join(f"{s} {v['peak_rss_mb']:,}" for s, v in m.items())
        print(
            f"{n:>12,}  {r.get('seconds', float('nan')):>12.2f}"
            f"  {r.get('peak_rss_mb', float('nan')):>14.2f}  {steps_text}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
