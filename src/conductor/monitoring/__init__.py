"""What an operator watches: Prometheus metrics, the log of job transitions, and the samples of
the cluster's load that the dashboard charts."""
