"""Importing this module registers every job kind and inbound activity handler."""

from fediverse_stories.inbound import dispatch, follows, interactions, objects, reports
from fediverse_stories.outbound import deliver

__all__ = ["deliver", "dispatch", "follows", "interactions", "objects", "reports"]
