"""A reusable ActivityPub protocol package: signatures, keys, guarded fetching, WebFinger, delivery.

It depends only on the standard library, httpx, idna and cryptography, and never imports the
application (`fediverse_stories`). See README.md beside this file.
"""
