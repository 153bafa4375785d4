"""arq worker settings and thin job functions over server.service."""
