"""The pure, framework-free core of DecisionGraph: standard library only, no I/O."""
