"""Kubernetes' own e2e suites (e2e.test, sig-network) run against knet, and their results.

Pure: `skips` (conformance/skips.yaml -> ginkgo's --skip), `suites` (the named focuses), `junit` (e2e's
JUnit report -> per-test results), `table` (counts, differences between runs, the text). Shell:
`runner` (runs e2e.test / ginkgo, reads run directories back) and `cli` (`knet conformance ...`).
"""
