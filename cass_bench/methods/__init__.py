"""Pretraining methods: the contract, shared parts, the registry, CASS and the baselines."""
