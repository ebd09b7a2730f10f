"""Distributed engines that run a stage's shards (Ray)."""
