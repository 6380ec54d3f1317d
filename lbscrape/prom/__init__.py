"""The Prometheus side: series and labels, remote write (encode, send, deliver), and
OpenMetrics files. Knows nothing of Kubernetes or AWS."""
