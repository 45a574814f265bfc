"""Staged run files on the local disk and in an S3 bucket (staging.StagedPath): the same
operations, whole files or none, and a whole ingest cycle staging its run in a bucket."""

from __future__ import annotations

from dataclasses import replace

import pyarrow as pa
import pytest
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route
from newsflow.fetching.feedlist import FeedSpec
from newsflow.run.cycle import run_cycle
from newsflow.staging import RunDir, StagedPath, pending_runs

from tests.helpers import bundled_page, bundled_slugs, rss

SCHEMA = pa.schema([("article_id", pa.string()), ("words", pa.int64())])


@pytest.fixture(params=["disk", "bucket"])
def runs_root(request, tmp_path, monkeypatch) -> StagedPath:
    if request.param == "disk":
        return StagedPath(tmp_path / "runs")
    s3 = request.getfixturevalue("s3_server")
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    from tests.s3 import BUCKET

    return StagedPath(f"s3://{BUCKET}/{tmp_path.name}/runs")


def test_a_run_is_written_read_listed_and_removed_in_the_same_way_anywhere(runs_root):
    assert pending_runs(runs_root) == []  # nothing there yet, not an error
    run = RunDir.create(runs_root, "test", run_id="r1")
    assert run.info()["trigger"] == "test" and run.started_at() is not None
    assert not run.has("articles", "0001")
    run.write("articles", "0001", [{"article_id": "a", "words": 3}], SCHEMA)
    run.write("articles", "0000", [{"article_id": "b", "words": 5}], SCHEMA)
    assert run.has("articles", "0001")
    assert [p.stem for p in run.files("articles")] == ["0000", "0001"]
    assert run.read("articles", SCHEMA) == [
        {"article_id": "b", "words": 5},
        {"article_id": "a", "words": 3},
    ]
    note = run.path / "plan" / "plan.json"
    note.parent.mkdir()
    note.write_text('{"batches": ["0000"]}')
    assert note.read_text() == '{"batches": ["0000"]}' and note.exists()
    assert [r.run_id for r in pending_runs(runs_root)] == ["r1"]
    assert str(run.path).startswith("s3://") == runs_root.on_object_storage
    run.remove()
    assert pending_runs(runs_root) == [] and not run.has("articles", "0001")


def test_a_write_that_fails_leaves_no_file_behind(runs_root):
    run = RunDir.create(runs_root, "test", run_id="r2")
    bad = [{"article_id": "a", "words": "not a number"}]
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        run.write("articles", "0000", bad, SCHEMA)
    assert run.files("articles") == [] and not run.has("articles", "0000")
    leftovers = [p.name for p in (run.path / "articles").iterdir()]
    assert leftovers == []


def test_a_run_in_a_bucket_is_loaded_from_a_local_copy_that_does_not_outlive_the_load(
    runs_root,
):
    run = RunDir.create(runs_root, "test", run_id="r3")
    run.write("polls", "0000", [{"article_id": "x", "words": 1}], SCHEMA)
    with run.on_local_disk() as local:
        assert not local.path.on_object_storage
        assert [p.name for p in local.files("polls")] == ["0000.parquet"]
        assert local.read("polls", SCHEMA) == [{"article_id": "x", "words": 1}]
        copy = local.path.local()
    assert copy.exists() == (not runs_root.on_object_storage)


def test_an_ingest_cycle_stages_its_run_in_the_bucket_and_leaves_nothing_on_disk(
    tmp_path, site, settings, s3_server, monkeypatch
):
    """NEWSFLOW_RUNS_PATH=s3://...: the run's files go to the bucket, the load reads them
    there, and the only thing on this machine's disk is the store and the ingest lock."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    from tests.s3 import BUCKET

    prefix = f"{tmp_path.name}/staged"
    settings = replace(settings, runs_path=f"s3://{BUCKET}/{prefix}")
    slugs = bundled_slugs()
    items = [{"link": f"{site.base_url}/p{i}.html", "title": f"Story {i}"} for i in range(3)]
    site.routes["/feed.xml"] = Route(rss("Wire", items), content_type="application/rss+xml")
    for i in range(3):
        site.routes[f"/p{i}.html"] = Route(bundled_page(slugs[i]))
    seen: list[str] = []
    real_load = Store.load_run

    def load_and_look(self, run, **kw):  # what the bucket holds when the load starts
        seen.extend(s3_server.keys(prefix))
        return real_load(self, run, **kw)

    monkeypatch.setattr(Store, "load_run", load_and_look)
    with Store(settings.lake) as store:
        summary = run_cycle(
            settings, store, feeds=[FeedSpec(url=f"{site.base_url}/feed.xml")],
            include_not_due=True,
        )  # fmt: skip
        assert summary.articles_loaded == 3
        assert store.con.execute("select count(*) from articles").fetchone()[0] == 3
    assert any(k.endswith("/articles/0000.parquet") for k in seen), seen
    assert any(k.endswith("/polls/0000.parquet") for k in seen), seen
    # loaded, then removed from the bucket (pyarrow leaves the runs folder's empty marker)
    assert [k for k in s3_server.keys(prefix) if not k.endswith("/")] == []
    local_runs = sorted(p.name for p in (settings.data_dir / "runs").rglob("*") if p.is_file())
    assert local_runs == ["ingest.lock"]
