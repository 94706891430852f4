"""How the report is shown: its sections in order (:mod:`.sections`), the answer and the claim rows
(:mod:`.claim_tables`), the other tables (:mod:`.tables`, :mod:`.validity`, :mod:`.start`), the plots (:mod:`.plots`,
:mod:`.claim_plots`) and their writing as Markdown, LaTeX or CSV (:mod:`.render`). Nothing here computes a statistic
a verdict rests on."""
