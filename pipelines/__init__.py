"""pipelines package (placeholder docstring; the owner rewrites it)."""
