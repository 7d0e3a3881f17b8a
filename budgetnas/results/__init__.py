"""Results, always recomputed from what a storage holds: the leaderboard with its one
scoring function, the one Pareto definition and tiers (leaderboard.py), its text formats
(formats.py), the plotly figures (figures.py), the offline HTML report (report.py) and
optuna-dashboard (dashboard.py). No torch; optuna and plotly only inside functions."""
