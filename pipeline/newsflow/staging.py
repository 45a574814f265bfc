"""Staged files: the Parquet hand-off between stages, under one directory per run.

    <runs path>/runs/<database name>/<run_id>/
        run.json                 who started the run and when
        plan/                    the plan of an Airflow run (feed batches, feeds to register)
        polls/<batch>.parquet    one row per feed poll, with the feed's new polling state
        items/<batch>.parquet    items that were new when their feed was polled
        articles/<batch>.parquet fetched and extracted articles, ready to load
        entities/, topics/, categories/, tagging/<batch>.parquet
                                 the tag rows of an articles batch; tagging/ is written last,
                                 so its presence marks the batch as tagged

The runs path is the data folder by default, or a bucket (``NEWSFLOW_RUNS_PATH=s3://BUCKET/
FOLDER``) when the tasks of one run execute on machines that share no folder (a Celery
cluster): ``StagedPath`` is the one way to these files, on a local disk or in a bucket, through
pyarrow's file systems. Every file is written whole or not at all: locally to a temporary name
then renamed, on S3 by one upload that is visible only once complete (a write that fails, e.g.
on a full disk, leaves nothing). Only ``store.load_run`` turns these files into database rows.
A run directory without ``polls/`` files never finished polling and is discarded by the next
cycle; one with them is completed and loaded.
"""

from __future__ import annotations

import contextlib
import errno
import fnmatch
import functools
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pyarrow is imported on first use: Settings (config.py) imports this module
    import pyarrow as pa
    import pyarrow.fs as pafs


class BucketUnreachable(OSError):
    """A bucket's service cannot be reached or refused a request (not a missing file): the
    message names the path; what is staged or stored stays as it was, so a retry once the
    service is back continues."""


def _remote_errors(method):
    """Re-raise a failed request to a bucket as BucketUnreachable naming the path (pyarrow's
    own message names an object key and a curl code, not what newsflow was doing)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError):
            raise
        except OSError as exc:
            if not self._remote or isinstance(exc, BucketUnreachable) or is_disk_full(exc):
                raise
            raise BucketUnreachable(
                f"{self}: the bucket cannot be reached ({exc}); nothing staged or stored is"
                " lost, and a retry continues once it answers"
            ) from exc

    return wrapper


class StagedPath:
    """A file or folder of staged runs, on the local disk or in an S3 bucket: the few things
    of ``pathlib.Path`` the stages use (``/``, ``exists``, ``read_text``, ``glob``, ...), each
    done through pyarrow's file system for its place. ``str()`` gives the path or
    ``s3://BUCKET/KEY``."""

    fs: pafs.FileSystem
    _path: str
    _remote: bool

    def __init__(self, where: str | os.PathLike[str] | StagedPath) -> None:
        if isinstance(where, StagedPath):
            self.fs, self._path, self._remote = where.fs, where._path, where._remote
            return
        text = os.fspath(where)
        self._remote = text.startswith("s3://")
        if self._remote:
            self.fs = _s3()
            self._path = text[len("s3://") :].rstrip("/")
        else:
            self.fs = _local()
            self._path = str(Path(text).absolute())

    def _at(self, path: str) -> StagedPath:
        other = object.__new__(StagedPath)
        other.fs, other._path, other._remote = self.fs, path, self._remote
        return other

    @property
    def on_object_storage(self) -> bool:
        return self._remote

    def __truediv__(self, name: str) -> StagedPath:
        return self._at(f"{self._path}/{name}")

    def __str__(self) -> str:
        return f"s3://{self._path}" if self._remote else self._path

    def __fspath__(self) -> str:
        return str(self.local())

    def __repr__(self) -> str:
        return f"StagedPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, os.PathLike) and not isinstance(other, StagedPath):
            other = StagedPath(other)
        return isinstance(other, StagedPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __lt__(self, other: StagedPath) -> bool:
        return str(self) < str(other)

    @property
    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        name = self.name
        return name.rsplit(".", 1)[0] if "." in name[1:] else name

    @property
    def parent(self) -> StagedPath:
        return self._at(self._path.rsplit("/", 1)[0])

    @_remote_errors
    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self._path)

    def exists(self) -> bool:
        from pyarrow.fs import FileType

        return self._info().type != FileType.NotFound

    def is_dir(self) -> bool:
        from pyarrow.fs import FileType

        return self._info().type == FileType.Directory

    def mtime(self) -> float | None:
        """When the file was last written (seconds since the epoch); None for a folder in a
        bucket, which has no time of its own."""
        info = self._info()
        return info.mtime.timestamp() if info.mtime is not None else None

    @_remote_errors
    def iterdir(self) -> list[StagedPath]:
        """What the folder holds (nothing when it does not exist), sorted by name."""
        from pyarrow.fs import FileSelector

        selector = FileSelector(self._path, allow_not_found=True)
        return sorted(self._at(i.path.rstrip("/")) for i in self.fs.get_file_info(selector))

    def glob(self, pattern: str) -> list[StagedPath]:
        """The folder's entries whose name matches ``pattern`` (one level, like
        ``Path.glob("*.parquet")``), without the temporary files of writes in progress."""
        return [
            p for p in self.iterdir()
            if fnmatch.fnmatch(p.name, pattern) and not p.name.startswith(".")
        ]  # fmt: skip

    @_remote_errors
    def files_below(self) -> dict[str, StagedPath]:
        """Every file under this folder, at any depth, by its path relative to it."""
        from pyarrow.fs import FileSelector, FileType

        selector = FileSelector(self._path, recursive=True, allow_not_found=True)
        return {
            info.path[len(self._path) + 1 :]: self._at(info.path)
            for info in self.fs.get_file_info(selector)
            if info.type == FileType.File
        }

    def mkdir(self, parents: bool = True, exist_ok: bool = True) -> None:
        """Create the folder (a bucket has no folders: nothing to do there)."""
        if not self._remote:
            Path(self._path).mkdir(parents=parents, exist_ok=exist_ok)

    @_remote_errors
    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self._path) as stream:
            return stream.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file at once: a reader sees all of it or none."""
        _write_whole(self, lambda tmp: tmp._put(data))

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    @_remote_errors
    def _put(self, data: bytes) -> None:
        with self.fs.open_output_stream(self._path) as out:
            out.write(data)

    @_remote_errors
    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self._path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmtree(self) -> None:
        """Remove the folder and all it holds (nothing when it is gone already)."""
        if self._remote:
            with contextlib.suppress(FileNotFoundError, OSError):
                self.fs.delete_dir(self._path)
        else:
            shutil.rmtree(self._path, ignore_errors=True)

    @_remote_errors
    def read_table(self, **options) -> pa.Table:
        import pyarrow.parquet as pq

        return pq.read_table(self._path, filesystem=self.fs, **options)

    @_remote_errors
    def write_table(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        _write_whole(
            self,
            lambda tmp: pq.write_table(table, tmp._path, filesystem=tmp.fs, compression="zstd"),
        )

    @_remote_errors
    def upload(self, source: Path) -> None:
        """Copy the local file ``source`` here, streamed, whole or not at all."""
        from pyarrow.fs import copy_files

        _write_whole(
            self,
            lambda tmp: copy_files(
                str(source), tmp._path, source_filesystem=_local(), destination_filesystem=tmp.fs
            ),
        )

    @_remote_errors
    def download(self, target: Path) -> None:
        """Copy this file to the local ``target``, streamed: to a temporary name renamed into
        place, so a reader of ``target`` never sees part of it."""
        from pyarrow.fs import copy_files

        _write_whole(
            StagedPath(target),
            lambda tmp: copy_files(
                self._path, tmp._path, source_filesystem=self.fs, destination_filesystem=tmp.fs
            ),
        )

    def local(self) -> Path:
        """The local path of a file on this machine's disk (not for one in a bucket)."""
        if self._remote:
            raise ValueError(f"{self} is in a bucket, not on this machine's disk")
        return Path(self._path)


@functools.cache
def _local() -> pafs.LocalFileSystem:
    from pyarrow.fs import LocalFileSystem

    return LocalFileSystem()


def _s3() -> pafs.S3FileSystem:
    """The S3 file system of this process's ``AWS_*`` variables: one client per set of them,
    not one for every path."""
    return _s3_cached(tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))))


@functools.cache
def _s3_cached(env: tuple[tuple[str, str], ...]) -> pafs.S3FileSystem:
    return s3_filesystem(dict(env))


def s3_filesystem(env: Mapping[str, str], **extra) -> pafs.S3FileSystem:
    """pyarrow's S3 file system from the variables every S3 client reads (the lake's data
    files are reached with the same ones): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    (AWS_SESSION_TOKEN), AWS_REGION and, for an S3-compatible service, AWS_ENDPOINT_URL_S3 or
    AWS_ENDPOINT_URL; ``extra`` options for pyarrow (e.g. ``allow_bucket_creation``)."""
    from pyarrow import fs as pafs

    options: dict = {
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        # A failing bucket fails the task within seconds (Airflow retries it), not after
        # the client's default of several minutes of retries.
        "connect_timeout": 10,
        "request_timeout": 30,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
    }
    if env.get("AWS_ACCESS_KEY_ID"):
        options["access_key"] = env["AWS_ACCESS_KEY_ID"]
        options["secret_key"] = env.get("AWS_SECRET_ACCESS_KEY", "")
        if env.get("AWS_SESSION_TOKEN"):
            options["session_token"] = env["AWS_SESSION_TOKEN"]
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        options["endpoint_override"] = host.rstrip("/")
        options["scheme"] = scheme
    return pafs.S3FileSystem(**options, **extra)


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class RunDir:
    """The staged files of one run."""

    def __init__(self, path: str | os.PathLike[str] | StagedPath) -> None:
        self.path = StagedPath(path)

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(
        cls, runs_dir: str | os.PathLike[str] | StagedPath, trigger: str, run_id: str | None = None
    ) -> RunDir:
        now = datetime.now(UTC)
        run = cls(StagedPath(runs_dir) / (run_id or new_run_id(now)))
        for sub in ("polls", "items", "articles"):
            (run.path / sub).mkdir()
        if not (run.path / "run.json").exists():
            (run.path / "run.json").write_text(
                json.dumps({"started_at": now.isoformat(), "trigger": trigger})
            )
        return run

    def info(self) -> dict:
        try:
            return json.loads((self.path / "run.json").read_text())
        except (OSError, ValueError):
            return {}

    def started_at(self) -> float | None:
        """When the run was created (seconds since the epoch), from run.json's time."""
        return (self.path / "run.json").mtime() if (self.path / "run.json").exists() else None

    def files(self, kind: str) -> list[StagedPath]:
        return (self.path / kind).glob("*.parquet")

    def has(self, kind: str, batch: str) -> bool:
        return (self.path / kind / f"{batch}.parquet").exists()

    def write(self, kind: str, batch: str, rows: list[dict], schema: pa.Schema) -> StagedPath:
        target = self.path / kind / f"{batch}.parquet"
        target.parent.mkdir()
        import pyarrow as pa

        target.write_table(pa.Table.from_pylist(rows, schema=schema))
        return target

    def read(self, kind: str, schema: pa.Schema) -> list[dict]:
        rows: list[dict] = []
        for path in self.files(kind):
            rows.extend(path.read_table(schema=schema).to_pylist())
        return rows

    def remove(self) -> None:
        self.path.rmtree()

    @contextlib.contextmanager
    def on_local_disk(self) -> Iterator[RunDir]:
        """This run with its files on this machine's disk, for DuckDB to read: itself when
        they are, else a copy in a temporary folder (removed after)."""
        if not self.path.on_object_storage:
            yield self
            return
        with tempfile.TemporaryDirectory(prefix="newsflow-run-") as tmp:
            copy = Path(tmp) / self.run_id
            for name, file in self.path.files_below().items():
                target = copy / name
                target.parent.mkdir(parents=True, exist_ok=True)
                file.download(target)
            copy.mkdir(parents=True, exist_ok=True)
            yield RunDir(copy)


def pending_runs(runs_dir: str | os.PathLike[str] | StagedPath) -> list[RunDir]:
    """Run directories left behind by an earlier, interrupted cycle (oldest first)."""
    return [RunDir(p) for p in StagedPath(runs_dir).iterdir() if p.is_dir()]


def _write_whole(path: StagedPath, write: Callable[[StagedPath], object]) -> None:
    """``write`` the file at ``path`` so that a reader sees all of it or none: locally to a
    temporary name, then renamed; in a bucket directly (an upload is visible only once
    complete). A write that fails (e.g. a full disk) removes its partial temporary file."""
    if path.on_object_storage:
        write(path)
        return
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        os.replace(tmp.local(), path.local())
    except BaseException:
        tmp.local().unlink(missing_ok=True)
        raise


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_DISK_FULL_TEXT = (
    "no space left on device",
    "file too large",
    "disk quota exceeded",
    "database or disk is full",  # SQLite's SQLITE_FULL (the lake's catalog)
)
# SQLite reports some writes that fail for want of space (its -shm and -wal files) only as an
# I/O error: with this little space left where it writes, that is what it means.
_NEARLY_FULL_BYTES = 1 << 20


def is_disk_full_at(exc: BaseException, *paths: Path) -> bool:
    """``is_disk_full``, or an I/O error while one of ``paths``' file systems has (almost) no
    space left."""
    if is_disk_full(exc):
        return True
    if "i/o error" not in str(exc).lower():
        return False
    for path in paths:
        folder = Path(path)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        try:
            stat = os.statvfs(folder)
        except OSError:
            continue
        if stat.f_bavail * stat.f_frsize < _NEARLY_FULL_BYTES:
            return True
    return False


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, a pyarrow or a DuckDB error) means the disk is full."""
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return True
    return any(text in str(exc).lower() for text in _DISK_FULL_TEXT)
