"""Typed configuration: the shared sections, the recipe base, loading, checks and the packaged files."""
