"""The newsflow command line: commands, formats and exit codes (0 done, 2 bad input, 1 fault)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from newsflow.cli import build_parser, main
from newsflow.db.store import Store
from newsflow.demo.newsroom import Route

from tests.helpers import ROOT, bundled_page, rss

LISTS = Path(__file__).parent / "fixtures" / "feedlists"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The CLI's settings from the environment, relaxed for speed, without entities and
    topics (``tagged_env`` tags them)."""
    monkeypatch.setenv("NEWSFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("NEWSFLOW_PER_HOST_DELAY", "0")
    monkeypatch.setenv("NEWSFLOW_EXTRACT_WORKERS", "1")
    monkeypatch.setenv("NEWSFLOW_TAG_WORKERS", "1")
    monkeypatch.setenv("NEWSFLOW_TAGGING", "0")
    monkeypatch.delenv("NEWSFLOW_ALLOW_PRIVATE", raising=False)
    return tmp_path


@pytest.fixture
def tagged_env(env, monkeypatch, model_name):
    """``env`` with entities and topics tagged (the spaCy model loads in the test process)."""
    monkeypatch.delenv("NEWSFLOW_TAGGING")
    return env


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def small_site(site, tmp_path):
    site.routes["/feed.xml"] = Route(
        rss(
            "Small",
            [
                {
                    "link": f"{site.base_url}/a.html",
                    "title": "A",
                    "date": "Tue, 17 Feb 2026 10:00:00 GMT",
                }
            ],
        ),
        content_type="application/rss+xml",
    )
    site.routes["/a.html"] = Route(bundled_page("sample-boat-strike"))
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {site.base_url}/feed.xml\n    name: Small\n")
    return site, feeds


def test_ingest_needs_allow_private_for_loopback_then_loads(env, capsys, small_site):
    site, feeds = small_site
    db = env / "x.sqlite"
    code, out, _ = run(capsys, "ingest", "--feeds", str(feeds), "--catalog", str(db), "--json")
    assert code == 0  # the cycle completed; the refused feed is recorded
    summary = json.loads(out)
    assert summary["feeds"]["failed"] == 1 and summary["articles_loaded"] == 0
    assert summary["failed_feeds"][0]["outcome"] == "blocked"
    code, out, _ = run(capsys, "ingest", "--catalog", str(db), "--allow-private", "--all", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["articles_loaded"] == 1 and summary["articles"]["ok"] == 1
    code, out, _ = run(capsys, "ingest", "--catalog", str(db), "--allow-private", "--all")
    assert code == 0 and "nothing new" in out and "1 not modified" in out


def test_a_run_that_polls_nothing_says_which_feeds_wait_until_when_and_why(env, capsys, small_site):
    site, feeds = small_site
    db = str(env / "x.sqlite")
    run(capsys, "ingest", "--feeds", str(feeds), "--catalog", db)  # refused: loopback
    # The next run, even allowed now: the feed is in backoff, and the run says so and the way out
    code, out, _ = run(capsys, "ingest", "--catalog", db, "--allow-private")
    assert code == 0 and "0 polled" in out and "nothing new since the last run" not in out
    line = next(x for x in out.splitlines() if "nothing polled" in x)
    assert "none of the 1 active feed(s) is due" in line
    assert "1 in backoff after failed polls until 20" in line
    assert "(last error: blocked: refused to connect to 127.0.0.1: 127.0.0.1 is a loopback" in line
    assert line.endswith("`newsflow ingest --all` polls them now")
    code, out, _ = run(capsys, "ingest", "--catalog", db, "--allow-private", "--all")
    assert code == 0 and "1 loaded" in out
    # polled a moment ago, healthy: not due yet, and when it will be
    code, out, _ = run(capsys, "ingest", "--catalog", db, "--allow-private", "--json")
    waiting = json.loads(out)["waiting_feeds"]
    assert waiting["active"] == waiting["not_due"] == 1 and waiting["backoff"] == 0
    code, out, _ = run(capsys, "ingest", "--catalog", db, "--allow-private")
    assert re.search(r"1 not due until \d{4}-\d\d-\d\d \d\d:\d\d UTC or later", out), out


def test_status_shows_a_feed_whose_polls_are_ok_but_whose_pages_all_fail(
    env, capsys, site, monkeypatch
):
    items = [{"link": f"{site.base_url}/p{i}.html", "title": f"Story {i}",
              "description": f"Teaser {i} of a story."} for i in range(3)]  # fmt: skip
    site.routes["/feed.xml"] = Route(rss("Blocked", items), content_type="application/rss+xml")
    site.routes["/robots.txt"] = Route(b"down", status=503, conditional=False)
    feeds = env / "feeds.yaml"
    feeds.write_text(f"feeds:\n  - url: {site.base_url}/feed.xml\n    name: Blocked\n")
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE", "1")
    assert run(capsys, "ingest", "--feeds", str(feeds))[0] == 0
    code, out, _ = run(capsys, "status", "--format", "json")
    [feed] = json.loads(out)["feeds"]
    assert feed["last_outcome"] == "ok" and feed["pages_failed_7d"] == 3
    assert feed["page_error"].startswith("robots.txt unavailable")
    code, out, _ = run(capsys, "status")
    line = next(x for x in out.splitlines() if x.startswith("Blocked"))
    assert "robots.txt unavailable" in line


def test_the_feed_file_is_the_source_of_truth_unless_told_to_keep_unlisted_feeds(
    env, capsys, small_site, monkeypatch
):
    site, feeds = small_site
    site.routes["/other.xml"] = Route(rss("Other", []), content_type="application/rss+xml")
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE", "1")
    db = str(env / "x.sqlite")
    both = env / "both.yaml"
    both.write_text(feeds.read_text() + f"  - url: {site.base_url}/other.xml\n    name: Other\n")
    assert run(capsys, "ingest", "--feeds", str(both), "--catalog", db)[0] == 0
    # a feed added by hand survives a run with --keep-unlisted...
    run(capsys, "feeds", "add", f"{site.base_url}/manual.xml", "--catalog", db)
    code, out, _ = run(capsys, "ingest", "--feeds", str(both), "--catalog", db, "--keep-unlisted")
    assert code == 0 and "deactivated" not in out
    # ...and the list without Other (and without the manual one) deactivates both, saying so
    hits = site.hits["/other.xml"]
    code, out, _ = run(capsys, "ingest", "--feeds", str(feeds), "--catalog", db, "--all")
    assert code == 0
    assert "2 feed(s) not in the feed list deactivated" in out and "--keep-unlisted" in out
    assert site.hits["/other.xml"] == hits  # not polled again
    code, out, _ = run(capsys, "feeds", "list", "--all", "--catalog", db)
    assert out.splitlines()[0].split()[:4] == ["url", "title", "tags", "active"]
    line = next(x for x in out.splitlines() if "/other.xml" in x)
    assert " False " in line
    code, out, _ = run(capsys, "feeds", "list", "--all", "--catalog", db, "--format", "json")
    active = {f["url"].rsplit("/", 1)[1]: f["active"] for f in json.loads(out)}
    assert active == {"feed.xml": True, "other.xml": False, "manual.xml": False}
    code, out, _ = run(capsys, "feeds", "list", "--catalog", db, "--format", "json")
    assert [f["url"] for f in json.loads(out)] == [f"{site.base_url}/feed.xml"]
    # its polls and articles stay; listing it again brings it back
    code, out, _ = run(capsys, "ingest", "--feeds", str(both), "--catalog", db, "--json")
    assert json.loads(out)["feeds_deactivated"] == []  # manual.xml is inactive already
    code, out, _ = run(capsys, "feeds", "list", "--catalog", db, "--format", "json")
    assert sorted(f["url"].rsplit("/", 1)[1] for f in json.loads(out)) == ["feed.xml", "other.xml"]


def test_allow_private_from_the_environment(env, capsys, small_site, monkeypatch):
    site, feeds = small_site
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE", "1")
    code, out, _ = run(capsys, "ingest", "--feeds", str(feeds), "--json")
    assert code == 0 and json.loads(out)["articles_loaded"] == 1
    assert (env / "data" / "newsflow.sqlite").exists()


def test_bad_feed_file_exits_2_and_changes_nothing(env, capsys, small_site):
    site, feeds = small_site
    db = env / "x.sqlite"
    assert run(capsys, "feeds", "import", str(feeds), "--catalog", str(db))[0] == 0
    bad = env / "bad.yaml"
    bad.write_text(f"feeds:\n  - url: {site.base_url}/other.xml\n  - url: 'htp:/broken'\n")
    code, out, err = run(
        capsys, "ingest", "--feeds", str(bad), "--catalog", str(db), "--allow-private"
    )
    assert code == 2
    assert str(bad) in err and "entry 2 (line 3)" in err and "invalid url" in err
    with Store(db, read_only=True) as store:
        assert store.query("select url from feeds")[1] == [(f"{site.base_url}/feed.xml",)]
        assert store.query("select count(*) from feed_polls")[1][0][0] == 0
    code, _, err = run(capsys, "feeds", "import", str(LISTS / "missing.opml"), "--catalog", str(db))
    assert code == 2 and "missing.opml: file not found" in err


def test_feeds_commands(env, capsys):
    db = str(env / "f.sqlite")
    code, out, _ = run(capsys, "feeds", "import", str(LISTS / "good.opml"), "--catalog", db)
    assert code == 0 and "3 added" in out
    code, out, _ = run(capsys, "feeds", "import", str(LISTS / "good.yaml"), "--catalog", db)
    assert code == 0 and "1 added" in out and "2 updated" in out
    code, out, _ = run(capsys, "feeds", "add", "https://example.com/rss", "--name", "Ex",
                       "--tag", "a", "--tag", "b", "--catalog", db)  # fmt: skip
    assert code == 0 and out.startswith("added")
    code, out, _ = run(capsys, "feeds", "list", "--catalog", db, "--format", "json")
    feeds = json.loads(out)
    assert len(feeds) == 5 and {"url", "title", "tags", "last_outcome"} <= set(feeds[0])
    assert next(f for f in feeds if f["url"] == "https://example.com/rss")["tags"] == ["a", "b"]
    code, out, _ = run(capsys, "feeds", "remove", "https://example.com/rss", "--catalog", db)
    assert code == 0 and "removed" in out
    code, _, err = run(capsys, "feeds", "remove", "https://example.com/rss", "--catalog", db)
    assert code == 2 and "no active feed" in err
    code, out, _ = run(capsys, "feeds", "list", "--catalog", db)
    assert "(4 rows)" in out
    code, out, _ = run(capsys, "feeds", "export", "--catalog", db, "--format", "opml")
    assert code == 0 and out.count("<outline") == 4 and "xmlUrl=" in out
    code, out, _ = run(capsys, "feeds", "export", "--catalog", db)
    assert code == 0 and out.startswith("feeds:") and out.count("- url:") == 4
    code, _, err = run(capsys, "feeds", "add", "javascript:alert(1)", "--catalog", db)
    assert code == 2 and "invalid URL" in err


def test_sql_formats_params_and_errors(env, capsys):
    db = str(env / "s.sqlite")
    run(capsys, "feeds", "import", str(LISTS / "good.yaml"), "--catalog", db)
    q = "select url, tags from feeds order by url"
    code, out, _ = run(capsys, "sql", q, "--catalog", db)
    assert code == 0 and "(3 rows)" in out and "world, uk" in out
    code, out, _ = run(capsys, "sql", q, "--catalog", db, "--format", "csv")
    assert out.splitlines()[0] == "url,tags" and len(out.splitlines()) == 4
    code, out, _ = run(capsys, "sql", q, "--catalog", db, "--format", "json")
    assert json.loads(out)[0]["tags"] == ["world", "uk"]  # feeds.bbci.co.uk sorts first
    code, out, _ = run(capsys, "sql", "select count(*) as n from feeds where language = $lang",
                       "--param", "lang=en", "--catalog", db, "--format", "json")  # fmt: skip
    assert json.loads(out) == [{"n": 1}]
    sql_file = env / "q.sql"
    sql_file.write_text("-- feeds per language\nselect language, count(*) n from feeds group by 1")
    code, out, _ = run(capsys, "sql", "-f", str(sql_file), "--catalog", db)
    assert code == 0 and "(2 rows)" in out
    code, _, err = run(capsys, "sql", "selec nonsense", "--catalog", db)
    assert code == 2 and "Parser Error" in err
    code, _, err = run(capsys, "sql", "delete from feeds", "--catalog", db)
    assert code == 2 and "read-only" in err
    code, _, err = run(capsys, "sql", "select 1", "--catalog", str(env / "none.sqlite"))
    assert code == 1 and "no database at" in err


def test_sql_is_read_only_it_writes_no_file_and_installs_nothing(env, capsys):
    db = str(env / "s.sqlite")
    run(capsys, "feeds", "import", str(LISTS / "good.yaml"), "--catalog", db)
    out_file = env / "x.csv"
    for statement, kind in [
        (f"copy feeds to '{out_file}'", "COPY"),
        (f"select 1; copy (select url from feeds) to '{out_file}' (header)", "COPY"),
        (f"explain analyze copy feeds to '{out_file}'", "EXPLAIN of COPY"),
        (f"export database '{env / 'dump'}'", "EXPORT"),
        ("install httpfs", "LOAD"),
        ("set enable_external_access = true", "SET"),
        (f"attach '{env / 'other.duckdb'}' as other", "ATTACH"),
        ("create temp table t as select 1", "CREATE"),
        ("pragma enable_profiling", "PRAGMA"),
        ("vacuum", "VACUUM"),
    ]:
        code, out, err = run(capsys, "sql", statement, "--catalog", db)
        assert code == 2, statement
        assert f"is a {kind} statement" in err and "read-only" in err, err
        assert "--format csv" in err  # the way to save a result
    code, _, err = run(capsys, "sql", "pragma create_fts_index('feeds', 'feed_id', 'url')",
                       "--catalog", db)  # fmt: skip
    assert code == 2 and "cannot tell whether" in err and "read-only" in err
    assert not out_file.exists() and not (env / "dump").exists()
    assert not (env / "other.duckdb").exists()
    # what reads still runs: queries, SHOW/DESCRIBE, EXPLAIN of a query, CALL of a table function
    for statement in ["show tables", "describe feeds", "explain select * from feeds",
                      "call ducklake_snapshots(current_database())", "summarize feeds"]:  # fmt: skip
        code, out, err = run(capsys, "sql", statement, "--catalog", db)
        assert code == 0, (statement, err)


def test_status(tagged_env, capsys, small_site, monkeypatch):
    site, feeds = small_site
    site.routes["/dead.xml"] = Route(b"gone", status=500, conditional=False)
    feeds.write_text(feeds.read_text() + f"  - url: {site.base_url}/dead.xml\n    name: Dead\n")
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE", "1")
    run(capsys, "ingest", "--feeds", str(feeds))
    code, out, _ = run(capsys, "status")
    assert code == 0
    assert "1 articles (1 extracted" in out
    dead = next(line for line in out.splitlines() if line.startswith("Dead"))
    assert "http_error" in dead and "HTTP 500" in dead
    # the run: loaded, 2 feeds polled, 1 failed, 1 new item, 1 article loaded
    assert re.search(r"loaded\s+2\s+1\s+1\s+1", out)
    # --format json is one document that json.load reads, with the same facts
    code, out, _ = run(capsys, "status", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["articles"]["all"] == 1
    assert next(f for f in doc["feeds"] if f["feed"] == "Dead")["last_outcome"] == "http_error"
    assert doc["runs"][0]["feeds_failed"] == 1 and doc["runs"][0]["articles_loaded"] == 1
    code, out, _ = run(capsys, "tags", f"{site.base_url}/a.html", "--format", "json")
    tags = json.loads(out)
    assert code == 0 and tags["url"] == f"{site.base_url}/a.html"
    assert tags["entities"] and {"entity", "label", "salience"} <= set(tags["entities"][0])
    assert {t["kind"] for t in tags["tagging"]} == {"entities", "topics"}


def test_maintain_checkpoints_and_reports_silent_feeds(env, capsys, small_site, monkeypatch):
    site, feeds = small_site
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE", "1")
    run(capsys, "ingest", "--feeds", str(feeds))
    stale = env / "data" / "runs" / "newsflow" / "20200101T000000Z-abcdef"
    stale.mkdir(parents=True)  # abandoned before polling finished: nothing to load
    os.utime(stale, (0, 0))
    code, out, _ = run(capsys, "maintain")
    assert code == 0, out
    assert "removed 1 staged run folder(s)" in out and not stale.exists()
    assert "checkpoint" in out and "all 1 active feeds healthy" in out
    code, out, _ = run(capsys, "maintain", "--silence-hours", "0.0001")
    assert code == 3
    assert "Small <" in out and "nothing new" in out
    code, _, err = run(capsys, "maintain", "--silence-hours", "0")
    assert code == 2 and "--silence-hours" in err


def test_maintain_names_a_dead_feed_and_an_empty_registry(env, capsys, small_site, monkeypatch):
    site, feeds = small_site
    gone = f"{site.base_url}/gone.xml"  # the server answers 404
    feeds.write_text(feeds.read_text() + f"  - url: {gone}\n    name: Gone\n")
    monkeypatch.setenv("NEWSFLOW_ALLOW_PRIVATE", "1")
    run(capsys, "ingest", "--feeds", str(feeds))
    code, out, _ = run(capsys, "maintain")
    assert code == 3, out
    assert "1 of 2 active feeds need attention" in out
    line = next(x for x in out.splitlines() if gone in x)
    assert line.lstrip().startswith("! Gone") and "dead" in line and "http_error 404" in line
    assert "Small <" in out  # a healthy feed is in the table too
    run(capsys, "feeds", "remove", gone)
    run(capsys, "feeds", "remove", f"{site.base_url}/feed.xml")
    code, out, _ = run(capsys, "maintain")
    assert code == 3 and "no active feeds: register some with `newsflow feeds import FILE`" in out


def test_verbose_is_accepted_after_the_command_and_errors_name_their_option(env, capsys):
    parser = build_parser()
    assert parser.parse_args(["status", "-v"]).verbose == 1
    assert parser.parse_args(["-v", "status"]).verbose == 1
    assert parser.parse_args(["feeds", "list", "-vv"]).verbose == 2
    assert parser.parse_args(["status"]).verbose == 0
    code, _, err = run(capsys, "report", "--as-of", "soon")
    assert code == 2 and "--as-of 'soon' is not a date" in err


def test_ingest_with_no_feeds_anywhere_says_how_to_get_some(env, capsys, monkeypatch):
    monkeypatch.delenv("NEWSFLOW_FEEDS", raising=False)
    db = env / "fresh.sqlite"
    code, _, err = run(capsys, "ingest", "--catalog", str(db))
    assert code == 2 and "nothing to ingest: there is no database at" in err
    assert "--feeds FILE" in err and "newsflow feeds add URL" in err
    assert not db.exists()  # nothing created


def test_bad_setting_in_environment_exits_2(env, capsys, monkeypatch):
    monkeypatch.setenv("NEWSFLOW_READ_TIMEOUT", "soon")
    code, _, err = run(capsys, "status")
    assert code == 2 and "NEWSFLOW_READ_TIMEOUT='soon'" in err


def commands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    names = []
    for name, p in sub.choices.items():
        inner = [a for a in p._actions if a.dest == "feeds_action"]
        names += [f"{name} {n}" for n in inner[0].choices] if inner else [name]
    return names


@pytest.mark.parametrize("command", commands())
def test_every_command_is_documented_in_the_cli_reference(command):
    reference = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert f"`newsflow {command}`" in reference, "run python scripts/cli_reference.py"


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "newsflow.cli", "--version"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert out.stdout.startswith("newsflow ")


def test_bad_feed_file_does_not_create_a_database(env, capsys):
    bad = env / "bad.opml"
    bad.write_text("<opml><body><outline text='x' xmlUrl='ftp://a.example/'/></body></opml>")
    code, _, err = run(capsys, "ingest", "--feeds", str(bad), "--catalog", str(env / "new.sqlite"))
    assert code == 2 and "outline at line 1 (x): invalid url" in err
    assert not (env / "new.sqlite").exists()


def test_newsroom_serves_in_the_foreground_until_terminated(tmp_path):
    import signal
    import time
    import urllib.request

    from newsflow.fetching.feedlist import load_feed_file

    feeds_out = tmp_path / "newsroom.yaml"
    proc = subprocess.Popen(
        [sys.executable, "-m", "newsflow.cli", "newsroom", "--port", "0", "--feeds-out", str(feeds_out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not feeds_out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        feeds = load_feed_file(feeds_out)
        assert len(feeds) == 10
        with urllib.request.urlopen(feeds[0].url, timeout=5) as response:
            assert b"<rss" in response.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "sample newsroom at http://127.0.0.1:" in out


def test_demo_help_names_the_database_the_demo_writes(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default <data-dir>/demo.sqlite" in out and "newsflow.sqlite" not in out
