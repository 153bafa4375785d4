"""The console screens, one module each."""
