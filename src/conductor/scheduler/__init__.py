"""The scheduler: the pure policy (who runs where, who waits and why), dependency resolution,
the loop that applies the policy's decisions through the store, and the lock that lets one
server of many schedule at a time."""
