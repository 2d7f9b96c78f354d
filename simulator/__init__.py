"""pebblesim.simulator: layers, models, stage worker, both executors, Timeline, CLI."""
