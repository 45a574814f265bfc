"""The scaled-out shape, for real: `make cluster`'s processes (scripts/cluster.py) on this
machine: PostgreSQL holding Airflow's metadata and the lake's catalog, Redis as Celery's
broker, an S3-compatible server (moto) as the bucket, Airflow's api-server, scheduler and
dag-processor, and two Celery workers, each with a data folder of its own. The workers share
nothing but the catalog and the bucket; the staged files of a run travel through the bucket.

One cluster per module (starting it costs about a minute on two cores)."""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import psycopg
import pytest
from newsflow.config import LakeLocation
from newsflow.db.store import Store
from newsflow.demo.newsroom import Newsroom, Route
from newsflow.fetching.feedlist import FeedSpec

from tests.helpers import feed_file
from tests.test_crashes import Ingest, snapshot

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.xdist_group("cluster")]

ROOT = Path(__file__).resolve().parents[1]
N_FEEDS = 2  # per host, of the sample newsroom's feeds: 10 articles on each host
HOSTS = ("127.0.0.1", "127.0.0.2")
# The settings a user changes for a cluster on a loopback newsroom, and batches small enough
# that each stage has a task per host and both run at once (so both workers get work).
# Politeness, timeouts and tagging stay at their defaults.
WORKER_SETTINGS = {
    "NEWSFLOW_ALLOW_PRIVATE": "1",
    "NEWSFLOW_FEEDS_PER_BATCH": "1",
    "NEWSFLOW_ARTICLE_BATCH_SIZE": "10",
    "NEWSFLOW_TAG_WORKERS": "1",
    "NEWSFLOW_EXTRACT_WORKERS": "1",
    "NEWSFLOW_RETRY_DELAY_SECONDS": "5",
    # A task whose worker is gone is found by its missing heartbeats after 45 s (300 s by
    # default; a killed worker is a test below).
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
    # The DAG files do not change during a test: parsed once, not every 30 s.
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
}


def flaky_outlet(server) -> FeedSpec:
    """A feed on ``server`` of three pages: one that answers, one gone for good (404) and one
    that fails once (503): per-item failures, recorded as data."""
    pages = {"fine": 0, "busy": 1}
    for slug, fails in pages.items():
        server.routes[f"/flaky/{slug}.html"] = Route(
            article_html(f"The {slug} page", "harbour cranes"), fail_first=fails
        )
    return outlet_feed(server, "/flaky/feed.xml", "Flaky outlet", [*pages, "gone"], "/flaky/")


def article_html(title: str, about: str) -> bytes:
    words = " ".join(f"Paragraph {k} of {title} about {about} in the port." for k in range(40))
    return (
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>"
        f"<p>{words}</p><p>{words}</p></article></body></html>"
    ).encode()


def outlet_feed(server, path: str, name: str, slugs, folder: str) -> FeedSpec:
    items = "".join(
        f"<item><title>{name} {slug}</title><link>{server.base_url}{folder}{slug}.html</link>"
        f"<guid>{server.base_url}{folder}{slug}.html</guid>"
        f"<pubDate>{format_datetime(datetime.now(UTC))}</pubDate></item>"
        for slug in slugs
    )
    rss = (
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{name}</title>'
        f"<link>{server.base_url}{folder}</link>{items}</channel></rss>"
    )
    server.routes[path] = Route(rss.encode(), content_type="application/rss+xml")
    return FeedSpec(f"{server.base_url}{path}", name)


FLAKY_STORED = 3  # every item of the flaky outlet is an article, its page fetched or not
STORED = 5 * N_FEEDS * len(HOSTS) + FLAKY_STORED


@pytest.fixture(scope="module")
def newsroom(tmp_path_factory):
    """The sample newsroom on two hosts (two loopback addresses), two feeds from each, and on
    the second a flaky outlet."""
    with Newsroom(host=HOSTS[0]) as one, Newsroom(host=HOSTS[1]) as two:
        folder = tmp_path_factory.mktemp("feeds")
        feeds = [*one.feeds[:N_FEEDS], *two.feeds[:N_FEEDS], flaky_outlet(two)]
        yield (one, two), feed_file(feeds, folder / "feeds.yaml")


@pytest.fixture(scope="module")
def cluster(newsroom, tmp_path_factory):
    sys.path.insert(0, str(ROOT))
    from scripts.cluster import Cluster

    _, feeds_file = newsroom
    pg_root = Path(tempfile.mkdtemp(prefix="newsflow-cluster-pg-"))
    shape = Cluster(
        tmp_path_factory.mktemp("cluster"),
        workers=2,
        feeds=feeds_file,
        extra_env=WORKER_SETTINGS,
        paused=True,
        concurrency=1,
        postgres_root=pg_root,
        triggerer=False,
    )
    try:
        shape.start()
    except Exception as exc:
        logs = "\n".join(f"== {n}\n{shape.tail(n)}" for n in shape.procs)
        shape.stop()
        shutil.rmtree(pg_root, ignore_errors=True)
        pytest.fail(f"the cluster did not start: {exc}\n{logs}")
    yield shape
    shape.stop()
    shutil.rmtree(pg_root, ignore_errors=True)


def metadata(cluster) -> psycopg.Connection:
    return psycopg.connect(cluster.pg.database("airflow"), autocommit=True)


def airflow(cluster, *args: str) -> str:
    return cluster.airflow_cli(*args, env=cluster.env(cluster.root / "control"))


def run_to_end(cluster, dag_id: str, trigger: bool = False, timeout: float = 400) -> dict:
    """Unpause ``dag_id`` once the dag-processor has parsed it (its schedule starts a run),
    or trigger a run of it; wait for its first run to end: its state and task instances
    (task, map index, state, host, try)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if trigger:
                airflow(cluster, "dags", "trigger", dag_id)
            airflow(cluster, "dags", "unpause", dag_id)
            break
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(3)
    with metadata(cluster) as db:
        while time.monotonic() < deadline:
            row = db.execute(
                "select run_id, state from dag_run where dag_id = %s order by id limit 1",
                [dag_id],
            ).fetchone()
            if row and row[1] in ("success", "failed"):
                tis = db.execute(
                    "select task_id, map_index, state, hostname, try_number from task_instance"
                    " where dag_id = %s and run_id = %s order by task_id, map_index",
                    [dag_id, row[0]],
                ).fetchall()
                return {"state": row[1], "tis": tis}
            time.sleep(2)
    logs = "\n".join(f"== {n}\n{cluster.tail(n)}" for n in cluster.procs)
    raise AssertionError(f"{dag_id} did not finish within {timeout:g} s:\n{logs}")


def client(cluster, *args: str):
    """The JSON `newsflow ARGS` prints, run as a client on another machine would: only the
    settings the cluster wrote (newsflow.env), a data folder of its own."""
    env_file = cluster.root / "newsflow.env"
    argv = " ".join(shlex.quote(a) for a in args)
    command = f"set -a; . {env_file}; set +a; {ROOT}/.venv/bin/newsflow {argv}"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def failed_task_logs(cluster, dag_id: str) -> str:
    logs = cluster.root / "airflow" / "logs" / f"dag_id={dag_id}"
    errors = []
    for path in sorted(logs.rglob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"level":"error"' in line:
                errors.append(f"{path.relative_to(logs)}: {json.loads(line).get('event')}")
    return "\n".join(errors[:20])


def test_a_two_worker_cluster_ingests_the_newsroom_as_one_process_would(
    cluster, newsroom, tmp_path, monkeypatch
):
    ingest = run_to_end(cluster, "news_ingest")
    assert ingest["state"] == "success", failed_task_logs(cluster, "news_ingest")
    tis = ingest["tis"]
    assert all(state == "success" for _, _, state, _, _ in tis), tis
    hosts = {host for _, _, _, host, _ in tis}
    assert hosts == {"worker-1", "worker-2"}, f"tasks ran on {hosts}, not on both workers"
    assert {task for task, *_ in tis} >= {"plan", "poll", "fetch_extract", "tag", "load"}
    per_task = Counter(task for task, *_ in tis)
    assert per_task["poll"] == per_task["fetch_extract"] == len(HOSTS), per_task

    # Politeness held across the workers: at each news host, no more requests in flight than
    # the default two, and never two starting within the default second.
    servers, _ = newsroom
    for server in servers:
        assert server.max_in_flight <= 2, server.base_url
        gaps = [b - a for a, b in itertools.pairwise(sorted(server.starts))]
        assert len(server.starts) > 5 * N_FEEDS and min(gaps) >= 0.95, (server.base_url, gaps)

    # The same newsroom through one `newsflow ingest` process: the same rows.
    _, feeds_file = newsroom
    for server in servers:  # the flaky page fails once for this process too
        server.hits.clear()
    single = Ingest(tmp_path / "single", feeds_file, {})
    done = single.run()
    assert done.returncode == 0, done.stderr[-2000:]
    reference = snapshot(single.db)
    env = cluster.client_env()
    lake = LakeLocation.of(
        env["NEWSFLOW_CATALOG"],
        env["NEWSFLOW_DATA_PATH"],
        Path(env["NEWSFLOW_DATA_DIR"]),
        Path(env["NEWSFLOW_SEARCH_PATH"]),
    )
    for name, value in cluster.s3_env.items():
        monkeypatch.setenv(name, value)
    stored = snapshot(lake)
    assert len(stored.article_ids) == STORED
    assert not any(stored.duplicates.values()), stored.duplicates
    assert stored.article_ids == reference.article_ids
    for table in ("articles", "article_entities", "article_topics"):
        assert stored.counts[table] == reference.counts[table], table
    assert stored.entities == reference.entities and stored.topics == reference.topics
    places = "select article_id, entity, place_key, country_code from article_places order by all"
    with Store(lake, read_only=True) as store, Store(single.lake, read_only=True) as one:
        cluster_places = store.con.execute(places).fetchall()
        assert cluster_places and cluster_places == one.con.execute(places).fetchall()
        # the flaky outlet's failures, recorded alike: the 404 for good, the 503 to retry
        pages = (
            "select regexp_extract(url, '/flaky/.*'), state, attempts, last_error is not null"
            " from page_fetches where url like '%/flaky/%' order by 1"
        )
        failures = store.con.execute(pages).fetchall()
        assert failures == one.con.execute(pages).fetchall()
        statuses = store.con.execute(
            "select regexp_extract(url, '/flaky/.*'), extraction_status from articles"
            " where url like '%/flaky/%' order by 1"
        ).fetchall()
        assert statuses == [
            ("/flaky/busy.html", "pending"), ("/flaky/fine.html", "ok"),
            ("/flaky/gone.html", "failed"),
        ]  # fmt: skip
        assert {(path, state) for path, state, *_ in failures} >= {
            ("/flaky/gone.html", "final"), ("/flaky/busy.html", "retrying"),
        }, failures  # fmt: skip

    # Nothing staged is left in the bucket, and no worker's folder holds a run's files.
    workers = (cluster.root / "workers").iterdir()
    staged = [p for worker in workers for p in worker.rglob("*.parquet")]
    assert staged == []


def test_news_search_runs_on_the_cluster_after_the_load(cluster):
    search = run_to_end(cluster, "news_search", trigger=True)
    assert search["state"] == "success", failed_task_logs(cluster, "news_search")


def test_a_client_reads_and_searches_the_store_with_the_settings_the_cluster_wrote(cluster):
    """A process with a data folder of its own: the SQL reads the lake, and the search reads
    the index files a worker uploaded to the bucket, copied into the client's own cache."""
    counted = client(cluster, "sql", "--format", "json", "select count(*) as n from articles")
    assert counted == [{"n": STORED}]
    titles = client(cluster, "sql", "--format", "json", "select title from articles")
    # The title's words (any of them, ranked): its own article ranks first. One word alone
    # could be a stopword ("against"), which finds nothing.
    words = " ".join(re.findall(r"\w+", titles[0]["title"]))
    hits = client(cluster, "search", "--format", "json", words)
    assert titles[0]["title"] in {h["title"] for h in hits}, (words, hits)
    cache = cluster.root / "client" / "search-cache"
    assert list(cache.rglob("shard-*.duckdb")), "the client searched from its own cache"


def test_news_maintenance_runs_on_the_cluster_and_the_index_stays_searchable(cluster):
    """The daily maintenance (retention, entity identity, the index rebuilt and merged in the
    bucket, the lake tidied on S3, the feed health check) on a worker; a search from another
    process still finds the stored articles."""
    done = run_to_end(cluster, "news_maintenance", trigger=True)
    assert done["state"] == "success", failed_task_logs(cluster, "news_maintenance")
    assert {host for _, _, _, host, _ in done["tis"]} <= {"worker-1", "worker-2"}
    # a stop word finds nothing; the search itself must work from a fresh cache
    cache = Path(cluster.client_env()["NEWSFLOW_DATA_DIR"]) / "search-cache"
    shutil.rmtree(cache, ignore_errors=True)
    assert client(cluster, "search", "--format", "json", "the") == []


SLOW_PAGES = 3
SLOW_SECONDS = 6.0  # each page answers this late (under the 20 s read timeout)


def slow_outlet(server) -> FeedSpec:
    """A feed on ``server`` whose pages are slow: the fetch task of its host runs for
    SLOW_PAGES × SLOW_SECONDS at least."""
    slugs = [f"story-{n}" for n in range(SLOW_PAGES)]
    for slug in slugs:
        server.routes[f"/slow/{slug}.html"] = Route(
            article_html(f"Slow {slug}", "harbour cranes"), delay=SLOW_SECONDS
        )
    return outlet_feed(server, "/slow/feed.xml", "Slow outlet", slugs, "/slow/")


def test_a_worker_killed_mid_task_has_its_task_retried_on_the_other_and_nothing_is_doubled(
    cluster, newsroom
):
    """A machine lost in the middle of a fetch: its worker and the task's processes are
    SIGKILLed. The scheduler finds the task without heartbeat, retries it on the surviving
    worker, and the run stores the slow outlet's pages once."""
    (one, two), feeds_file = newsroom
    feeds = [*one.feeds[:N_FEEDS], *two.feeds[:N_FEEDS], flaky_outlet(two), slow_outlet(one)]
    feed_file(feeds, feeds_file)
    with metadata(cluster) as db:
        runs_before = db.execute(
            "select count(*) from dag_run where dag_id = 'news_ingest'"
        ).fetchone()[0]
        airflow(cluster, "dags", "trigger", "news_ingest")
        deadline = time.monotonic() + 240
        victim = None
        while victim is None and time.monotonic() < deadline:
            row = db.execute(
                "select ti.hostname, ti.run_id from task_instance ti join dag_run r"
                " on r.dag_id = ti.dag_id and r.run_id = ti.run_id"
                " where ti.dag_id = 'news_ingest' and ti.task_id = 'fetch_extract'"
                " and ti.state = 'running' and r.id > (select min(id) from dag_run"
                " where dag_id = 'news_ingest')"
            ).fetchone()
            if row and row[0]:
                victim, run_id = row
            else:
                time.sleep(1)
        assert victim in ("worker-1", "worker-2"), "no fetch task was seen running"
        time.sleep(3)  # into the fetch of the slow pages
        os.killpg(cluster.procs[victim].pid, signal.SIGKILL)
        cluster.procs[victim].wait(30)
        while time.monotonic() < deadline + 300:
            state = db.execute(
                "select state from dag_run where dag_id = 'news_ingest' and run_id = %s",
                [run_id],
            ).fetchone()[0]
            if state in ("success", "failed"):
                break
            time.sleep(2)
        assert state == "success", failed_task_logs(cluster, "news_ingest")
        tries = db.execute(
            "select try_number, hostname from task_instance where dag_id = 'news_ingest'"
            " and run_id = %s and task_id = 'fetch_extract'",
            [run_id],
        ).fetchall()
        assert runs_before >= 1
    survivor = ({"worker-1", "worker-2"} - {victim}).pop()
    assert tries == [(2, survivor)], tries
    (row,) = client(
        cluster, "sql", "--format", "json",
        "select count(*) as n, count(distinct url) as urls,"
        " count(*) filter (where url like '%/slow/%') as slow from articles",
    )  # fmt: skip
    assert row["n"] == row["urls"] and row["slow"] == SLOW_PAGES, row  # each page once
    assert row["n"] == STORED + SLOW_PAGES, row
