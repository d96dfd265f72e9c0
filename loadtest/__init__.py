"""Locust load tests for the prediction endpoints: one scenario per file, an SLO gate that sets the exit code."""
