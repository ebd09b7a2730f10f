"""mmaip's bundled plugins (installed as ``mmaip_plugins``); each sub-package is one entry point."""
