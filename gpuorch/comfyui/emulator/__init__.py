"""A local stand-in for a ComfyUI server that speaks its HTTP and websocket protocol."""
