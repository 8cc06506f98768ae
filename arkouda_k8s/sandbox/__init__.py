"""The sandbox: a simulated Kubernetes cluster for tests and tutorials (not Kubernetes)."""
