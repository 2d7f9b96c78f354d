"""pebblesim.simulator: numpy layers, models, the stage worker, both executors, the Timeline, the CLI."""
