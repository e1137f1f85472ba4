"""The ``zaudio`` command line: one small module per command, each a thin shim over the library."""
