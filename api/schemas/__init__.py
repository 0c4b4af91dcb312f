"""Request and response models of the HTTP API, one module per domain.

One naming scheme: `XCreate` is what a client sends, `XPublic` what it gets back.
"""

from __future__ import annotations

#: The largest cursor (event seq, audit id): both are 64-bit integers in the store.
MAX_CURSOR = 2**63 - 1
