"""Build of the optional compiled lease scanner; everything else is in pyproject.toml.

The extension is optional: without a compiler (or Python headers) the install still
succeeds and the lease reader uses its pure-Python path (see README "Benchmarks").
"""

import os

from setuptools import Extension, setup

# DHCPFOCTL_SANITIZE=1: the `make sanitize` build (AddressSanitizer and UBSan).
_SANITIZE = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all"]
_sanitize = os.environ.get("DHCPFOCTL_SANITIZE") == "1"

setup(
    ext_modules=[
        Extension(
            "dhcpfoctl.leases._scan",
            ["dhcpfoctl/leases/_scan.c"],
            optional=not _sanitize,
            extra_compile_args=["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"]
            + (["-O1", "-g", *_SANITIZE] if _sanitize else []),
            extra_link_args=_SANITIZE if _sanitize else [],
        )
    ]
)
