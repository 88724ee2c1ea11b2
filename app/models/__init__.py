"""Request and response models: one module per API version, one internal model.

Each released version (``v1alpha1``, ``v1``) is frozen: its JSON schema is kept under
``openapi/schemas/`` and a test fails if it changes. Versions convert to the internal model
in ``internal.py``, which is the only shape the steps layer knows.
"""

from __future__ import annotations
