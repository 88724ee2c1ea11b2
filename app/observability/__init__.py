"""Observability: request ids, the per-request record, metrics and log formatting.

HTTP-side only: the domain reports through ``app.steps.observer`` and never imports this.
"""
