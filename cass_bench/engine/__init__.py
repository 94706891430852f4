"""Training machinery shared by every method: the Trainer, measuring callbacks, logs, checkpoints, allocator."""
