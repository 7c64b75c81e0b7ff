"""Install the Jupyter-side integration into an environment: ``python extensions/install.py``."""

# - ``%load_ext stigmer_nb`` in every kernel: ``<prefix>/etc/ipython/ipython_kernel_config.py``.
# - JupyterLab saves widget state with the notebook, so a saved notebook shows the last state of
#   each execution view instead of "Loading widget…": ``<prefix>/share/jupyter/lab/settings/overrides.json``
#   (merged into an existing file).
# - The Temporal UI through jupyter-server-proxy needs nothing here: the package's
#   ``jupyter_serverproxy_servers`` entry point adds the launcher tile, and labs started in a kernel
#   serve their UI under ``<base_url>proxy/absolute/<port>/``.

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_MARK = "# stigmer_nb: load the magics in every kernel"


def install(prefix: Path) -> list[Path]:
    """Install into ``prefix`` (default ``sys.prefix``); returns the files written. Idempotent."""
    written = []
    kernel_config = prefix / "etc" / "ipython" / "ipython_kernel_config.py"
    kernel_config.parent.mkdir(parents=True, exist_ok=True)
    existing = kernel_config.read_text() if kernel_config.exists() else ""
    if _MARK not in existing:
        snippet = (HERE / "ipython" / "ipython_kernel_config.py").read_text()
        body = snippet.split('"""\n', 2)[-1].strip()  # the lines after the module docstring
        kernel_config.write_text(f"{existing.rstrip()}\n\n{_MARK}\n{body}\n".lstrip())
        written.append(kernel_config)
    overrides = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    overrides.parent.mkdir(parents=True, exist_ok=True)
    merged = json.loads(overrides.read_text()) if overrides.exists() else {}
    for plugin, settings in json.loads((HERE / "jupyterlab" / "overrides.json").read_text()).items():
        merged.setdefault(plugin, {}).update(settings)
    overrides.write_text(json.dumps(merged, indent=2) + "\n")
    written.append(overrides)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--prefix", type=Path, default=Path(sys.prefix), help="environment (default: this one)"
    )
    args = parser.parse_args(argv)
    for path in install(args.prefix):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
