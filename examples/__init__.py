"""Pipeline files shipped with zaudio (``zaudio up --example NAME``), as the package ``zaudio.examples``."""
