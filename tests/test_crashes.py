"""Crash safety and concurrency of `newsflow ingest`, each run a real process.

The sample newsroom (a few of its feeds) is served by this test process; every ingest is a
``python -m newsflow.cli ingest`` subprocess on its own data folder, killed, locked out or
starved of disk space as each case needs, then run again. The database it ends with must equal
the one an uninterrupted reference run produced.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from newsflow.config import FAULT_POINTS, LakeLocation, Settings
from newsflow.db.engine import StoreError
from newsflow.db.store import Store, connect, store_exists
from newsflow.demo.newsroom import Newsroom
from newsflow.run import tasks

from tests.helpers import ROOT, feed_file

SEED = 20260217
N_FEEDS = 3  # of the newsroom's feeds: 15 articles, enough for three article batches of five
KILL_POINTS = 4  # kills at a random delay after start (the injected points cover each phase)
# Kills the ingest gives itself at each of these points (NEWSFLOW_FAULT_INJECT=kill:POINT):
# after staging polls, each extracted and each tagged batch, at each step inside the load's
# transaction, after its commit, and before the staged files are removed.
INJECTED = list(FAULT_POINTS)


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env.update(
        NEWSFLOW_DATA_DIR=str(data_dir),
        NEWSFLOW_TAG_WORKERS="1",
        NEWSFLOW_EXTRACT_WORKERS="1",
        NEWSFLOW_PER_HOST_DELAY="0",
        NEWSFLOW_ARTICLE_BATCH_SIZE="5",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def ingest_processes():
    """Whatever a test does or fails to do, no ingest (stopped, waiting) or worker outlives it."""
    yield
    while STARTED:
        proc = STARTED.pop()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@dataclass
class Ingest:
    data_dir: Path
    feeds_file: Path
    env_extra: dict
    catalog: str | None = None  # default: a SQLite catalog in data_dir

    @property
    def db(self) -> Path:
        return self.data_dir / "news.sqlite"

    @property
    def lake(self) -> LakeLocation:
        if self.catalog is None:
            return LakeLocation.of(self.db)
        return LakeLocation.of(self.catalog, self.env_extra["NEWSFLOW_DATA_PATH"], self.data_dir)

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "newsflow.cli", "ingest", "--feeds", str(self.feeds_file),
            "--catalog", self.catalog or str(self.db), "--allow-private",
        ]  # fmt: skip

    def start(self, preexec_fn=None, **extra: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            self.argv(),
            env=base_env(self.data_dir, **{**self.env_extra, **extra}),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: a kill takes its workers too
            preexec_fn=preexec_fn,
        )
        STARTED.append(proc)
        return proc

    def run(self, timeout: float = 120, preexec_fn=None, **extra) -> subprocess.CompletedProcess:
        """Run an ingest to its end. Worker processes of an ingest killed by its own fault
        injection outlive it and keep its pipes open: its process group is killed after it."""
        proc = self.start(preexec_fn, **extra)
        try:
            proc.wait(timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the ingest, then whatever worker processes it left (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


# -- what a database holds ----------------------------------------------------------------------


@dataclass
class Snapshot:
    articles: list[tuple]
    entities: list[tuple]
    topics: list[tuple]
    categories: list[tuple]
    tagging: list[tuple]
    counts: dict[str, int]
    duplicates: dict[str, int]
    feeds: list[tuple]
    polls_per_feed: dict[str, int]

    @property
    def article_ids(self) -> set[str]:
        return {a[0] for a in self.articles}

    def content(self) -> tuple:
        return (self.articles, self.entities, self.topics, self.categories, self.tagging)

    def is_empty(self) -> bool:
        return not any(self.content())


DUPLICATE_CHECKS = {
    "articles": "select article_id from articles group by all having count(*) > 1",
    "article_entities": "select article_id, entity, label from article_entities"
    " group by all having count(*) > 1",
    "article_topics": "select article_id, topic_code, tagger from article_topics"
    " group by all having count(*) > 1",
    "article_tagging": "select article_id, kind from article_tagging group by all"
    " having count(*) > 1",
    "article_categories": "select article_id, category from article_categories group by all"
    " having count(*) > 1",
    "feed_polls": "select poll_id from feed_polls group by all having count(*) > 1",
    "article_bands": "select band_key, article_id from article_bands group by all"
    " having count(*) > 1",
}


def has_schema(db: Path) -> bool:
    """Whether the first migration has committed in ``db``."""
    if not store_exists(db):
        return False
    try:
        store = Store(db, read_only=True, lock_wait=0)
    except StoreError as exc:  # the lake was created, the first migration not committed
        if "schema version 0," in str(exc):
            return False
        raise
    with store:
        return bool(
            store.con.execute(
                "select count(*) from duckdb_tables()"
                " where database_name = current_database() and table_name = 'articles'"
            ).fetchone()[0]
        )


def snapshot(db: Path | LakeLocation) -> Snapshot:
    con = connect(db)
    try:

        def q(sql: str) -> list[tuple]:
            return con.execute(sql).fetchall()

        return Snapshot(
            articles=q(
                "select article_id, canonical_url, extraction_status, content_hash, word_count,"
                " story_id from articles order by all"
            ),
            entities=q(
                "select article_id, entity, label, mentions, in_title from article_entities"
                " order by all"
            ),
            topics=q("select article_id, topic_code, score from article_topics order by all"),
            categories=q("select * from article_categories order by all"),
            tagging=q(
                "select article_id, kind, tagger, status, items from article_tagging order by all"
            ),
            counts={
                t: q(f"select count(*) from {t}")[0][0]
                for t in ("articles", "article_entities", "article_topics", "feed_polls", "runs")
            },
            duplicates={name: len(q(sql)) for name, sql in DUPLICATE_CHECKS.items()},
            feeds=q(
                "select url, last_outcome, consecutive_failures, etag is not null,"
                " next_poll_at is not null, items_total from feeds order by url"
            ),
            polls_per_feed=dict(q("select url, count(*) from feed_polls group by url")),
        )
    finally:
        con.close()


def assert_same_as_reference(snap: Snapshot, ref: Snapshot, label: str) -> None:
    assert not any(snap.duplicates.values()), f"{label}: duplicate rows {snap.duplicates}"
    assert snap.article_ids == ref.article_ids, f"{label}: article ids differ"
    for table in ("articles", "article_entities", "article_topics"):
        assert snap.counts[table] == ref.counts[table], f"{label}: {table} count differs"
    assert snap.content() == ref.content(), f"{label}: stored rows differ from the reference"
    # Feed state: every feed polled and healthy, its items counted once. The number of polls
    # and runs may differ from the reference: a run killed before its polls were staged is
    # discarded and the feeds are polled again (the lost poll was never recorded), and every
    # cycle records its own runs row, so a resumed run and the cycle that resumed it are two.
    assert snap.feeds == ref.feeds, f"{label}: feed state differs"
    assert set(snap.polls_per_feed) == set(ref.polls_per_feed), f"{label}: a feed has no poll"


def staged_runs(data_dir: Path) -> list[Path]:
    runs = data_dir / "runs" / "news"
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def phase_of(data_dir: Path, db: Path) -> str:
    """Where a killed ingest was, judged by what it left behind."""
    runs = staged_runs(data_dir)
    if not db.exists():
        return "startup"
    if not runs:
        return "before staging" if not snapshot_safe(db) else "after cleanup"
    run = runs[-1]
    kinds = {k: len(list((run / k).glob("*.parquet"))) for k in ("polls", "articles", "tagging")}
    if snapshot_safe(db):
        return "after commit"
    if not kinds["polls"]:
        return "polling"
    if kinds["tagging"] == 3:
        return "loading"
    if kinds["articles"] < 3:
        return "extracting"
    return "tagging"


def snapshot_safe(db: Path) -> bool:
    """True when the database holds the run's articles."""
    try:
        con = connect(db)
    except (duckdb.Error, StoreError):
        return False
    try:
        return con.execute("select count(*) from articles").fetchone()[0] > 0
    except duckdb.Error:
        return False
    finally:
        con.close()


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def newsroom(tmp_path_factory):
    with Newsroom() as server:
        folder = tmp_path_factory.mktemp("feeds")
        yield server, feed_file(server.feeds[:N_FEEDS], folder / "feeds.yaml")


@pytest.fixture(scope="module")
def reference(newsroom, tmp_path_factory):
    """One uninterrupted ingest: its duration and the database it leaves."""
    _, feeds_file = newsroom
    ingest = Ingest(tmp_path_factory.mktemp("reference"), feeds_file, {})
    started = time.monotonic()
    done = ingest.run()
    duration = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    snap = snapshot(ingest.db)
    assert len(snap.article_ids) == 5 * N_FEEDS and snap.counts["article_entities"] > 100
    assert not staged_runs(ingest.data_dir)
    return duration, snap


# -- 1. SIGKILL anywhere ------------------------------------------------------------------------


_RNG = random.Random(SEED)
# Kills at a random share of the reference run's duration, then kills the ingest gives itself.
KILLS = [("delay", round(_RNG.uniform(0.03, 0.97), 3)) for _ in range(KILL_POINTS)]
KILLS += [("inject", point) for point in INJECTED]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("how", "when"), KILLS, ids=[f"{i:02d}-{h}-{w}" for i, (h, w) in enumerate(KILLS)]
)
def test_sigkill_at_any_point_loses_and_duplicates_nothing(
    newsroom, reference, tmp_path, how, when
):
    # Defences: staged files written whole, one transaction per load, runs resumed or
    # discarded by the next cycle. Verified: with the load's transaction split after the polls
    # (COMMIT; BEGIN), a kill inside the load leaves feed state without its articles, and the
    # run after it differs from the reference.
    _, feeds_file = newsroom
    duration, ref = reference
    ingest = Ingest(tmp_path / "kill", feeds_file, {})
    label = f"kill ({how} {when})"
    started = time.monotonic()
    if how == "delay":
        proc = ingest.start()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=when * duration)
        finished = proc.poll() is not None
        kill_group(proc)
    else:
        done = ingest.run(NEWSFLOW_FAULT_INJECT=f"kill:{when}")
        finished = done.returncode == 0
        assert done.returncode == -signal.SIGKILL, f"{label}: {done.stderr[-2000:]}"
    killed_at = time.monotonic() - started
    phase = "finished" if finished else phase_of(ingest.data_dir, ingest.db)
    # Right after the kill: the run is in the database whole, or not at all. (A kill
    # inside the very first migration leaves a file with no tables: nothing at all.)
    if ingest.db.exists() and has_schema(ingest.db):
        after_kill = snapshot(ingest.db)
        assert not any(after_kill.duplicates.values()), label
        assert after_kill.is_empty() or after_kill.content() == ref.content(), (
            f"{label}: a partial run is visible after the kill ({after_kill.counts})"
        )
    # The next ingest, not killed, completes at once and ends with the reference database.
    again = ingest.run()
    assert again.returncode == 0, f"{label}: the run after the kill failed: {again.stderr}"
    assert_same_as_reference(snapshot(ingest.db), ref, label)
    assert not staged_runs(ingest.data_dir), f"{label}: staged runs left behind"
    print(f"{label}: killed at {killed_at:.2f}s while {phase}")


# -- helpers for pausing an ingest and holding the database ---------------------------------------


def wait_stopped(proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until ``proc`` has stopped itself (NEWSFLOW_FAULT_INJECT=stop:POINT)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ingest ended before it stopped: {proc.communicate()}")
        state = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.05)
    raise AssertionError("ingest did not reach its stop point")


def finish(proc: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Reader:
    """An analyst's read-only connection to ``db`` (``newsflow.connect``), held open by another
    process until ``close``; each line on its stdin asks it for the articles it sees now.
    With ``writer=True`` it holds a writing Store instead: the store's writer lock."""

    def __init__(self, db: Path, writer: bool = False) -> None:
        opening = (
            f"from newsflow.db.store import Store; con = Store({str(db)!r}).con\n"
            if writer
            else f"import newsflow; con = newsflow.connect({str(db)!r})\n"
        )
        code = (
            "import sys\n" + opening
            + "print(con.execute('select count(*) from feeds').fetchone()[0], flush=True)\n"
            "for _ in sys.stdin:\n"
            "    print(con.execute('select count(*) from articles').fetchone()[0], flush=True)\n"
        )  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=ROOT,
        )  # fmt: skip
        self.feeds = int(self.proc.stdout.readline())

    def articles(self) -> int:
        self.proc.stdin.write("?\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


class StderrWatch:
    """Collects a process's stderr lines in a thread, so a test can wait for one."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc) -> None:
        for line in proc.stderr:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen in stderr: {''.join(self.lines)[-2000:]}")

    @property
    def text(self) -> str:
        self.thread.join(10)
        return "".join(self.lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    "point", ["load_polls", "load_articles", "load_tags", "load_commit", "load_committed"]
)
def test_sigkill_in_the_load_on_a_postgres_catalog(
    newsroom, reference, tmp_path, postgres_cluster, point
):
    # The same guarantee with the catalog in Postgres (data files in a folder, as on a shared
    # filesystem): the load's transaction is Postgres's, the kill leaves nothing or the whole
    # run, and the next cycle ends with the reference database.
    _, feeds_file = newsroom
    _, ref = reference
    ingest = Ingest(
        tmp_path / "pg",
        feeds_file,
        {"NEWSFLOW_DATA_PATH": str(tmp_path / "pg" / "lake-files")},
        catalog="postgres:" + postgres_cluster.new_database(),
    )
    killed = ingest.run(NEWSFLOW_FAULT_INJECT=f"kill:{point}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    after = snapshot(ingest.lake)
    assert not any(after.duplicates.values()), point
    assert after.is_empty() or after.content() == ref.content(), (point, after.counts)
    assert after.is_empty() == (point != "load_committed")
    again = ingest.run()
    assert again.returncode == 0, again.stderr
    assert_same_as_reference(snapshot(ingest.lake), ref, f"postgres, kill at {point}")
    assert not staged_runs(ingest.data_dir)


# -- 2. two ingests at once -----------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_ingest_waits_for_the_first_or_exits_with_a_clear_message(
    newsroom, reference, tmp_path
):
    # Defence: the ingest lock (flock on runs/<db>/ingest.lock). Verified: with
    # IngestLock.try_acquire always succeeding, the impatient ingest does not exit 1 with the
    # message and this test fails.
    _, feeds_file = newsroom
    _, ref = reference
    ingest = Ingest(tmp_path / "two", feeds_file, {})
    first = ingest.start(NEWSFLOW_FAULT_INJECT="stop:polled")
    wait_stopped(first)  # it holds the ingest lock, and has staged its polls
    impatient = ingest.run(NEWSFLOW_LOAD_LOCK_WAIT="1")
    assert impatient.returncode == 1, impatient.stderr
    assert f"another newsflow ingest (pid {first.pid}) still holds the ingest lock" in (
        impatient.stderr
    )
    assert "this one did nothing" in impatient.stderr
    patient = ingest.start(NEWSFLOW_LOAD_LOCK_WAIT="120")
    watch = StderrWatch(patient)
    watch.wait_for("is running on these staged runs")
    assert patient.poll() is None  # waiting, not failed
    os.kill(first.pid, signal.SIGCONT)
    done = finish(first)
    assert done.returncode == 0, done.stderr
    assert patient.wait(120) == 0, watch.text
    out = patient.stdout.read()  # every feed was just polled by the first: none is due
    assert "nothing polled: none of the" in out and "not due until" in out, out
    assert_same_as_reference(snapshot(ingest.db), ref, "two ingests")
    assert not staged_runs(ingest.data_dir)


@pytest.mark.slow
def test_two_ingests_started_together_give_the_reference_database(newsroom, reference, tmp_path):
    _, feeds_file = newsroom
    _, ref = reference
    ingest = Ingest(tmp_path / "together", feeds_file, {})
    procs = [ingest.start(), ingest.start()]
    results = [finish(p) for p in procs]
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert_same_as_reference(snapshot(ingest.db), ref, "two ingests together")
    assert not staged_runs(ingest.data_dir)


# -- 3. an analyst holding the database -----------------------------------------------------------


@pytest.mark.slow
def test_a_reader_holding_on_never_delays_the_load(newsroom, reference, tmp_path):
    # Defence: the store is a DuckLake; a reader attaches it read-only and takes no lock, the
    # load commits a new snapshot that the reader's open connection sees. Verified: with the
    # writer lock taken by readers too (engine.connect), the load waits and this test fails.
    _, feeds_file = newsroom
    _, ref = reference
    ingest = Ingest(tmp_path / "reader", feeds_file, {})
    proc = ingest.start(NEWSFLOW_FAULT_INJECT="stop:polled", NEWSFLOW_LOAD_LOCK_WAIT="120")
    wait_stopped(proc)
    # Between its own short uses, the ingest leaves the database to others: `newsflow sql`
    # answers while it works...
    sql = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "sql", "--catalog", str(ingest.db),
         "select count(*) as feeds from feeds"],
        env=base_env(ingest.data_dir), cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sql.returncode == 0 and str(N_FEEDS) in sql.stdout, sql.stderr
    # ...and so does a long-lived read-only connection, which does not hold the load up.
    reader = Reader(ingest.db)
    try:
        assert reader.feeds == N_FEEDS and reader.articles() == 0
        watch = StderrWatch(proc)
        os.kill(proc.pid, signal.SIGCONT)
        assert proc.wait(120) == 0, watch.text
        assert "locked" not in watch.text
        assert reader.articles() == len(ref.article_ids)  # the new snapshot, same connection
    finally:
        reader.close()
    assert_same_as_reference(snapshot(ingest.db), ref, "reader")
    assert not staged_runs(ingest.data_dir)


@pytest.mark.slow
def test_a_writer_that_stays_fails_the_load_clearly_and_the_next_run_loads_it(
    newsroom, reference, tmp_path
):
    _, feeds_file = newsroom
    _, ref = reference
    ingest = Ingest(tmp_path / "reader-stays", feeds_file, {})
    proc = ingest.start(NEWSFLOW_FAULT_INJECT="stop:polled", NEWSFLOW_LOAD_LOCK_WAIT="2")
    wait_stopped(proc)
    reader = Reader(ingest.db, writer=True)  # e.g. a `newsflow retag` that takes its time
    os.kill(proc.pid, signal.SIGCONT)
    done = finish(proc)
    assert done.returncode == 1, done.stderr
    assert (
        f"database {ingest.db} is locked by another process, a writer (still after 2s"
        in done.stderr
    )
    assert "the next `newsflow ingest` loads it" in done.stderr
    (run,) = staged_runs(ingest.data_dir)
    assert (run / "tagging").is_dir()  # extracted and tagged: kept whole for the next run
    reader.close()
    again = ingest.run()
    assert again.returncode == 0, again.stderr
    assert_same_as_reference(snapshot(ingest.db), ref, "reader stays")
    assert not staged_runs(ingest.data_dir)


@pytest.mark.slow
def test_airflow_load_fails_while_a_writer_holds_on_and_its_retry_lands(
    newsroom, reference, tmp_path, monkeypatch
):
    # The load task of the DAG: Store's lock wait, then StoreError (Airflow retries the task);
    # the staged run is kept, and the retry loads it.
    _, feeds_file = newsroom
    _, ref = reference
    ingest = Ingest(tmp_path / "airflow", feeds_file, {})
    killed = ingest.run(NEWSFLOW_FAULT_INJECT="kill:load_begin")  # leaves a whole staged run
    assert killed.returncode == -signal.SIGKILL
    (run,) = staged_runs(ingest.data_dir)
    settings = Settings(data_dir=ingest.data_dir, catalog=ingest.db, load_lock_wait=1.0)
    reader = Reader(ingest.db, writer=True)
    try:
        with pytest.raises(
            StoreError, match=r"is locked by another process, a writer \(still after 1s"
        ):
            tasks.load(settings, str(run))
        assert run.is_dir()
    finally:
        reader.close()
    result = tasks.load(settings, str(run))
    assert result.articles_loaded == 5 * N_FEEDS
    assert not run.exists()
    snap = snapshot(ingest.db)
    assert snap.article_ids == ref.article_ids and snap.content() == ref.content()


# -- 4. disk full ------------------------------------------------------------------------------------


def file_size_limit(limit: int):
    """A preexec_fn: no file of the process (and its workers) may grow past ``limit`` bytes.
    Writes past it fail with EFBIG (Python ignores SIGXFSZ), as on a full disk."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs: a disk that can really fill up. Needs root (as in CI and the dev
    container); skipped elsewhere, with the reason."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with a ballast file; return it."""
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return ballast


@pytest.mark.slow
@pytest.mark.parametrize(
    "point, writing",
    [("polled", "staged files"), ("load_begin", "the database")],
)
def test_a_full_disk_stops_the_cycle_clearly_and_the_next_run_completes(
    newsroom, reference, small_disk, point, writing
):
    # Defence: a write that fails for want of space ends the cycle with DiskFullError (exit 1,
    # "out of disk space"), the load's transaction rolls back, staged writes remove their
    # temporary files, and the next cycle resumes. Verified: without run_cycle's translation
    # into DiskFullError the message is DuckDB's or pyarrow's alone, and the check fails.
    _, feeds_file = newsroom
    _, ref = reference
    ingest = Ingest(small_disk / "data", feeds_file, {})
    proc = ingest.start(NEWSFLOW_FAULT_INJECT=f"stop:{point}")
    wait_stopped(proc)
    ballast = fill(small_disk)  # the disk fills up while it is writing {writing}
    os.kill(proc.pid, signal.SIGCONT)
    done = finish(proc)
    assert done.returncode == 1, (writing, done.stderr)
    assert "out of disk space" in done.stderr and "No space left on device" in done.stderr
    assert "newsflow ingest` again" in done.stderr or "the next" in done.stderr
    assert not list(small_disk.rglob(".*.tmp")), "a temporary file was left behind"
    # Once there is space again the store opens, unharmed (while the disk is full even a reader
    # may be refused: SQLite's WAL mode needs room for its shared-memory file, and the error
    # then says "out of disk space").
    ballast.unlink()
    with connect(ingest.db) as con:
        assert con.execute("select count(*) from articles").fetchone()[0] == 0
    again = ingest.run()
    assert again.returncode == 0, again.stderr
    assert_same_as_reference(snapshot(ingest.db), ref, f"disk full while writing {writing}")
    assert not staged_runs(ingest.data_dir)
