"""newsflow: news feeds to a queryable DuckLake (DuckDB over a catalog and Parquet files).

``newsflow.connect()`` returns a read-only DuckDB connection to the store, views included.
"""

__version__ = "0.1.0"


def connect(location=None, *, read_only: bool = True):
    """A DuckDB connection to the store (``newsflow.db.store.connect``): the lake is its
    default catalog, with the views; ``location`` defaults to the ``NEWSFLOW_*`` settings."""
    from newsflow.db.store import connect as _connect  # keeps `import newsflow` light

    return _connect(location, read_only=read_only)
