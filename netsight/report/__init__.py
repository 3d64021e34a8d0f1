"""Figures and the report: the only package that imports matplotlib, besides `netsight.train.curves`
(the curves.png a run directory holds)."""
