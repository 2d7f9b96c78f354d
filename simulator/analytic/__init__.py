"""The analytic executor and its cost models: predict a run at any scale, no tensors computed."""
