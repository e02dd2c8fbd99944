"""The use cases every entry point calls: the HTTP routes, the submit fast path and slurmrestd."""
