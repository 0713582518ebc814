"""Incoming activities: origin checks at the inbox, then one handler per type in the worker."""
