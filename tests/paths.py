"""Where the tests find the checkout's files: its root, the recorded fixtures and the node catalogue."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
TRACES = FIXTURES / "comfyui" / "traces"
# A real ComfyUI 0.8.0 server's /object_info.
CATALOGUE = REPO / "configs" / "comfyui" / "object_info.json"
# A workflow added as a folder alone, with a model file of a role and ComfyUI folder no built-in workflow has.
UPSCALE_WORKFLOW = FIXTURES / "workflows" / "upscale"
