"""Old name of `_support.jupyter`, kept while branches written against it land."""

from _support.jupyter import *  # noqa: F403
