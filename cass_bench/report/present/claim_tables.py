"""The claim rows as the report shows them."""

from __future__ import annotations

import pandas as pd

from cass_bench.report.present.render import Table

SHOWN = {"key": "#", "claim": "claim", "paper": "paper", "measured": "measured here (95% interval)",
         "power": "power (after Holm)", "collapse": "collapsed / measured runs", "status": "status"}
"""The columns the report's claims table shows, with their headers (all columns go to CSV)."""


def claims_table(claims: pd.DataFrame) -> Table:
    """The claim rows as the report shows them (all columns go to CSV)."""
    cells = claims[list(SHOWN)].rename(columns=SHOWN)
    return Table(cells.astype(str), data=claims)
