"""Systems of devices, memory tiers and switches joined by links (``sim.system.topology``)."""

from sim.system.topology import (
    DeviceInstance,
    Hop,
    Link,
    Route,
    System,
    Tier,
    build_system,
    main_memory_level,
)

__all__ = ["Tier", "Link", "Hop", "Route", "DeviceInstance", "System", "build_system",
           "main_memory_level"]
