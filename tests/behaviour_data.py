"""A small behaviour-like table with known structure, for the GAN and privacy tests."""
import numpy as np

CONTINUOUS, CATEGORICAL = ["n_events", "duration_s", "spend"], ["segment", "purchased"]


def make_behaviour(spark, n: int, seed: int):
    """Three segments with different activity; purchases (with spend) mostly in segment c."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1])
    events = np.round(rng.lognormal(np.where(segment == "a", 1.0, 2.5), 0.4)).astype(float)
    purchased = rng.random(n) < np.where(segment == "c", 0.6, 0.1)
    spend = np.where(purchased, rng.normal(80, 10, n), 0.0)
    duration = events * rng.lognormal(3.0, 0.5, n)  # seconds: makes every real row distinct
    rows = [(float(e), float(d), float(s), str(g), str(bool(p)))
            for e, d, s, g, p in zip(events, duration, spend, segment, purchased)]
    return spark.createDataFrame(rows, "n_events double, duration_s double, spend double, segment string, purchased string")
