"""The worker processes: the GPU worker that runs ComfyUI jobs, with the checks it makes before starting."""
