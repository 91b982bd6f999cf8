"""What train.py's stages stand on: choices from training-time evidence (selection.py), corpus-wide neighbour
mining for L_topk (neighbors.py), per-epoch checkpoints for --resume (checkpoint.py) and multi-process training
(distributed.py)."""
