"""Configuration in PostgreSQL: schema migrations and the config store."""
