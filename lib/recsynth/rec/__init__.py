"""Recommender: baselines, offline ranking metrics and top-N scoring over gold.interactions."""
