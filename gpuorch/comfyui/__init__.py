"""Talking to ComfyUI: the HTTP/websocket client, its errors, and the emulator used locally."""
