"""Test-wide settings.

Under CI (``CI`` set) hypothesis runs derandomized: the examples are a fixed function of each
test, so a submission's CI run tests exactly what its author ran. Locally the search stays
random, which is how new counterexamples are found.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
