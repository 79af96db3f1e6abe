"""spark-submit entry for the evaluate-synthetic job, e.g.

    spark-submit --master spark://127.0.0.1:7077 jobs/evaluate_synthetic.py --env standalone --set spark.shuffle_partitions=16

Arguments are recsynth's global options (--env, --conf-dir, --conf-file, --set); the logic lives in lib/recsynth.
"""
import sys

from recsynth.cli import main

if __name__ == "__main__":
    main([*sys.argv[1:], "evaluate-synthetic"])
