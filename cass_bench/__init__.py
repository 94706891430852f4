"""cass-bench: a harness that tests the claims of CASS against DINO and BYOL under one protocol."""

__version__ = "0.1.0"
