"""What leaves flowgauge: records and their schemas, Prometheus metrics, chat messages and
their delivery, Grafana dashboards."""
