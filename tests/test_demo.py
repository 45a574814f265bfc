"""The offline demo, as a user runs it: twice, from a fresh data folder."""

import re
import shlex
import subprocess
import sys

from newsflow.db.store import Store
from newsflow.demo.newsroom import manifest

from tests.helpers import ROOT

# The CLI and the demo need no Airflow (`make demo` installs none): the demo runs with every
# import of airflow failing.
WITHOUT_AIRFLOW = (
    "import sys; sys.modules['airflow'] = None; from newsflow.cli import main; sys.exit(main())"
)


def demo(newsflow_cli, data_dir):
    return newsflow_cli("demo", "--data-dir", str(data_dir), code=WITHOUT_AIRFLOW)


def test_demo_ingests_the_sample_newsroom_then_finds_nothing_new(tmp_path, newsflow_cli):
    pages = len(manifest()["articles"])
    first = demo(newsflow_cli, tmp_path)
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
    # What the real pages say about themselves is stored: description, lead image, keywords
    with Store(db, read_only=True) as store:
        described, imaged, keyworded = store.query(
            "select count(description), count(top_image), count(*) filter (len(keywords) > 0)"
            " from articles"
        )[1][0]
        nyt = store.rows(
            "select description, top_image, keywords from articles"
            " where title like 'Opinion | Republicans Are Following Trump to Nowhere%'"
        )[0]
    assert described >= 40 and imaged >= 40 and keyworded >= 30, (described, imaged, keyworded)
    assert nyt["description"].startswith("There’s an impeachment lesson hiding")
    assert nyt["top_image"].startswith("https://static01.nyt.com/images/2019/11/19/")
    assert "United States Politics and Government" in nyt["keywords"]
    # Titles are stored without the site's name ("... | ZDNet", "... - The New York Times").
    with Store(db, read_only=True) as store:
        suffixed = store.query(
            "select title from articles where site_name is not null and"
            " (title ilike '% - ' || site_name or title ilike '% | ' || site_name)"
        )[1]
    assert suffixed == [] and nyt["keywords"], suffixed

    # The README's queries on the demo database print what the README shows (their order
    # has a tiebreak, so a fresh run prints the same rows).
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(
        r'\$ (?:\.venv/bin/)?newsflow (sql --catalog \S+ "[^"]*")\n(.*?\(\d+ rows\))', readme, re.S
    )
    assert len(shown) >= 2
    for command, expected in shown:
        argv = shlex.split(command)
        argv[argv.index("--catalog") + 1] = str(db)
        done = subprocess.run([sys.executable, "-m", "newsflow.cli", *argv], capture_output=True,
                              text=True, timeout=120, check=False)  # fmt: skip
        got, want = done.stdout.strip().splitlines(), expected.strip().splitlines()
        if "..." in want:  # the README elides rows: the ones it shows, and the count
            cut = want.index("...")
            got, want = got[:cut] + got[-1:], want[:cut] + want[-1:]
        assert got == want, (command, done.stderr)

    second = demo(newsflow_cli, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "nothing new since the last run" in second.stdout
    assert "10 not modified" in second.stdout
    with Store(db, read_only=True) as store:
        assert store.query("select count(*) from articles")[1][0][0] == pages
        assert store.query("select count(*) from feeds")[1][0][0] == 10


def test_read_commands_find_the_demo_database_when_it_is_the_only_one(tmp_path, newsflow_cli):
    assert demo(newsflow_cli, tmp_path).returncode == 0
    out = subprocess.run(
        [sys.executable, "-m", "newsflow.cli", "sql", "--data-dir", str(tmp_path),
         "select extraction_status, count(*) as n from articles group by 1", "--format", "csv"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["extraction_status,n", f"ok,{len(manifest()['articles'])}"]
    assert "demo.sqlite" in out.stderr
