"""Movie files in: read a luminance movie from ``.npy`` / ``.npz`` and check its range.

:func:`read_movie` gives a ``(B, T, n_hexals)`` array (a ``(T, n_hexals)`` movie gets a batch
axis) and :func:`check_movie_range` refuses values outside ``[0, 1]``; each problem is a
``ValueError`` naming the file. :func:`flygnn.pretrained.simulate_file` (``flygnn simulate``)
uses both, and :mod:`flygnn.pretrained` re-exports :func:`check_movie_range`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

__all__ = ["check_movie_range", "read_movie"]


def _load_array(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.keys())
            key = "movie" if "movie" in keys else keys[0] if len(keys) == 1 else None
            if key is None:
                raise ValueError(f"movie file {str(path)!r}: expected a 'movie' array, got {keys}")
            return z[key]
    raise ValueError(f"movie file {str(path)!r}: expected .npy or .npz")


def read_movie(path: Path) -> np.ndarray:
    """The movie array of a ``.npy`` or ``.npz`` file (key ``movie``, or its only array).

    **Shapes:** ``(T, n_hexals)`` or ``(B, T, n_hexals)`` in the file; ``(B, T, n_hexals)``
    returned.

    Raises:
        ValueError: a missing or unreadable file, non-numeric values or another number of
            axes, naming the file.
    """
    if not path.is_file():
        raise ValueError(f"movie file {str(path)!r} not found")
    try:
        movie = _load_array(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"movie file {str(path)!r} is not readable: {err}") from None
    if not (np.issubdtype(movie.dtype, np.number) or movie.dtype == bool):
        raise ValueError(f"movie file {str(path)!r}: expected numbers, got dtype {movie.dtype}")
    if movie.ndim == 2:
        movie = movie[None]
    if movie.ndim != 3:
        raise ValueError(f"movie file {str(path)!r}: expected shape (T, n_hexals) or "
                         f"(B, T, n_hexals), got {movie.shape}")
    return movie


def check_movie_range(movie: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless every value of ``movie`` is a luminance in ``[0, 1]``.

    The network's photoreceptors expect luminance in ``[0, 1]`` (0 black, 0.5 the grey of
    the steady state, 1 white); an 8-bit movie (0-255) must be divided by 255 first.
    """
    values = np.asarray(movie)
    if values.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected real luminance values, got dtype {values.dtype}")
    if values.size == 0:
        raise ValueError(f"{name}: the movie is empty (shape {values.shape})")
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise ValueError(f"{name}: the movie contains NaN")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        hint = " (an 8-bit movie? divide it by 255)" if low >= 0 and 1 < high <= 255 else ""
        raise ValueError(f"{name}: luminance must lie in [0, 1] (0 black, 0.5 grey, 1 white), got "
                         f"values in [{low:g}, {high:g}]{hint}")
