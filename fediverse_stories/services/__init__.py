"""Use cases: what the CLI, the pages and the worker ask the instance to do."""
