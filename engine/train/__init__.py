"""Training: configs, the trainer loop, checkpoints and image metrics."""
