"""Redis pub/sub: small "tenant T reached position P" notices, never the data itself."""
