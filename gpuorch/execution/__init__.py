"""Executing jobs on the GPU side: the runner the GPU tasks call, and its retry policy."""
