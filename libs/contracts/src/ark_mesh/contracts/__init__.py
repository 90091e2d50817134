"""The shapes that cross a process boundary: Ark resources, bus messages, subjects."""
