"""okr_assets: OKR check-ins to trustworthy tables and an at-risk model, as Dagster assets."""

import os

# scikit-learn's OpenMP threads (HistGradientBoosting) spin while they wait for work, by default.
# Beside another run or process on the same cores they spin against it: on this project's 2-core
# CI machine a fit that takes 0.4 s alone took 27 s beside two busy processes, and 1.5 s with
# passive waiting. libgomp reads this when scikit-learn first loads it, so it is set here, before
# anything can import scikit-learn; a value set in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
