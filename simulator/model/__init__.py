"""The numeric model: specs, the partition into stages, numpy layers with split backward, the
activation cache, stages, optimizers, data and the sequential reference.

Imports only ``schedules`` and the leaf modules ``simulator.errors`` and ``simulator.units``.
"""

from simulator.model.partitioning import Partition, partition
from simulator.model.spec import LayerInfo, ModelSpec

__all__ = ["LayerInfo", "ModelSpec", "Partition", "partition"]
