"""The full-text index in a bucket (NEWSFLOW_SEARCH_PATH=s3://…), as a cluster has it: the
machine that loads builds and uploads the index files, another machine with a data folder of
its own searches them from its cache; nothing but the catalog and the bucket is shared."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from newsflow.db import search
from newsflow.db.store import Store

from scripts.services import free_port
from tests.s3 import BUCKET
from tests.test_db import add_feed

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TEXTS = [
    "volcano erupts near the coast", "central bank raises interest rate",
    "volcano ash closes airports", "election results are in", "storm hits the coast",
    "bank shares fall after the rate decision", "coast guard rescues sailors",
    "rate cut expected", "volcano quiet again",
]  # fmt: skip


@pytest.fixture
def machines(tmp_path, s3_settings):
    """Two machines' settings on one store (one catalog, data files and index in the bucket),
    each with its own data folder."""
    bucket = f"s3://{BUCKET}/{tmp_path.name}"
    one = replace(
        s3_settings,
        data_dir=tmp_path / "one",
        catalog=str(tmp_path / "shared" / "lake.sqlite"),
        search_path=f"{bucket}/search",
    )
    return one, replace(one, data_dir=tmp_path / "two")


def insert(con, first: int, last: int) -> None:
    fid = add_feed(con, "https://s.example/feed")
    for i in range(first, last):
        con.execute(
            "insert into articles (article_id, feed_id, run_id, url, canonical_url, title, text,"
            " first_seen_at, loaded_at, word_count, extraction_status)"
            " values (?, ?, 'run', ?, ?, ?, ?, ?, ?, 5, 'ok')",
            [f"{i:032x}", fid, f"u{i}", f"u{i}", f"t{i}", TEXTS[i], NOW,
             NOW + timedelta(minutes=i)],
        )  # fmt: skip


def objects(s3_server, prefix: str) -> list[str]:
    """The index files in the bucket under ``prefix`` (not the folder markers pyarrow leaves
    when a folder's last file is deleted)."""
    return [k for k in s3_server.keys(prefix) if not k.endswith("/")]


def found(settings, query: str) -> set[str]:
    with Store(settings.lake, read_only=True) as reader:
        return {h.article_id for h in search.search(reader.con, query, limit=20)}


def test_another_machine_searches_what_one_machine_indexed_through_the_bucket(
    machines, s3_server, tmp_path
):
    one, two = machines
    prefix = f"{tmp_path.name}/search/"
    with Store(one.lake) as store:
        store.con.execute("delete from feeds")
        insert(store.con, 0, 5)
        search.refresh(store.con, size=2)
        first = objects(s3_server, prefix)
        # shards 0-2, each stored under its name and build time; the builder keeps copies
        assert [k.rsplit("/", 1)[1].split(".")[0] for k in first] == [
            "shard-v5-00000", "shard-v5-00001", "shard-v5-00002",
        ]  # fmt: skip
        assert sorted(p.name for p in one.lake.search_path.glob("*.duckdb")) == [
            k.rsplit("/", 1)[1] for k in first
        ]
    assert not two.lake.search_path.exists()
    assert found(two, "volcano") == {f"{0:032x}", f"{2:032x}"}
    cached = sorted(p.name for p in two.lake.search_path.glob("*.duckdb"))
    assert cached == [k.rsplit("/", 1)[1] for k in first]

    # A load on the first machine: only the last shard is rebuilt, under a new name; the
    # second machine's next search sees the new articles, fetching that one file.
    with Store(one.lake) as store:
        insert(store.con, 5, 9)
        search.refresh(store.con, size=2)
    after = objects(s3_server, prefix)
    assert set(first) - set(after) == {first[2]}  # the old last shard is gone
    assert {k.rsplit("/", 1)[1].split(".")[0] for k in set(after) - set(first)} == {
        "shard-v5-00002", "shard-v5-00003", "shard-v5-00004",
    }  # fmt: skip
    before = {p.name: p.stat().st_mtime_ns for p in two.lake.search_path.glob("*.duckdb")}
    assert found(two, "volcano") == {f"{i:032x}" for i in (0, 2, 8)}
    now = {p.name: p.stat().st_mtime_ns for p in two.lake.search_path.glob("*.duckdb")}
    assert sorted(now) == [k.rsplit("/", 1)[1] for k in after]  # the cache holds no old build
    assert all(now[n] == before[n] for n in now if n in before)  # nor fetched one twice

    # Maintenance merges sealed shards into a segment: the other machine reads it, the
    # merged shards' files leave the bucket and its cache.
    with Store(one.lake) as store:
        assert search.compact(store.con, size=2, blocks=(4, 2)) == ["segment-v5-00000-00003.duckdb"]
    merged = objects(s3_server, prefix)
    assert [k.rsplit("/", 1)[1].split(".")[0] for k in merged] == [
        "segment-v5-00000-00003", "shard-v5-00004",
    ]  # fmt: skip
    assert found(two, "volcano coast rate") == found(one, "volcano coast rate")
    assert len(found(two, "volcano coast rate")) == 8
    assert len(list(two.lake.search_path.glob("*.duckdb"))) == 2


def test_a_bucket_that_cannot_be_read_makes_search_unavailable_naming_it(
    machines, s3_server, tmp_path
):
    one, two = machines
    with Store(one.lake) as store:
        store.con.execute("delete from feeds")
        insert(store.con, 0, 3)
        search.refresh(store.con, size=2)
    keys = objects(s3_server, f"{tmp_path.name}/search/")
    with pytest.MonkeyPatch.context() as patch:  # the bucket's service unreachable
        patch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
        with pytest.raises(search.SearchUnavailable, match=r"s3://.*shard-v5-0000.*cannot"):
            found(two, "volcano")
    assert objects(s3_server, f"{tmp_path.name}/search/") == keys  # nothing lost
    assert found(two, "volcano") == {f"{0:032x}", f"{2:032x}"}
