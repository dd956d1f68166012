"""Settings come from GPUORCH_* variables, with documented defaults and clear errors."""

import pytest

from gpuorch.inputs import InputPolicy
from gpuorch.settings import Settings, SettingsError, documented_variables, settings_env


def test_defaults_match_the_replaced_systems_resources():
    settings = Settings.from_env({})
    assert settings.gpu_queue == "gpu_tasks_queue"
    assert settings.gpu_dead_letter_queue == "gpu_tasks_queue_dlq"
    assert settings.job_table == "task_store"
    assert settings.visibility_timeout == 300
    assert settings.receive_wait_seconds == 20
    assert settings.max_receive_count == 3
    assert settings.job_ttl_days == 30
    assert settings.aws_endpoint_url == ""  # unset: real AWS


def test_values_are_parsed_by_type():
    settings = Settings.from_env({
        "GPUORCH_VISIBILITY_TIMEOUT": "900",
        "GPUORCH_ALLOW_INSECURE_INPUTS": "yes",
        "GPUORCH_INPUT_BUCKETS": "a, b,,c",
        "GPUORCH_COMFYUI_TIMEOUT": "2.5",
        "GPUORCH_CAMERA_LORA": "angles.safetensors",
    })
    assert settings.visibility_timeout == 900
    assert settings.allow_insecure_inputs is True
    assert settings.input_buckets == ("a", "b", "c")
    assert settings.comfyui_timeout == 2.5
    assert settings.models.camera_lora == "angles.safetensors"
    assert InputPolicy.from_settings(settings).allowed_buckets == {"gpuorch-jobs", "a", "b", "c"}


@pytest.mark.parametrize("var,value,message", [
    ("GPUORCH_VISIBILITY_TIMEOUT", "soon", "expected an integer"),
    ("GPUORCH_ALLOW_INSECURE_INPUTS", "maybe", "expected true or false"),
    ("GPUORCH_COMFYUI_TIMEOUT", "x", "expected a number"),
    ("GPUORCH_RECEIVE_WAIT_SECONDS", "30", "between 0 and 20"),
    ("GPUORCH_GPU_METRICS_PORT", "70000", "between 0"),
    ("GPUORCH_CONTROL_METRICS_PORT", "-1", "between 0"),
    ("GPUORCH_GPU_BUSY_WINDOW_SECONDS", "0", "must be positive"),
    ("GPUORCH_KEY_CACHE_SECONDS", "-1", "must not be negative"),
    ("GPUORCH_BACKLOG_CHECK_SECONDS", "-1", "must not be negative"),
    ("GPUORCH_RATE_LIMIT_PER_MINUTE", "-5", "0 \\(no limit\\) or positive"),
    ("GPUORCH_RATE_LIMIT_BURST", "0", "at least 1"),
    ("GPUORCH_MAX_BACKLOG", "-1", "0 \\(no limit\\) or positive"),
    ("GPUORCH_LIFECYCLE_POLICY", "clever", "fixed or learned, not 'clever'"),
    ("GPUORCH_WAIT_VALUE_USD_PER_HOUR", "-1", "must not be negative"),
])
def test_bad_values_name_the_variable(var, value, message):
    with pytest.raises(SettingsError, match=message) as err:
        Settings.from_env({var: value})
    assert var in str(err.value)


def test_settings_env_round_trips():
    original = Settings.from_env({"GPUORCH_INPUT_BUCKETS": "x,y", "GPUORCH_ALLOW_INSECURE_INPUTS": "1"})
    assert Settings.from_env(settings_env(original)) == original


def test_every_setting_is_documented():
    variables = documented_variables()
    assert len({var for var, _, _ in variables}) == len(variables)
    assert all(var.startswith("GPUORCH_") and doc.endswith(".") for var, _, doc in variables)


def test_the_api_key_never_shows_in_the_settings_repr():
    settings = Settings.from_env({"GPUORCH_API_KEY": "gpo_0123456789ab_secret"})
    assert settings.api_key == "gpo_0123456789ab_secret"
    assert "secret" not in repr(settings)
