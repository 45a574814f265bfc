"""The Airflow DAGs: integrity, and real runs with dag.test() against a loopback newsroom.

Every Airflow run happens in a subprocess (tests/airflow_runner.py) with its own AIRFLOW_HOME,
a metadata database migrated once per session, DAGS_FOLDER pointing at dags/, and examples off.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import yaml
from newsflow.db.store import Store
from newsflow.demo.newsroom import Newsroom, manifest

from tests.helpers import ROOT

DAGS = ROOT / "dags"
PYTHON = sys.executable
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAG_IDS = {"news_ingest", "news_maintenance", "news_retag", "news_search"}
ARTICLES_IN_NEWSROOM = len(manifest()["articles"])


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWSFLOW_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "PYTHONPATH": str(ROOT),
        # Airflow 3.3.2's dag.test() fails on a DAG with a deadline alert once its run succeeds
        # (DagRun.update_state looks the alerts up by id, and dag.test's DAG has their
        # definitions instead): the runs here go without it; the integrity check below parses
        # and serializes the DAGs with it, as the DAG processor does.
        "NEWSFLOW_INGEST_DEADLINE_MINUTES": "0",
    }
    done = subprocess.run(
        [AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return env


def newsflow_env(base: dict, data_dir: Path, feeds: Path, **extra) -> dict:
    return {
        **base,
        "NEWSFLOW_DATA_DIR": str(data_dir),
        "NEWSFLOW_FEEDS": str(feeds),
        "NEWSFLOW_ALLOW_PRIVATE": "1",
        "NEWSFLOW_PER_HOST_DELAY": "0",
        "NEWSFLOW_EXTRACT_WORKERS": "1",
        "NEWSFLOW_TAG_WORKERS": "1",
        "NEWSFLOW_RETRY_DELAY_SECONDS": "1",
        "NEWSFLOW_TASK_RETRIES": "2",
        **{f"NEWSFLOW_{k.upper()}": str(v) for k, v in extra.items()},
    }


def run_dag(env: dict, dag_id: str, conf: dict | None = None) -> tuple[dict, str]:
    args = [PYTHON, str(ROOT / "tests" / "airflow_runner.py"), dag_id]
    if conf is not None:
        args.append(json.dumps(conf))
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
    out = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("DAGRUN ")]
    assert lines, f"no DAGRUN line (exit {done.returncode}):\n{out[-5000:]}"
    return json.loads(lines[-1][len("DAGRUN ") :]), out


@pytest.fixture
def newsroom(tmp_path):
    with Newsroom(port=0) as room:
        feeds = tmp_path / "feeds.yaml"
        feeds.write_text(
            yaml.safe_dump({"feeds": [{"url": f.url, "name": f.name} for f in room.feeds]}),
            encoding="utf-8",
        )
        yield room, feeds


def counts(db: Path) -> dict:
    with Store(db, read_only=True) as store:
        row = store.query(
            "select (select count(*) from articles), (select count(distinct article_id) from"
            " articles), (select count(*) from feed_polls), (select count(*) from feeds),"
            " (select count(*) from article_entities), (select count(*) from (select article_id,"
            " entity, label from article_entities group by all having count(*) > 1)),"
            " (select count(*) from runs)"
        )[1][0]
    keys = ["articles", "distinct", "polls", "feeds", "entities", "dup_entities", "runs"]
    return dict(zip(keys, row))


# -- integrity --------------------------------------------------------------------------------

INTEGRITY = textwrap.dedent(
    """
    import importlib, json, os, sys, time
    from pathlib import Path
    import airflow.sdk  # warm: the first Airflow import is not the DAG file's cost
    dags = Path(sys.argv[1])
    sys.path.insert(0, str(dags))
    data = Path(os.environ["NEWSFLOW_DATA_DIR"])
    out = {}
    for path in sorted(dags.glob("*.py")):
        before = set(sys.modules)
        t = time.perf_counter()
        module = importlib.import_module(path.stem)
        took = time.perf_counter() - t
        dag = getattr(module, "DAG", None)
        heavy = sorted(m for m in set(sys.modules) - before
                       if m.split(".")[0] in {"duckdb", "spacy", "trafilatura", "httpx", "pyarrow"}
                       or m == "newsflow" or m.startswith("newsflow."))
        # Airflow imports a deadline's callback to check it: the one newsflow module a DAG
        # file may load, standard library only.
        heavy = [m for m in heavy if m not in {"newsflow", "newsflow.run", "newsflow.run.alerts"}]
        info = {"seconds": took, "heavy_imports": heavy}
        if dag is not None:
            info.update(
                dag_id=dag.dag_id, tags=sorted(dag.tags), catchup=dag.catchup,
                max_active_runs=dag.max_active_runs, description=dag.description,
                tasks={t.task_id: {"owner": t.owner, "retries": t.retries,
                                   "pool": t.pool, "doc_md": t.doc_md} for t in dag.tasks},
            )
            condition = getattr(dag.timetable, "asset_condition", None)
            info["timetable"] = type(dag.timetable).__name__
            info["scheduled_on"] = sorted(
                a.name for a in getattr(condition, "objects", [condition]) if hasattr(a, "name")
            )
            alerts = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
            info["deadlines"] = [
                {"reference": type(d.reference).__name__, "seconds": d.interval.total_seconds(),
                 "callback": d.callback.path}
                for d in alerts if d is not None
            ]
            from airflow.serialization.serialized_objects import DagSerialization
            DagSerialization.to_dict(dag)  # what the DAG processor stores for the scheduler
        out[path.name] = info
    out["_data_dir_created"] = data.exists()
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=str(dags))
    out["_import_errors"] = {k: str(v)[:500] for k, v in bag.import_errors.items()}
    out["_dag_ids"] = sorted(bag.dag_ids)
    print("INTEGRITY " + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def integrity(airflow_env, tmp_path_factory) -> dict:
    data = tmp_path_factory.mktemp("integrity") / "never-created"
    env = {**airflow_env, "NEWSFLOW_DATA_DIR": str(data), "NEWSFLOW_FEEDS": str(data / "x.yaml")}
    env.pop("NEWSFLOW_INGEST_DEADLINE_MINUTES")  # the default: the schedule's interval
    done = subprocess.run(
        [PYTHON, "-c", INTEGRITY, str(DAGS)], env=env, capture_output=True, text=True,
        timeout=300, cwd=ROOT,
    )  # fmt: skip
    line = [x for x in done.stdout.splitlines() if x.startswith("INTEGRITY ")]
    assert line, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(line[0][len("INTEGRITY ") :])


def test_dag_folder_parses_without_errors(integrity):
    assert integrity["_import_errors"] == {}
    assert set(integrity["_dag_ids"]) == DAG_IDS


@pytest.mark.parametrize("name", sorted(p.name for p in DAGS.glob("*.py")))
def test_dag_file_imports_fast_and_does_no_work(integrity, name):
    info = integrity[name]
    assert info["seconds"] < 1.0, f"{name} took {info['seconds']:.2f}s to import"
    # No top-level work: nothing of the pipeline, no database or HTTP library, no data folder.
    assert info["heavy_imports"] == []
    assert integrity["_data_dir_created"] is False


def test_news_ingest_has_a_deadline_of_its_interval_whose_callback_the_triggerer_runs(
    integrity, monkeypatch
):
    """A run still going when the next one is due posts an alert: the deadline is the schedule's
    interval after the run was queued, and its callback, run the way Airflow's triggerer runs
    it (CallbackTrigger, with the context the scheduler gives), posts to a real webhook."""
    [deadline] = integrity["news_ingest.py"]["deadlines"]
    assert deadline["reference"] == "DagRunQueuedAtDeadline"
    assert deadline["seconds"] == 600  # NEWSFLOW_INGEST_EVERY_MINUTES' default
    assert deadline["callback"] == "newsflow.run.alerts.deadline_missed"
    assert integrity["news_maintenance.py"]["deadlines"] == []

    import asyncio

    from airflow.triggers.callback import CallbackTrigger

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    context = {
        "dag_run": {"dag_id": "news_ingest", "dag_run_id": "scheduled__2026-12-03T10:00:00",
                    "state": "running", "queued_at": "2026-12-03T10:00:02Z"},
        "deadline": {"id": "d1", "deadline_time": "2026-12-03T10:10:02Z"},
    }  # fmt: skip

    async def fire(kwargs):
        trigger = CallbackTrigger(deadline["callback"], kwargs)
        return [event.payload async for event in trigger.run()]

    try:
        monkeypatch.setenv("NEWSFLOW_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/")
        events = asyncio.run(fire({"context": context}))
    finally:
        hook.shutdown()
    assert events[-1]["state"] == "success", events
    [alert] = received
    assert alert["run_id"] == "scheduled__2026-12-03T10:00:00"
    assert alert["text"].startswith(
        "newsflow: news_ingest run scheduled__2026-12-03T10:00:00 has not finished by its"
        " deadline 2026-12-03T10:10:02Z"
    )
    # Unset: nothing is sent; unreachable: the callback says so and does not raise.
    monkeypatch.delenv("NEWSFLOW_ALERT_WEBHOOK")
    assert asyncio.run(fire({"context": context}))[-1]["state"] == "success"
    assert len(received) == 1
    monkeypatch.setenv("NEWSFLOW_ALERT_WEBHOOK", f"http://127.0.0.1:{hook.server_port}/")
    events = asyncio.run(fire({"context": context}))  # the server is shut down now
    assert events[-1]["state"] == "success" and len(received) == 1


@pytest.mark.parametrize(
    "name", ["news_ingest.py", "news_maintenance.py", "news_retag.py", "news_search.py"]
)
def test_dag_conventions(integrity, name):
    info = integrity[name]
    assert info["dag_id"] == name.removesuffix(".py")
    assert "newsflow" in info["tags"]
    assert info["catchup"] is False and info["max_active_runs"] == 1
    assert info["description"]  # shown beside the DAG in the UI
    for task_id, task in info["tasks"].items():
        assert task["owner"] == "newsflow", task_id
        assert len(task["doc_md"] or "") > 40, f"{task_id} has no doc_md for the UI"
        if (name, task_id) == ("news_maintenance.py", "feed_health"):
            assert task["retries"] == 0  # a deterministic verdict: retrying only delays the red
        else:
            assert task["retries"] >= 2, task_id


def test_only_writer_tasks_use_the_writer_pool(integrity):
    writers = {
        (name, task_id)
        for name, info in integrity.items()
        if isinstance(info, dict) and "tasks" in info
        for task_id, task in info["tasks"].items()
        if task["pool"] == "lake_writer"
    }
    assert writers == {
        ("news_ingest.py", "load"),
        ("news_maintenance.py", "tidy_lake"),
        ("news_maintenance.py", "entities"),
        ("news_maintenance.py", "search_index"),
        ("news_retag.py", "retag"),
        ("news_search.py", "search_index"),
    }


def test_ruff_airflow3_rules_are_clean():
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [str(ruff), "check", "--select", "AIR3", str(DAGS)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- runs -------------------------------------------------------------------------------------


def test_news_ingest_end_to_end_then_again_without_duplicates(airflow_env, newsroom, tmp_path):
    room, feeds = newsroom
    env = newsflow_env(airflow_env, tmp_path / "data", feeds)
    db = tmp_path / "data" / "newsflow.sqlite"

    first, log = run_dag(env, "news_ingest")
    assert first["state"] == "success", log[-5000:]
    states = {(t["task_id"], t["map_index"]): t["state"] for t in first["tis"]}
    assert set(states.values()) == {"success"}
    assert {t for t, _ in states} == {
        "plan", "poll", "plan_articles", "fetch_extract", "tag", "load", "announce"
    }  # fmt: skip
    after_first = counts(db)
    assert after_first["articles"] == after_first["distinct"] == ARTICLES_IN_NEWSROOM
    assert after_first["feeds"] == len(room.feeds) and after_first["polls"] == len(room.feeds)
    assert after_first["entities"] > 500 and after_first["dup_entities"] == 0
    # announce emitted the articles asset with row counts
    [event] = first["asset_events"]
    assert event["asset"] == "newsflow_articles"
    assert event["extra"]["articles_loaded"] == ARTICLES_IN_NEWSROOM
    assert event["extra"]["entities_total"] == after_first["entities"]
    # ...and the lake snapshot that load committed: read at it, the store holds that run
    with Store(db, read_only=True, snapshot=event["extra"]["snapshot_id"]) as store:
        assert store.totals()["articles"] == ARTICLES_IN_NEWSROOM
    # Each task's log says what it is about to do and what it did.
    assert "newsflow: about to load the run into the lake" in log
    assert "newsflow: did load the run into the lake in one transaction" in log
    # The staged files of a loaded run are gone.
    assert not any((tmp_path / "data" / "airflow-runs" / "newsflow").iterdir())

    second, log = run_dag(env, "news_ingest")
    assert second["state"] == "success", log[-5000:]
    after_second = counts(db)
    # The feeds were not due yet: nothing polled, nothing added, nothing duplicated.
    assert after_second["articles"] == after_first["articles"]
    assert after_second["entities"] == after_first["entities"]
    assert after_second["dup_entities"] == 0
    assert after_second["runs"] == 2
    # A run that loaded nothing wakes no consumer of the asset.
    assert second["asset_events"] == []
    assert {t["task_id"]: t["state"] for t in second["tis"]}["announce"] == "skipped"


def test_a_failed_mapped_task_is_retried_and_nothing_is_lost_or_doubled(
    airflow_env, newsroom, tmp_path
):
    room, feeds = newsroom
    env = newsflow_env(
        airflow_env, tmp_path / "data", feeds, fault_inject="fetch_extract:0000",
        article_batch_size=20,
    )  # fmt: skip
    result, log = run_dag(env, "news_ingest")
    assert result["state"] == "success", log[-5000:]
    tries = {(t["task_id"], t["map_index"]): t["try_number"] for t in result["tis"]}
    assert tries[("fetch_extract", 0)] == 2  # failed once (after staging its file), retried
    # One host serves the whole sample newsroom, so its pages are one batch whatever the batch
    # size: parallel fetch tasks never share a host (pipeline/newsflow/fetching/fetch.py, article_batches).
    assert ("fetch_extract", 1) not in tries
    assert "injected fault in fetch_extract batch 0000" in log
    assert "[resumed]" in log  # the retry used the staged file instead of fetching again
    c = counts(tmp_path / "data" / "newsflow.sqlite")
    assert c["articles"] == c["distinct"] == ARTICLES_IN_NEWSROOM
    assert c["dup_entities"] == 0


def test_failed_load_is_retried_and_loads_once(airflow_env, newsroom, tmp_path):
    room, feeds = newsroom
    env = newsflow_env(airflow_env, tmp_path / "data", feeds, fault_inject="load:")
    result, log = run_dag(env, "news_ingest")
    assert result["state"] == "success", log[-5000:]
    tries = {t["task_id"]: t["try_number"] for t in result["tis"] if t["map_index"] == -1}
    assert tries["load"] == 2
    c = counts(tmp_path / "data" / "newsflow.sqlite")
    assert c["articles"] == c["distinct"] == ARTICLES_IN_NEWSROOM
    assert c["runs"] == 1


@pytest.fixture
def ingested_newsroom(airflow_env, newsroom, tmp_path, model_name) -> tuple[Newsroom, dict, Path]:
    """The newsroom ingested into a data folder of this test by one cycle in this process, as a
    news_ingest run would (entities and topics tagged), for the tests of the DAGs that read a
    store (news_ingest's own runs are tested above): the newsroom, the DAGs' environment and
    the store's path."""
    from newsflow.config import load_settings
    from newsflow.fetching.feedlist import load_feed_file
    from newsflow.run.cycle import run_cycle

    room, feeds = newsroom
    env = newsflow_env(airflow_env, tmp_path / "data", feeds)
    settings = load_settings({k: v for k, v in env.items() if k.startswith("NEWSFLOW_")})
    with Store(settings.lake) as store:
        summary = run_cycle(settings, store, feeds=load_feed_file(settings.feeds_file))
    assert summary.articles_loaded == ARTICLES_IN_NEWSROOM
    return room, env, settings.data_dir / "newsflow.sqlite"


def test_news_maintenance_logs_the_feed_table_and_fails_naming_a_silent_feed(ingested_newsroom):
    room, env, db = ingested_newsroom
    before = counts(db)

    healthy, log = run_dag(env, "news_maintenance")
    assert healthy["state"] == "success", log[-5000:]
    assert f"all {len(room.feeds)} active feeds healthy" in log
    assert re.search(r"\d+ name\(s\) resolved into \d+ entities", log), log[-3000:]
    assert counts(db)["entities"] == before["entities"]

    # A feed that used to work and has brought nothing new for longer than the limit fails
    # the health check loudly, naming the feed.
    silent_env = {**env, "NEWSFLOW_FEED_SILENCE_HOURS": "0.0001"}
    silent, log = run_dag(silent_env, "news_maintenance")
    assert silent["state"] == "failed"
    states = {t["task_id"]: t["state"] for t in silent["tis"]}
    assert states == {
        "retention": "success",
        "entities": "success",
        "search_index": "success",
        "tidy_lake": "success",
        "feed_health": "failed",
    }
    assert "FeedHealthError" in log and room.feeds[0].url in log


def test_news_search_brings_the_index_up_to_date_after_a_load(ingested_newsroom, integrity):
    # news_search, which the load's asset event triggers: shards and derived tables current
    assert integrity["news_search.py"]["timetable"] == "AssetTriggeredTimetable"
    assert integrity["news_search.py"]["scheduled_on"] == ["newsflow_articles"]
    _, env, _ = ingested_newsroom
    searched, log = run_dag(env, "news_search")
    assert searched["state"] == "success", log[-5000:]
    assert re.search(r"\d+ articles indexed in 1 file\(s\)", log), log[-3000:]


def test_news_retag_replaces_the_tags_with_params_and_with_the_forms_defaults(ingested_newsroom):
    _, env, db = ingested_newsroom
    before = counts(db)
    retagged, log = run_dag(env, "news_retag", {"tagger": "spacy"})
    assert retagged["state"] == "success", log[-5000:]
    assert "re-tag stored articles (since the start, tagger spacy)" in log
    after = counts(db)
    assert after["entities"] == before["entities"] and after["dup_entities"] == 0

    # Triggered with the form's defaults (no conf): everything, both taggers.
    defaults, log = run_dag(env, "news_retag")
    assert defaults["state"] == "success", log[-5000:]
    assert "re-tag stored articles (since the start, tagger all)" in log
    assert counts(db)["entities"] == before["entities"]


def test_feed_health_fails_at_once_naming_a_dead_feed(airflow_env, newsroom, tmp_path):
    room, feeds = newsroom
    dead = f"{room.base_url}/feeds/no-such-feed.xml"  # the newsroom answers 404
    listed = yaml.safe_load(feeds.read_text(encoding="utf-8"))
    listed["feeds"].append({"url": dead, "name": "Dead"})
    feeds.write_text(yaml.safe_dump(listed), encoding="utf-8")
    env = newsflow_env(airflow_env, tmp_path / "data", feeds)
    ingest, log = run_dag(env, "news_ingest")
    assert ingest["state"] == "success"  # a failed feed is data
    # The grid tells which batch failed what, the load says it, and so does the asset event.
    labels = [t["label"] for t in ingest["tis"] if t["task_id"] == "poll"]
    assert any(re.fullmatch(r"feeds \d{4} · \d+ polled · 1 failed · \d+ new", x) for x in labels)
    tagged = [t["label"] for t in ingest["tis"] if t["task_id"] == "tag"]
    assert tagged and all(
        re.fullmatch(r"tag \d{4} · \d+ articles · [\d,]+ entities", x) for x in tagged
    )
    warned = [x for x in log.splitlines() if "failed: http_error 404" in x]
    assert any(dead in x and "warn" in x.lower() for x in warned), warned
    assert f"1 feeds failed ['{dead}']" in log
    [event] = ingest["asset_events"]
    assert event["extra"]["feeds_failed"] == 1
    assert event["extra"]["airflow_run_id"] == ingest["run_id"]

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        alerting = {**env, "NEWSFLOW_ALERT_WEBHOOK": f"http://127.0.0.1:{hook.server_port}/hook"}
        run, log = run_dag(alerting, "news_maintenance")
    finally:
        hook.shutdown()
    assert run["state"] == "failed"
    # the failure callback posted the alert, naming the dead feed
    [alert] = received
    assert (alert["dag_id"], alert["task_id"]) == ("news_maintenance", "feed_health")
    assert dead in alert["error"] and alert["text"].startswith(
        "newsflow: news_maintenance.feed_health failed"
    )
    health = next(t for t in run["tis"] if t["task_id"] == "feed_health")
    assert health["state"] == "failed"
    assert (
        "FeedHealthError" in log
        and f"1 of {len(room.feeds) + 1} active feeds need attention" in log
    )
    line = next(x for x in log.splitlines() if dead in x and "dead" in x)
    assert "http_error 404" in line
