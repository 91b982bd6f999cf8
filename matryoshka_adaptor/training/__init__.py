"""What train.py's stages stand on: choices from training-time evidence (selection.py), corpus-wide neighbour
mining for L_topk (neighbors.py), an AdamW that rounds alike on every CPU (optimizer.py), the opt-in learned
refinement of the start map (prefix_rotation.py), per-epoch checkpoints for --resume (checkpoint.py) and
multi-process training (distributed.py)."""
