"""The claim checks: kinds as specs (:mod:`.specs`) -> rows (:mod:`.measure`, per kind :mod:`.gains`, :mod:`.best`,
:mod:`.robustness`, :mod:`.starts`; the cost rows in :mod:`cass_bench.report.cost_claims`) -> verdicts over the
pre-registered families (:mod:`.family`, :mod:`.decide`).

Nothing is imported here: :mod:`cass_bench.report.cost_claims` builds on :mod:`.rows` while :mod:`.specs` quotes
its bounds, so each caller imports the module it needs.
"""
