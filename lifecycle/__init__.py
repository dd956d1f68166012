"""The GPU lifecycle: the pure start/stop decision and billing, the live loop that acts on AWS, and the simulator."""
