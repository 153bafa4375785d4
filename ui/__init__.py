"""NiceGUI operator console: a client of the public GraphQL API only."""
