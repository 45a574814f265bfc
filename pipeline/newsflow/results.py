"""Typed results: what a step or a task returns, as a dataclass instead of a string-keyed dict.

``Result.as_dict()`` is the JSON form (``newsflow ... --json``, Airflow's XCom), built from the
dataclass's fields: a field's metadata may rename its key (``key``), round it (``digits``) or
leave it out (``hidden``). ``Result.summary()`` is the closing line of a step's log.
``Counters`` add up field by field (``merge``), for counts kept per batch and summed per run.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self


def _plain(value: Any) -> Any:
    """``value`` with every Result in it turned into its dict (lists and dicts walked)."""
    if isinstance(value, Result):
        return value.as_dict()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def key(name: str, **more: Any) -> Any:
    """Field metadata: the field's key in ``as_dict`` is ``name``."""
    return {"key": name, **more}


@dataclass
class Result:
    """A typed result; subclasses are dataclasses."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata.get("hidden"):
                continue
            value = getattr(self, f.name)
            digits = f.metadata.get("digits")
            if digits is not None and value is not None:
                value = round(value, digits)
            out[f.metadata.get("key", f.name)] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """The result ``as_dict`` gave (e.g. an XCom read back by the next task); fields that
        are results themselves are not rebuilt, and keys it does not know are ignored."""
        values = {}
        for f in fields(cls):
            name = f.metadata.get("key", f.name)
            if f.init and name in data:
                values[f.name] = data[name]
        return cls(**values)

    def summary(self) -> str:
        """The result in one line: its non-zero numbers, by name."""
        parts = []
        for name, value in self.as_dict().items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not value:
                continue
            parts.append(f"{name.replace('_', ' ')} {value:,}")
        return ", ".join(parts) or "nothing to do"


@dataclass
class Counters(Result):
    """Counts that add up: ``merge`` adds another's to these, field by field (a dict adds key
    by key; a field with ``merge="max"`` metadata keeps the larger)."""

    def merge(self, other: Self) -> None:
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.metadata.get("merge") == "max":
                setattr(self, f.name, max(mine, theirs))
            elif isinstance(mine, dict):
                for k, v in theirs.items():
                    mine[k] = mine.get(k, 0) + v
            else:
                setattr(self, f.name, mine + theirs)
