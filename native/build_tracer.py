"""cffi (API mode) builder for roar's ptrace tracer: roarctl._tracer.

Used by setup.py (``cffi_modules=["native/build_tracer.py:ffibuilder"]``) when pip
installs roar, or directly for development: ``python native/build_tracer.py``
compiles the module in place (roarctl/_tracer*.so).
"""

import os
import shutil

import cffi

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)


def _check_compiler() -> None:
    cc = os.environ.get("CC", "cc").split()
    if not cc or not (shutil.which(cc[0]) or shutil.which("gcc")):
        raise SystemExit(
            "roar needs a C compiler (gcc) to build its tracer: apt-get install gcc python3-dev"
        )


def _cdef_text() -> str:
    with open(os.path.join(_HERE, "tracer.h"), encoding="utf-8") as f:
        # cffi's cdef does not take preprocessor lines (include guard): drop them.
        return "".join(line for line in f if not line.lstrip().startswith("#"))


def _make_builder(native_dir: str) -> cffi.FFI:
    ffi = cffi.FFI()
    ffi.set_source(
        "roarctl._tracer",
        '#include "tracer.h"',
        sources=[os.path.join(native_dir, "tracer.c")],
        include_dirs=[native_dir],
        extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra"],
    )
    ffi.cdef(_cdef_text())
    return ffi


_check_compiler()

# Relative paths: setuptools runs the build from the repository root.
ffibuilder = _make_builder("native")


if __name__ == "__main__":
    # Development build under build/ (ignored by git), then copied in place under the
    # same name pip's build uses, so neither build can shadow the other.
    # (ffi.compile changes into tmpdir, hence absolute paths here.)
    import glob

    so = _make_builder(_HERE).compile(tmpdir=os.path.join(_ROOT, "build", "cffi"), verbose=True)
    dest = os.path.join(_ROOT, "roarctl", "_tracer.abi3.so")
    for old in glob.glob(os.path.join(_ROOT, "roarctl", "_tracer*.so")):
        os.remove(old)
    shutil.copyfile(so, dest)
    print("built", dest)
