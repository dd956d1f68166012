"""The GPU lifecycle: the pure start/stop decision and billing, the live control loop, and the simulator."""
