"""Request and response models: one module per API version (``v1alpha1``, ``v1``), the
unions that pick one by ``apiVersion`` (``delete.py``, ``batch.py``), the field types they
share (``common.py``), and the internal model (``internal.py``).

Each released version is frozen: its JSON schemas are kept under ``openapi/schemas/`` and
a test fails if they change. Versions convert to the internal model, which is the only
shape the steps layer knows.
"""

from __future__ import annotations
