"""What a run keeps on disk: the run folder (lock, remembered config), atomic files and JSON Lines, the ledger, checkpoints, content hashes, the run manifest, redaction of credentials."""
