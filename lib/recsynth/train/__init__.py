"""Distributed training and scoring shared by the GAN and the recommender, so each model brings
only its variables and one epoch's work:

- launcher: starts Horovod ranks inside Spark tasks and trains on them from the driver.
- loop: the epoch loop on every rank (resume, epochs, checkpoint every N, progress on rank 0).
- shards: Petastorm readers over a Delta table's current Parquet files, one shard per rank.
- scoring: scores a frame on executors with a broadcast model or catalogue, in bounded chunks.
- atomic: replaces a small file whole, so no reader ever finds it truncated.
- checkpoints: rank 0's checkpoints and the "latest" pointer a restarted run resumes from.
- progress: rank 0's per-epoch record and the driver thread that reports it.
- artifacts: the files of a versioned model (weights, parameters, metadata) in the lake.
"""
