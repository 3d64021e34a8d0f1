"""Figures and the report: the only package that imports matplotlib."""
