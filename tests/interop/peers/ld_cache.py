"""Pre-fill bovine's JSON-LD context cache so that no peer ever downloads a context.

bovine (and fediverse-pasture, which loads contexts through bovine.jsonld) reads
`bovine_jsonld_cache.sqlite` from its working directory at import time: one table
`jsonld(url TEXT PRIMARY KEY, context TEXT)` whose `context` is the JSON of the document's
`@context` value (bovine/jsonld/cache.py, bovine 0.5.19). A URL missing from the cache is
fetched with requests; inside the scenario's namespace that fails at once and bovine caches an
empty context, so pre-filling is what keeps the peers' JSON-LD processing faithful.

Usage: python ld_cache.py LD_CONTEXTS_JSON DIRECTORY
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

# Other spellings under which the same documents are requested.
ALIASES = {
    "https://www.w3.org/ns/activitystreams": [
        "http://www.w3.org/ns/activitystreams",
        "https://www.w3.org/ns/activitystreams.jsonld",
    ],
    "https://w3id.org/security/v1": ["http://w3id.org/security/v1"],
    "https://schema.org/docs/jsonldcontext.jsonld": ["http://schema.org", "https://schema.org"],
}


def fill(contexts_file: Path, directory: Path) -> int:
    documents = json.loads(contexts_file.read_text(encoding="utf-8"))
    rows: dict[str, str] = {}
    for url, document in documents.items():
        # The file maps a URL to the document's `@context` value (a whole document is accepted too).
        if isinstance(document, dict) and "@context" in document:
            context = document["@context"]
        else:
            context = document
        encoded = json.dumps(context)
        rows[url] = encoded
        for alias in ALIASES.get(url, []):
            rows.setdefault(alias, encoded)
    connection = sqlite3.connect(directory / "bovine_jsonld_cache.sqlite")
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS jsonld (url TEXT PRIMARY KEY, context TEXT)")
        connection.executemany("INSERT OR REPLACE INTO jsonld VALUES (?, ?)", rows.items())
        connection.commit()
    finally:
        connection.close()
    return len(rows)


if __name__ == "__main__":
    print(fill(Path(sys.argv[1]), Path(sys.argv[2])))
