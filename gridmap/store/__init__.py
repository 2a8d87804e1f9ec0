"""The store: ORM models, engines and sessions for PostGIS and the embedded SQLite default."""
