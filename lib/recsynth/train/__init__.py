"""Distributed training shared by the GAN and the recommender: Horovod ranks inside Spark
tasks (launcher), each reading its shard of a Delta table through Petastorm (shards)."""
