"""Old name of `_support.echo`, kept while branches written against it land."""

from _support.echo import *  # noqa: F403
