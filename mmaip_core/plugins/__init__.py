"""The plugin system: the manager (registries, typed lookups), the hook specifications, the plugin kinds' Protocols and specs, and the base class of simple scorers."""
