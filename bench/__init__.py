"""Benchmarks of the webhook path, run on loopback against PostgreSQL and Redis."""
