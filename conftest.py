"""Session-wide test setup shared by tests/ and the notebooks run under nbmake."""

from __future__ import annotations

import os
import tempfile

# Notebooks start labs on the default home; give the whole test session a fresh one so a lab the
# developer has open (which holds its history file) never collides with the suite.
if "STIGMER_NB_HOME" not in os.environ:
    os.environ["STIGMER_NB_HOME"] = tempfile.mkdtemp(prefix="stigmer-nb-tests-")
