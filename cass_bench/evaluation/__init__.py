"""The shared downstream stage: fine-tuning, frozen-feature probes, metrics and the chance test."""
