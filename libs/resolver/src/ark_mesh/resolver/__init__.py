"""The QueryReconciler: resolves a Query through ports, never through bus or kube directly."""
