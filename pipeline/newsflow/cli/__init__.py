"""The ``newsflow`` command line: a thin edge over the library.

``parser`` declares the commands and options, ``commands`` runs them, ``output`` prints.
Exit codes: 0 done (feeds that failed are recorded, not fatal), 2 bad input (the message names
the file, entry or setting), 1 a systemic fault (database unusable, unexpected error), 3 from
``maintain`` when a feed needs attention (dead, failing, never worked, silent) or none is
registered.
"""

from __future__ import annotations

import logging
import os
import sys

from newsflow.cli.output import UsageError
from newsflow.cli.parser import build_parser
from newsflow.config import ConfigError
from newsflow.db.engine import StoreError
from newsflow.enrich.entities import ModelNotInstalled
from newsflow.fetching.feedlist import FeedFileError
from newsflow.fetching.urls import InvalidURL

LOGGER = logging.getLogger("newsflow")

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command == "feeds" and not args.feeds_action:
        parser.parse_args(["feeds", "--help"])
    try:
        return args.func(args)
    except (UsageError, FeedFileError, ConfigError, InvalidURL, ModelNotInstalled) as exc:
        print(f"newsflow: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"newsflow: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("newsflow: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a systemic fault: say what it was; -v shows where
        LOGGER.debug("unexpected error", exc_info=True)
        print(f"newsflow: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not args.verbose:
            print("newsflow: run with -v for the traceback", file=sys.stderr)
        else:
            LOGGER.error("traceback", exc_info=True)
        return 1
