"""The offline demo and the tests' mirror: synthetic TLC months in the real layouts (``sample``), the
loopback server that serves them as the TLC's CDN does (``server``) and ``taxi-luigi demo`` (``run``).

Nothing in the pipeline imports this package: it stands in for the TLC's files where there is no
network, so that the demo, the tests and the benchmarks drive the real tasks over real HTTP.
"""
