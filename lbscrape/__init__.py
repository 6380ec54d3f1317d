"""lbscrape: copy the CloudWatch metrics of a cluster's AWS load balancers into Prometheus."""

__version__ = "0.1.0.dev0"
