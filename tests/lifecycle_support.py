"""Old name of `_support.lifecycle`, kept while branches written against it land."""

from _support.lifecycle import *  # noqa: F403
