"""Figures and reports: metrics with bootstrap intervals, agreement statistics, the evaluation report, the scorer comparison."""
