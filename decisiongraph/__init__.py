"""DecisionGraph client-side packages (the server lives in `server`)."""
