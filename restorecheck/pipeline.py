"""Orchestration of snapshot / compare / backup / verify / drill; owns the ExitStack.

Library first: every CLI command is one call to a function here, which returns a value
(a ``Manifest``, a ``Report``) and raises a ``RestorecheckError`` only when it could not do its
job. Engines are picked with ``engines.engine_for`` / ``engines.get_engine``.
"""

from __future__ import annotations

# --- snapshot and compare (issue 4) ---------------------------------------------------------

# --- backup, verify and drill (issue 5) -----------------------------------------------------
