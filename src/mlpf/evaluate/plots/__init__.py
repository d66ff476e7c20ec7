"""Figures of the evaluation stage (matplotlib + mplhep), written as PNG and PDF."""
