"""WAL backends that ship inside the core (in-memory, for fast tests)."""
