"""Data made here: synthetic demo videos, ShapesQA (video QA with known truth), the offline demo."""
