"""Data shipped with flygnn (installed as ``flygnn.data``): the connectome, the known tables
and the trained models. Read it with :func:`flygnn._paths.data_dir`; see ``README.md`` here."""
