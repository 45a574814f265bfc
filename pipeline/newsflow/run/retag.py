"""Re-tag stored articles batch by batch (``newsflow retag``, the news_retag DAG): each batch is
read from the database, tagged by the tag pool, and replaces the chosen tagger's rows for its
articles in one transaction (db/retag.py), so an interrupted retag leaves every article with
either its old tags or its new ones."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from newsflow.config import Settings
from newsflow.db.store import Store
from newsflow.enrich.tag import TagCounts, TagPool, kinds_for
from newsflow.results import Result, key

__all__ = ["RetagSummary", "retag"]


@dataclass
class RetagSummary(Result):
    articles: int = 0
    batches: int = 0
    # kind -> rows removed
    replaced: dict[str, int] = field(default_factory=dict, metadata=key("rows_replaced"))
    counts: TagCounts = field(default_factory=TagCounts, metadata=key("rows_written"))
    elapsed_s: float = field(default=0.0, metadata={"digits": 2})

    def summary(self) -> str:
        counts = self.counts.as_dict()
        written = {kind: counts.get(kind, 0) for kind in self.replaced}
        return (
            f"{self.articles} articles in {self.batches} batches; rows replaced"
            f" {self.replaced}, written {written}"
        )


def retag(
    settings: Settings,
    store: Store,
    *,
    since: datetime | None = None,
    tagger: str | None = None,
    untagged: bool = False,
    batch_size: int = 500,
    pool: TagPool | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RetagSummary:
    """Re-tag stored articles (published or first seen since ``since``), ``batch_size`` at a
    time. Each batch replaces the chosen tagger's rows for its articles in one transaction."""
    own_pool = pool is None
    pool = pool or TagPool(settings)
    kinds = kinds_for(tagger, pool.local.classifier.name)  # (a new pool has no workers yet)
    started = time.monotonic()
    summary = RetagSummary()
    total = store.count_taggable(since, kinds if untagged else None)
    try:
        after = ""
        while True:
            batch = store.taggable_articles(since, after, batch_size, kinds if untagged else None)
            if not batch:
                break
            after = batch[-1]["article_id"]
            rows = pool.tag(batch, kinds)
            ids = [a["article_id"] for a in batch]
            removed = store.replace_tags(ids, rows.as_dict(), kinds)
            for kind, n in removed.items():
                summary.replaced[kind] = summary.replaced.get(kind, 0) + n
            summary.counts.add(rows, len(batch))
            summary.articles += len(batch)
            summary.batches += 1
            if progress:
                progress("retag", summary.articles, total)
    finally:
        if own_pool:
            pool.close()
    summary.elapsed_s = time.monotonic() - started
    return summary
