"""An S3-compatible server on 127.0.0.1 for the tests of a store whose data files are on object
storage: moto's S3 in its server mode (a real HTTP server speaking the S3 protocol, which
DuckDB's httpfs extension talks to as it would to AWS or MinIO)."""

from __future__ import annotations

import logging

BUCKET = "newsflow-test"
KEY_ID, SECRET = "newsflow-test-key", "newsflow-test-secret"


class S3Server:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.endpoint = ""

    def start(self) -> S3Server:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.client().create_bucket(Bucket=BUCKET)
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the store's data files (the variables of any S3
        client)."""
        return {
            "AWS_ACCESS_KEY_ID": KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
            region_name="us-east-1",
        )

    def keys(self, prefix: str) -> list[str]:
        """The object keys under ``prefix`` (every page of the listing)."""
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def filesystem(self):
        """pyarrow's S3 filesystem on this server (how Polars, pandas or Spark read the
        Parquet files)."""
        from pyarrow import fs

        host = self.endpoint.removeprefix("http://")
        return fs.S3FileSystem(
            access_key=KEY_ID,
            secret_key=SECRET,
            endpoint_override=host,
            scheme="http",
            region="us-east-1",
        )
