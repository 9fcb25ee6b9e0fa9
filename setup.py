# The C tracer is compiled by cffi (API mode) during installation; everything else is in pyproject.toml.
from setuptools import setup

setup(
    cffi_modules=["native/build_tracer.py:ffibuilder"],
    data_files=[("share/roar/systemd", ["systemd/roard.service", "systemd/roard.socket"])],
)
