"""Training DCE-diff models: case data, patient split, step-indexed batches, the trainer (single GPU, DDP, CPU)."""
