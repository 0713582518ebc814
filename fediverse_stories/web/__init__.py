"""HTTP endpoints: HTML pages, forms, health; the ActivityPub endpoints join them here."""
