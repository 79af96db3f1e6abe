"""recsynth: clickstream + catalog ETL into Delta, synthetic behaviour data and recommendations."""
__version__ = "0.1.0"
