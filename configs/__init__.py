"""The packaged YAML configs (installed as ``cass_bench.configs``; read with importlib.resources)."""
