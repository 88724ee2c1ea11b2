"""Observability: request ids, the per-request record, metrics and log formatting.

HTTP-side only: routes report what the domain's results say; the domain never imports this.
"""
