"""The local Spark session's sizing, which needs no JVM to check."""

from __future__ import annotations

from glom_plugin.spark_session import default_driver_memory

GB = 2**30


def test_driver_memory_is_a_quarter_of_the_machine_within_2_and_8_gb():
    """In local mode every task runs in the driver's JVM: 2 GB ran out at 10M reviews on a 24 GB machine."""
    assert default_driver_memory(4 * GB) == "2g"  # never below the old default
    assert default_driver_memory(24 * GB) == "6g"
    assert default_driver_memory(23 * GB + GB // 2) == "5g"  # rounded down, never above a quarter
    assert default_driver_memory(256 * GB) == "8g"
    assert default_driver_memory().endswith("g")
