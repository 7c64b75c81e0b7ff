"""extensions/install.py puts the autoload and the JupyterLab setting into an environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from traitlets.config.loader import PyFileConfigLoader

INSTALL = Path(__file__).resolve().parents[2] / "extensions" / "install.py"


def test_install_is_idempotent_and_merges(tmp_path: Path) -> None:
    overrides = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True)
    overrides.write_text(json.dumps({"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}))
    for _ in range(2):
        subprocess.run(
            [sys.executable, str(INSTALL), "--prefix", str(tmp_path)], check=True, capture_output=True
        )
    settings = json.loads(overrides.read_text())
    assert settings["@jupyter-widgets/jupyterlab-manager:plugin"] == {"saveState": True}
    assert settings["@jupyterlab/apputils-extension:themes"] == {"theme": "JupyterLab Dark"}
    kernel_config = tmp_path / "etc" / "ipython" / "ipython_kernel_config.py"
    assert kernel_config.read_text().count("stigmer_nb") == 2  # the marker and the line, once
    config = PyFileConfigLoader(kernel_config.name, path=str(kernel_config.parent)).load_config()
    extensions = config.InteractiveShellApp.extensions
    assert extensions.get_value([]) == ["stigmer_nb"]
