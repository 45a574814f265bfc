"""``newsflow report``: ``data`` reads what the page shows (``sql/report/``), ``charts`` draws
it, ``page`` lays out one self-contained HTML page."""

from newsflow.analysis.report.page import DEFAULT_DAYS, build_report, write_report

__all__ = ["DEFAULT_DAYS", "build_report", "write_report"]
