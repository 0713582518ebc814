"""Storage: SQLAlchemy 2.0 typed models, the async engine and sessions, migrations."""
