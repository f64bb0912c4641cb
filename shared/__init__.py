"""exomi: the application package (request model, policy, engine, Azure adapters)."""
