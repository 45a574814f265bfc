"""Write pipeline/newsflow/data/world_110m.json, the world map of `newsflow report`, from the
TopoJSON World Atlas's 1:110m countries.

    python scripts/world_map.py PATH/TO/world-110m.json

The input is Natural Earth's 1:110m Admin 0 countries (public domain) as the TopoJSON World
Atlas (ISC licence) publishes it, e.g. ``data/world-110m.json`` of github.com/vega/vega-datasets
(countries keyed by ISO 3166 numeric code). The output holds, per ISO alpha-2 code, the
country's outline as an SVG path in the Equal Earth projection (1000 units wide, one decimal),
the latitude and longitude of the centre of its largest shape (the gazetteer's coordinates of
a country) and that centre on the map (x, y). The report embeds the file, so the map renders
with no network.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pycountry

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "pipeline" / "newsflow" / "data" / "world_110m.json"
WIDTH = 1000.0

# Equal Earth (Šavrič, Patterson, Jenny 2018).
A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
M = math.sqrt(3) / 2


def equal_earth(lon: float, lat: float) -> tuple[float, float]:
    lam, phi = math.radians(lon), math.radians(lat)
    theta = math.asin(M * math.sin(phi))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    x = 2 * math.sqrt(3) * lam * math.cos(theta)
    x /= 3 * (9 * A4 * t6 * t2 + 7 * A3 * t6 + 3 * A2 * t2 + A1)
    y = theta * (A1 + A2 * t2 + t6 * (A3 + A4 * t2))
    return x, y


X_MAX = equal_earth(180, 0)[0]
Y_MAX = equal_earth(0, 90)[1]
SCALE = WIDTH / (2 * X_MAX)
HEIGHT = round(2 * Y_MAX * SCALE, 1)


def to_svg(lon: float, lat: float) -> tuple[float, float]:
    x, y = equal_earth(lon, lat)
    return round((x + X_MAX) * SCALE, 1), round((Y_MAX - y) * SCALE, 1)


def decode_arcs(topo: dict) -> list[list[tuple[float, float]]]:
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        pts = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            pts.append((x * sx + tx, y * sy + ty))
        arcs.append(pts)
    return arcs


def ring(arcs: list, indexes: list[int]) -> list[tuple[float, float]]:
    pts: list[tuple[float, float]] = []
    for i in indexes:
        arc = arcs[i] if i >= 0 else arcs[~i][::-1]
        pts.extend(arc if not pts else arc[1:])
    return pts


def area_centroid(pts: list[tuple[float, float]]) -> tuple[float, float, float]:
    a = cx = cy = 0.0
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1], strict=True):
        f = x0 * y1 - x1 * y0
        a += f
        cx += (x0 + x1) * f
        cy += (y0 + y1) * f
    if abs(a) < 1e-12:
        return 0.0, pts[0][0], pts[0][1]
    return abs(a) / 2, cx / (3 * a), cy / (3 * a)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    topo = json.loads(Path(argv[0]).read_text("utf-8"))
    arcs = decode_arcs(topo)
    countries = {}
    for geom in topo["objects"]["countries"]["geometries"]:
        num = geom.get("id")
        country = pycountry.countries.get(numeric=f"{int(num):03d}") if num is not None else None
        if country is None or geom["type"] not in ("Polygon", "MultiPolygon"):
            continue
        polygons = [geom["arcs"]] if geom["type"] == "Polygon" else geom["arcs"]
        parts, best = [], (0.0, 0.0, 0.0)
        for polygon in polygons:
            for n, indexes in enumerate(polygon):
                pts = ring(arcs, indexes)
                if n == 0:
                    best = max(best, area_centroid(pts))
                xy = [to_svg(lon, lat) for lon, lat in pts]
                d = "M" + "L".join(f"{x:g},{y:g}" for x, y in xy) + "Z"
                parts.append(d)
        name = getattr(country, "common_name", None) or country.name
        x, y = to_svg(best[1], best[2])
        countries[country.alpha_2] = {
            "name": name,
            "path": "".join(parts),
            "lat": round(best[2], 3),
            "lon": round(best[1], 3),
            "x": x,
            "y": y,
        }
    out = {
        "source": "Natural Earth 1:110m Admin 0 countries (public domain), as the TopoJSON World"
        " Atlas (ISC licence) publishes it; built by scripts/world_map.py",
        "projection": "Equal Earth",
        "width": WIDTH,
        "height": HEIGHT,
        "countries": dict(sorted(countries.items())),
    }
    OUT.write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n", "utf-8")
    size = OUT.stat().st_size
    print(f"wrote {OUT.relative_to(ROOT)}: {len(countries)} countries, {size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
