"""IPython kernel config: load stigmer_nb's magics in every kernel (installed by extensions/install.py)."""

c = get_config()  # type: ignore[name-defined]  # noqa: F821 - injected by IPython's config loader
# Appended, so extensions configured elsewhere stay; loading is lazy, so it costs no startup time.
c.InteractiveShellApp.extensions.append("stigmer_nb")
