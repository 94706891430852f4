"""Running a sweep: one cell, the sweep loop, checks before work, plans, jobs, status and export."""
