"""Package discovery that pyproject.toml cannot express on its own.

Data folders inside the packages (illustrations, templates, static files, locales) are found as namespace
packages so their files ship in the wheel. catalogue/ is data, not an import package (a PyPI package is
already named `catalogue`), so it ships inside the wheel as `kiosk.catalogue_data`.
"""
from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["kiosk", "kiosk.*", "hardware", "hardware.*"], exclude=["*.__pycache__"])
    + ["kiosk.catalogue_data"]
    + [f"kiosk.catalogue_data.{name}" for name in find_namespace_packages(where="catalogue")],
    package_dir={"kiosk.catalogue_data": "catalogue"},
)
