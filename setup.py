"""The native pass of the whole-log projection (server/core/_native_projection.c, ADR 0017).

Optional: where no C compiler is at hand the install goes on without it and REBUILD and
VERIFY use the Python projector, which gives the same rows (only slower)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "server.core._native_projection",
            ["server/core/_native_projection.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
