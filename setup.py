"""Packages are found, not listed: each source folder ships under its import name with every folder below it
that holds ``__init__.py``. Everything else about the distribution is in pyproject.toml; setuptools merges both."""

from setuptools import find_packages, setup

# import name -> source folder. Nothing installs a top-level `plugins` or `cli`.
FOLDERS = {"mmaip_core": "mmaip_core", "mmaip_plugins": "plugins", "mmaip_miniature": "miniature"}


def packages(name: str, folder: str) -> list[str]:
    """The package ``name`` (``folder``) and every package below it, under ``name``."""
    return [name, *(f"{name}.{sub}" for sub in find_packages(folder))]


setup(
    packages=[*(package for name, folder in FOLDERS.items() for package in packages(name, folder)), "mmaip_cli"],
    # mmaip_cli (no __init__.py) is the repository root, for cli.py: mmaip_cli.cli
    package_dir={**FOLDERS, "mmaip_cli": "."},
    # the root also holds this script: naming it makes build_py leave it out of mmaip_cli, as distutils does for
    # the script it runs (PEP 517 backends run it under another name)
    script_name="setup.py",
)
