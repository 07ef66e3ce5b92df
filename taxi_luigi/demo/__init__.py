"""The offline demo and the tests' mirror: synthetic TLC months in the real layouts (``sample``).

Nothing in the pipeline imports this package: it stands in for the TLC's files where there is no
network, so that ``taxi-luigi demo``, the tests and the benchmarks drive the real tasks.
"""
