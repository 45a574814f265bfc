"""newsflow: news feeds to a queryable DuckDB database."""

__version__ = "0.1.0"
