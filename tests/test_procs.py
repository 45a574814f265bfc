"""Worker pools started from a host program whose __main__ must not run again (like the
`airflow` command a scheduled task runs under)."""

import subprocess
import sys
import textwrap

from tests.helpers import ROOT

HOST = textwrap.dedent(
    """
    import sys
    if __name__ != "__main__":
        # What `airflow`'s entry point does when a worker re-runs it: fail at import.
        raise SystemExit("host __main__ re-run in a worker")
    sys.path.insert(0, sys.argv[1])
    import asyncio
    from newsflow.config import Settings
    from newsflow.fetching.extract import ExtractorPool
    from newsflow.enrich.tag import TagPool

    import gzip
    from newsflow.demo.newsroom import DATA
    html = gzip.decompress(sorted((DATA / "articles").glob("*.html.gz"))[0].read_bytes())
    with ExtractorPool(2, 10.0) as pool:
        page = asyncio.run(pool.extract(html, "http://example.org/a"))
    print("extract", page.ok, page.error)
    articles = [{"article_id": f"{i:032d}", "title": "", "text": page.text or "", "language": "en",
                 "feed_categories": []} for i in range(8)]
    with TagPool(Settings(tag_workers=2)) as pool:
        rows = pool.tag(articles)
    print("tag", sorted({r["status"] for r in rows.tagging}), len(rows.entities))
    """
)


def test_pools_do_not_rerun_the_host_main(tmp_path):
    host = tmp_path / "host_program.py"
    host.write_text(HOST, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(host), str(ROOT)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines() if " " in line)
    assert lines["extract"].startswith("True")
    assert lines["tag"].startswith("['ok']")
    assert "re-run in a worker" not in done.stderr
