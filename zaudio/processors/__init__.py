"""Built-in processors, loaded by name like user code (``zaudio process level``).

``level`` (:class:`~zaudio.processors.level.Level`), ``vad``
(:class:`~zaudio.processors.vad.VAD`), ``logmel``
(:class:`~zaudio.processors.logmel.LogMel`), ``spectrum``
(:class:`~zaudio.processors.spectrum.Spectrum`), ``writer``
(:class:`~zaudio.processors.writer.Writer`) and ``print``
(:class:`~zaudio.processors.printer.Print`). Each module is imported only when its
processor is used; see docs/builtins.md.
"""
