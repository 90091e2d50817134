"""Real test infrastructure shipped with the project (servers on ephemeral ports)."""
