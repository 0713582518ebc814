"""Outgoing activities: build one for a local event, store it, fan it out into delivery jobs."""
