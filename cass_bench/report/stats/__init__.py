"""The statistics behind the claim checks, as pure functions of arrays: paired intervals and tests
(:mod:`~cass_bench.report.stats.intervals`), the paired bootstrap over test images
(:mod:`~cass_bench.report.stats.bootstrap`), Holm's correction (:mod:`~cass_bench.report.stats.multiple`), verdicts
of an interval against a bound (:mod:`~cass_bench.report.stats.verdicts`) and power
(:mod:`~cass_bench.report.stats.power`). scipy and statsmodels do the arithmetic; these modules choose and name it.
"""
