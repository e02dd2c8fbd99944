"""The cluster configuration file (CONDUCTOR_CONFIG): partitions, QOS, priority weights and
backfill settings, read from TOML into typed, validated records (`model`), loaded and reloaded
(`loader`, `live`), and written from an existing slurm.conf (`slurmconf`)."""
