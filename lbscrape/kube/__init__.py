"""The Kubernetes side: the API client, discovery of load-balancer owners, labels from
owners, Warning Events and the checkpoint ConfigMap. Knows nothing of AWS."""
