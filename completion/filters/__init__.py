"""ghostfill subpackage."""
