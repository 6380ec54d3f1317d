"""The AWS side: sessions and clients, resolving owners to load balancers and target
groups, GetMetricData, and what it costs. Knows nothing of Kubernetes."""
