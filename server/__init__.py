"""DecisionGraph server: a pure core under thin adapters."""
