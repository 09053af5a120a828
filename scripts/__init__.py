"""Data-building command-line tools (importable for tests)."""
