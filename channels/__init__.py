"""Payment channel adapters and their simulators (one package per provider)."""
