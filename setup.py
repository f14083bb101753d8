"""Package discovery that pyproject.toml cannot express on its own.

catalogue/ is data, not an import package (a PyPI package is already named
`catalogue`), so it ships inside the wheel as `kiosk.catalogue_data`.
"""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["kiosk", "kiosk.*", "hardware", "hardware.*"])
    + ["kiosk.catalogue_data"],
    package_dir={"kiosk.catalogue_data": "catalogue"},
)
