"""The run layer: a complete, validated run built from plain values, before anything executes."""
