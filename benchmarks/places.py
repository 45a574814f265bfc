"""Place resolution against the place gold set.

    .venv/bin/python -m benchmarks.places [--misses]

Ingests the sample newsroom (the 50 real pages `make demo` serves; real HTTP on 127.0.0.1, the
real spaCy model, the load that locates places) into a temporary store, then scores
``article_places`` against tests/fixtures/places_gold.tsv: every GPE, LOC and FAC entity the
model finds in those pages, labelled by hand with the country it is in ('-': in no one country;
'X': not a place). Printed: how many gold places the model found, the share of those in one
country that resolved to it (country accuracy), the same counting regions and continents
(right when they resolve to no country), how many non-places the gazetteer gave a country,
the seconds to build the gazetteer, and with --misses every wrong row.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from newsflow.config import Settings
from newsflow.db.places import place_evidence
from newsflow.db.store import Store
from newsflow.demo.newsroom import Newsroom
from newsflow.enrich import places
from newsflow.enrich.evaluate import load_place_gold, score_places
from newsflow.run.cycle import run_cycle

from benchmarks.common import run_main

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "tests" / "fixtures" / "places_gold.tsv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--misses", action="store_true", help="print every wrong row and every place not found"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    gazetteer = places.Gazetteer.load()
    built = time.perf_counter() - started
    cache = places.cache_file()
    read = None
    if cache is not None:
        places._write_cache(cache, gazetteer)
        started = time.perf_counter()
        read = places._read_cache(cache)
        read_in = time.perf_counter() - started
    del gazetteer
    with tempfile.TemporaryDirectory(prefix="newsflow-places-") as tmp:
        settings = replace(
            Settings(data_dir=Path(tmp)),
            allow_private=True,
            per_host_delay=0.0,
            per_host_concurrency=8,
        )
        with Newsroom(port=0) as newsroom, Store(settings.lake) as store:
            run_cycle(settings, store, feeds=newsroom.feeds, include_not_due=True)
            found, resolved = place_evidence(store.con)
    gold = load_place_gold(GOLD)
    s = score_places(gold, found, resolved)
    print(
        f"gazetteer: {places.gazetteer_version()}, built in {built:.2f}s"
        + (f", read from its cache in {read_in:.2f}s ({built / read_in:.1f}x)" if read else "")
    )
    print(f"gold set: {len(gold)} rows, {s.gold} places ({GOLD.relative_to(ROOT)})")
    print(f"found by the model this run: {s.found} places, {s.not_places} non-places")
    print(
        f"country accuracy: {s.country_right}/{s.with_country} = {s.country_accuracy:.3f}"
        f"  (target >= 0.95)"
    )
    print(
        f"with regions and continents (right when no country): "
        f"{s.country_right + s.no_country_right}/{s.with_country + s.no_country}"
        f" = {s.accuracy:.3f}"
    )
    print(f"non-places given a country: {s.spurious}/{s.not_places}")
    if args.misses:
        for page, entity, want, got in s.misses:
            print(f"  miss  {page}  {entity!r}: gold {want}, got {got}")
        for page, entity, want in s.not_found:
            print(f"  not found  {page}  {entity!r} (gold {want})")
    return 0


if __name__ == "__main__":
    run_main("benchmarks.places")
