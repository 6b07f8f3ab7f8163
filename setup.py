"""The one compiled part: the bulk scoring kernel (smallworld/serve/c/bulk.c). It is optional: where no C compiler
is at hand the package installs without it and scores through numba (same output, slower start)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("smallworld.serve._cbulk", ["smallworld/serve/c/bulk.c"], optional=True,
                             extra_compile_args=["-O3", "-ffp-contract=off", "-fno-strict-aliasing"])])
