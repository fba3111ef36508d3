"""Observability: structured logs, OpenTelemetry traces, Prometheus metrics, admin endpoints."""
