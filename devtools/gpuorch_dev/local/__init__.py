"""The local stack: a moto server, the ComfyUI emulator and the Procfile's processes on loopback."""
