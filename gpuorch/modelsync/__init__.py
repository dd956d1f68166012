"""The declared model files on the GPU instance: brought at boot, fast and verified (`gpuorch models sync`), checked
by the GPU worker before it takes a job."""
