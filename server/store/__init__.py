"""PostgreSQL adapters implementing the service ports (asyncpg; Piccolo runs migrations)."""
