"""The offline demo, as a user runs it: twice, from a fresh data folder."""

import subprocess
import sys

from newsflow.db.store import Store
from newsflow.demo.newsroom import manifest


def demo(data_dir):
    return subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "demo", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_demo_ingests_the_sample_newsroom_then_finds_nothing_new(tmp_path):
    pages = len(manifest()["articles"])
    first = demo(tmp_path)
    assert first.returncode == 0, first.stderr
    assert f"{pages} new of {pages} seen" in first.stdout
    assert f"articles  {pages} loaded" in first.stdout
    assert "published         feed" in first.stdout and "(8 rows)" in first.stdout
    db = tmp_path / "demo.sqlite"
    with Store(db, read_only=True) as store:
        statuses = dict(
            store.query("select extraction_status, count(*) from articles group by 1")[1]
        )
        assert statuses == {"ok": pages}
        sample = store.rows(
            "select * from articles where canonical_url like '%sample-boat-strike%'"
        )
    assert "Nicolas Maduro" in sample[0]["text"]

    second = demo(tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing new since the last run" in second.stdout
    assert "10 not modified" in second.stdout
    with Store(db, read_only=True) as store:
        assert store.query("select count(*) from articles")[1][0][0] == pages
        assert store.query("select count(*) from feeds")[1][0][0] == 10


def test_read_commands_find_the_demo_database_when_it_is_the_only_one(tmp_path):
    assert demo(tmp_path).returncode == 0
    out = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "sql", "--data-dir", str(tmp_path),
         "select extraction_status, count(*) as n from articles group by 1", "--format", "csv"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["extraction_status,n", f"ok,{len(manifest()['articles'])}"]
    assert "demo.sqlite" in out.stderr
