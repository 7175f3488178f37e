"""Package discovery that ``pyproject.toml`` cannot express: every ``flygnn*`` package is found
automatically, and the source tree's ``data/`` folder is installed as the ``flygnn.data`` package
(its files are listed by ``[tool.setuptools.package-data]`` in ``pyproject.toml``)."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["flygnn", "flygnn.*"]), "flygnn.data"],
      package_dir={"flygnn.data": "data"})
