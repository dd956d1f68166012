"""The one settings object, read from GPUORCH_* environment variables at each entry point."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from gpuorch.aws.s3 import parse_s3_prefix
from gpuorch.errors import ConfigurationError
from gpuorch.model_files import ModelFiles

# S3 refuses a SigV4 presigned URL valid for longer than seven days.
MAX_PRESIGN_SECONDS = 7 * 86400
# A GPU job stops itself this long before the hard time limit, so it can interrupt ComfyUI and record why.
SOFT_LIMIT_MARGIN = 15
# SNS topic and SQS queue names allow letters, digits, '-' and '_' (kombu turns '.' into '-'); the longest
# queue named from the monitoring namespace, a receiver's "<ns>-events-<36-character uuid>", must fit SQS's 80.
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,30}$")
# GPUORCH_MODELS_STORE: kept on the EBS volume, or fetched at every boot into the instance store.
MODELS_STORES = ("volume", "instance-store")


class SettingsError(ConfigurationError, ValueError):
    """An environment variable holds a value gpuorch cannot use."""


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None


def _float(name: str, raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}={raw!r}: expected true or false")


def _csv(name: str, raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


_PARSERS = {int: _int, float: _float, bool: _bool, tuple: _csv}


def env(var: str, default: Any, doc: str, *, secret: bool = False) -> Any:
    """Declare a setting: the variable it is read from, its default, and what it is for (a secret is left out of
    the settings' repr, so it never reaches a log line)."""
    return field(default=default, repr=not secret, metadata={"env": var, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Everything configurable about gpuorch; `Settings.from_env()` is the only reader of the environment."""

    region: str = env(
        "GPUORCH_REGION", "us-east-1",
        "AWS region of every resource, and of the on-demand prices budgets and cost reports use (lifecycle/prices.py).",
    )
    aws_endpoint_url: str = env(
        "GPUORCH_AWS_ENDPOINT_URL", "",
        "One endpoint for SQS, SNS, DynamoDB, S3 and EC2 (the local moto server). Empty: real AWS.",
    )
    gpu_queue: str = env("GPUORCH_GPU_QUEUE", "gpu_tasks_queue", "SQS queue the GPU worker consumes.")
    gpu_low_queue: str = env(
        "GPUORCH_GPU_LOW_QUEUE", "gpu_tasks_queue_low",
        "SQS queue of low-priority GPU jobs: they start no GPU; the GPU worker takes them only while "
        "GPUORCH_GPU_QUEUE has none for it. Its dead letters go to GPUORCH_GPU_DLQ too.",
    )
    gpu_dead_letter_queue: str = env(
        "GPUORCH_GPU_DLQ", "gpu_tasks_queue_dlq", "Dead-letter queue of the GPU queue."
    )
    control_queue: str = env(
        "GPUORCH_CONTROL_QUEUE", "gpu_control_queue", "SQS queue of the always-on control worker."
    )
    max_receive_count: int = env(
        "GPUORCH_MAX_RECEIVE_COUNT", 3, "Receives of a GPU message before SQS moves it to the DLQ."
    )
    visibility_timeout: int = env(
        "GPUORCH_VISIBILITY_TIMEOUT", 300,
        "Seconds a received GPU message stays hidden; must exceed the longest job plus its wait.",
    )
    receive_wait_seconds: int = env(
        "GPUORCH_RECEIVE_WAIT_SECONDS", 20, "SQS long-poll wait of the queues (0-20)."
    )
    task_time_limit: int = env(
        "GPUORCH_TASK_TIME_LIMIT", 120,
        "Hard limit in seconds for one GPU job, ComfyUI queue wait included.",
    )
    dead_letter_sweep_seconds: int = env(
        "GPUORCH_DLQ_SWEEP_SECONDS", 60, "How often the control worker records dead-lettered jobs as failed."
    )
    expiry_sweep_seconds: int = env(
        "GPUORCH_EXPIRY_SWEEP_SECONDS", 30,
        "How often the control worker expires queued jobs past their deadline (a GPU worker also expires one it "
        "receives late).",
    )
    beat_schedule_file: str = env(
        "GPUORCH_BEAT_SCHEDULE_FILE", "celerybeat-schedule", "Where celery beat keeps its last-run times."
    )
    gpu_pipeline_depth: int = env(
        "GPUORCH_GPU_PIPELINE_DEPTH", 2,
        "Jobs a GPU worker holds at once: one on the GPU, the next already fetched and queued in ComfyUI.",
    )
    warmup_workflow: str = env(
        "GPUORCH_WARMUP_WORKFLOW", "qwen-image-edit",
        "Workflow the GPU worker runs once at start so the models are loaded; empty: no warm-up.",
    )
    gpu_pool: str = env(
        "GPUORCH_GPU_POOL", "gpuorch", "GPU instances are those tagged gpuorch:pool=<this>."
    )
    idle_stop_seconds: int = env(
        "GPUORCH_IDLE_STOP_SECONDS", 300,
        "Seconds a GPU instance must be idle (nothing queued, in flight or running) before it is stopped "
        "(why 300: lifecycle.model.DEFAULT_IDLE_STOP_S and `bench/cost.py`).",
    )
    min_instances: int = env("GPUORCH_MIN_INSTANCES", 0, "GPU instances kept running even when idle.")
    max_instances: int = env("GPUORCH_MAX_INSTANCES", 1, "GPU instances running at most.")
    backlog_per_instance: int = env(
        "GPUORCH_BACKLOG_PER_INSTANCE", 10, "Queued jobs per running instance past which another one starts."
    )
    monthly_budget_usd: float = env(
        "GPUORCH_MONTHLY_BUDGET_USD", 0.0,
        "No GPU starts when this month's spend plus an hour would pass it (jobs are still accepted); 0: none.",
    )
    gpu_instance_type: str = env(
        "GPUORCH_GPU_INSTANCE_TYPE", "g6e.2xlarge",
        "Instance type of the GPU pool: what `gpuorch deploy` launches (in a zone that offers it), and the type the "
        "fallback types' permission lets the lifecycle change an instance back to.",
    )
    ebs_kms_key: str = env(
        "GPUORCH_EBS_KMS_KEY", "",
        "ARN of a KMS key of your own that encrypts the GPU instances' volumes (`gpuorch deploy`); the control role "
        "then may create grants on it, which starting such an instance takes. Empty: EBS's AWS-managed key.",
    )
    fallback_instance_types: tuple = env(
        "GPUORCH_FALLBACK_INSTANCE_TYPES", (),
        "Comma-separated instance types tried, in order, when EC2 has no capacity for the usual one.",
    )
    spot_max_share: float = env(
        "GPUORCH_SPOT_MAX_SHARE", 0.8,
        "A stopped spot instance of the pool is started before an on-demand one while its current spot price is "
        "under this share of the on-demand price (0: never preferred; why 0.8: lifecycle.model.DEFAULT_SPOT_MAX_SHARE).",
    )
    spot_hold_seconds: int = env(
        "GPUORCH_SPOT_HOLD_SECONDS", 1800,
        "Seconds after EC2 refused to start a spot instance, or interrupted it, during which starts go to on-demand "
        "(why 1800: lifecycle.model.DEFAULT_SPOT_HOLD_S).",
    )
    lifecycle_policy: str = env(
        "GPUORCH_LIFECYCLE_POLICY", "fixed",
        "fixed: the idle time and pool bounds above; learned: the idle time by hour of the week, pre-warming and "
        "scale-out learned from the job table's last four weeks (lifecycle/learning.py), within the same bounds.",
    )
    wait_value_usd_per_hour: float = env(
        "GPUORCH_WAIT_VALUE_USD_PER_HOUR", 0.5,
        "What an hour of a job's wait for a cold start is worth to you, for the learned policy: 0 minimises the GPU "
        "bill; more keeps the GPU warm longer when it is cheap (2.24, an on-demand GPU hour, trades about one GPU "
        "second for each second a job waits). Why 0.5: on every trace of bench/cost.py it keeps the p95 wait within "
        "the replaced rule's at no more than 5% over the fixed policy's bill.",
    )
    warm_windows: str = env(
        "GPUORCH_WARM_WINDOWS", "",
        "Hours in which one GPU is kept ready (and started a cold start before they begin), ';'-separated, each "
        "'DAYS HH:MM-HH:MM ZONE', e.g. 'Mon-Fri 08:00-18:00 Europe/Berlin'; empty: none.",
    )
    interruption_check_seconds: float = env(
        "GPUORCH_INTERRUPTION_CHECK_SECONDS", 5.0,
        "Seconds between a GPU worker's looks at its spot interruption notice (spot/instance-action in the instance "
        "metadata), on a spot instance only (as the metadata says); 0: never.",
    )
    lifecycle_check_seconds: int = env(
        "GPUORCH_LIFECYCLE_CHECK_SECONDS", 30, "How often celery beat asks the control worker to check the GPU."
    )
    job_table: str = env("GPUORCH_JOB_TABLE", "task_store", "DynamoDB table of job records.")
    control_table: str = env(
        "GPUORCH_CONTROL_TABLE", "gpuorch_control",
        "DynamoDB table of GPU worker heartbeats, the lifecycle lock and instance runs.",
    )
    heartbeat_seconds: int = env(
        "GPUORCH_HEARTBEAT_SECONDS", 15, "How often a GPU worker reports the jobs it is running."
    )
    instance_id: str = env(
        "GPUORCH_INSTANCE_ID", "",
        "The GPU worker's EC2 instance id; empty: asked of the instance metadata service at start (on EC2 only, "
        "see GPUORCH_INSTANCE_METADATA_URL).",
    )
    instance_metadata_url: str = env(
        "GPUORCH_INSTANCE_METADATA_URL", "",
        "EC2's instance metadata service (IMDSv2), asked for the instance id; empty: http://169.254.169.254, asked "
        "only on an EC2 instance (its DMI says so), never elsewhere. A URL: that endpoint, asked anywhere.",
    )
    result_table: str = env(
        "GPUORCH_RESULT_TABLE", "celery_results", "DynamoDB table of Celery's result backend."
    )
    job_ttl_days: int = env("GPUORCH_JOB_TTL_DAYS", 30, "Days a job record and its result are kept.")
    bucket: str = env("GPUORCH_BUCKET", "gpuorch-jobs", "S3 bucket for inputs and results.")
    input_buckets: tuple = env(
        "GPUORCH_INPUT_BUCKETS", (),
        "Comma-separated extra buckets jobs may read s3:// inputs from (the job bucket always may).",
    )
    allow_insecure_inputs: bool = env(
        "GPUORCH_ALLOW_INSECURE_INPUTS", False,
        "Let jobs fetch http:// and loopback URLs. Only for the local stack and tests.",
    )
    max_input_bytes: int = env(
        "GPUORCH_MAX_INPUT_BYTES", 25 * 1024 * 1024, "Largest input image, in bytes."
    )
    max_input_pixels: int = env(
        "GPUORCH_MAX_INPUT_PIXELS", 40_000_000, "Largest input image, in pixels."
    )
    max_request_bytes: int = env(
        "GPUORCH_MAX_REQUEST_BYTES", 0,
        "Largest API request body, in bytes; 0 sizes it for the most images a workflow takes, each "
        "GPUORCH_MAX_INPUT_BYTES large and base64-encoded, plus 256 KiB of parameters.",
    )
    output_url_seconds: int = env(
        "GPUORCH_OUTPUT_URL_SECONDS", 3600,
        f"Seconds a job output's presigned download URL, made by the API when it answers, stays valid "
        f"(1-{MAX_PRESIGN_SECONDS}).",
    )
    # Authentication and limits of the API (webapp/auth.py, gpuorch/access/).
    key_table: str = env(
        "GPUORCH_KEY_TABLE", "gpuorch_keys",
        "DynamoDB table of API keys (each stored as the SHA-256 of its token, with owner and role).",
    )
    key_cache_seconds: float = env(
        "GPUORCH_KEY_CACHE_SECONDS", 30.0,
        "Seconds an API process trusts a key it verified without asking the key table again: a revoked key "
        "is refused within this long.",
    )
    rate_limit_per_minute: float = env(
        "GPUORCH_RATE_LIMIT_PER_MINUTE", 30.0,
        "Job submissions per minute each API key may make, across every API process and host (a key may "
        "have its own, set by `gpuorch keys create --rate-per-minute`); 0: no limit.",
    )
    rate_limit_burst: int = env(
        "GPUORCH_RATE_LIMIT_BURST", 10,
        "Submissions a key may make at once before GPUORCH_RATE_LIMIT_PER_MINUTE paces it.",
    )
    max_backlog: int = env(
        "GPUORCH_MAX_BACKLOG", 200,
        "Jobs queued or in flight on the GPU queue past which API submissions are refused (503); 0: no limit.",
    )
    owner_monthly_cap_usd: float = env(
        "GPUORCH_OWNER_MONTHLY_CAP_USD", 0.0,
        "Each owner's GPU spend this month (its jobs' part of the cost, as GET /api/v1/costs?by=owner splits it) "
        "past which its API submissions are refused (402); a key may have its own (`gpuorch keys create "
        "--monthly-cap-usd`); 0: no cap.",
    )
    spend_check_seconds: float = env(
        "GPUORCH_SPEND_CHECK_SECONDS", 60.0,
        "Seconds an API process reuses an owner's spend this month before reading the runs and jobs again (a cap "
        "can be passed by what is submitted meanwhile).",
    )
    backlog_check_seconds: float = env(
        "GPUORCH_BACKLOG_CHECK_SECONDS", 2.0,
        "Seconds an API process reuses the GPU queue's depth before asking SQS again; 0: every submission.",
    )
    submit_key_id: str = env(
        "GPUORCH_SUBMIT_KEY_ID", "",
        "Id of the API key whose webhook secret signs the webhooks of jobs submitted from Python "
        "(task.delay(webhook=...)); empty: a Python caller cannot name a webhook.",
    )
    # Telling the caller (gpuorch/webhooks/, gpuorch/jobs/watch.py).
    webhook_timeout_seconds: float = env(
        "GPUORCH_WEBHOOK_TIMEOUT_SECONDS", 10.0,
        "Seconds one webhook attempt may take, connecting and answering (its answer is read up to 64 KiB); a "
        "slower receiver's attempt fails and is tried again later.",
    )
    webhook_sweep_seconds: int = env(
        "GPUORCH_WEBHOOK_SWEEP_SECONDS", 15,
        "How often celery beat has the control worker try again the webhook deliveries that are due.",
    )
    api_waiters: int = env(
        "GPUORCH_API_WAITERS", 24,
        "Requests each API worker process lets wait at once for a job (GET ?wait=, Prefer: wait=, the event "
        "stream), each holding one of its threads; past it they are refused (503 too_many_waiters, Retry-After). "
        "Keep it below the worker's threads (GPUORCH_API_THREADS) so that other requests always find one.",
    )
    wait_poll_seconds: float = env(
        "GPUORCH_WAIT_POLL_SECONDS", 0.05,
        "How often an API worker process reads the records of the jobs its requests wait for (one batched read "
        "for all of them, only while some request waits).",
    )
    submit_owner: str = env(
        "GPUORCH_SUBMIT_OWNER", "",
        "Owner recorded on jobs submitted from Python (task.delay()): API keys of this owner see them. Empty: "
        "only operator keys do.",
    )
    api_key: str = env(
        "GPUORCH_API_KEY", "",
        "API key (gpo_...) that clients (the CLI, the demo) send as Authorization: Bearer.", secret=True,
    )
    comfyui_url: str = env(
        "GPUORCH_COMFYUI_URL", "http://127.0.0.1:8188", "ComfyUI server the GPU worker drives."
    )
    comfyui_timeout: float = env(
        "GPUORCH_COMFYUI_TIMEOUT", 30.0, "Seconds for one ComfyUI HTTP request."
    )
    comfyui_ready_timeout: float = env(
        "GPUORCH_COMFYUI_READY_TIMEOUT", 300.0, "Seconds the GPU worker waits for ComfyUI to answer at start."
    )
    models_read_mib_s: float = env(
        "GPUORCH_MODELS_READ_MIB_S", 125.0,
        "MiB/s at which ComfyUI reads the model files from where they are kept: the volume's throughput (gp3: 125 "
        "unless more is provisioned; `gpuorch deploy` sets what it provisions). The warm-up's time limit is the "
        "bytes its workflow loads at this rate, plus GPUORCH_TASK_TIME_LIMIT for the run itself.",
    )
    comfyui_check_interval: float = env(
        "GPUORCH_COMFYUI_CHECK_INTERVAL", 5.0,
        "Seconds between a running job's checks of ComfyUI's history and of its own cancellation.",
    )
    comfyui_grace: float = env(
        "GPUORCH_COMFYUI_GRACE", 60.0, "Seconds a running job waits for an unreachable ComfyUI to come back."
    )
    comfyui_retries: int = env(
        "GPUORCH_COMFYUI_RETRIES", 5, "Attempts to reach an unreachable ComfyUI before a job fails."
    )
    aws_write_attempts: int = env(
        "GPUORCH_AWS_WRITE_ATTEMPTS", 4,
        "Attempts of a GPU job's AWS calls (input download, output upload, status writes) while AWS is "
        "unreachable, throttling or failing, each attempt already retried by botocore; after the last, a failed "
        "output upload fails the job and a failed status write gives the message back to SQS for a later delivery.",
    )
    aws_max_attempts: int = env(
        "GPUORCH_AWS_MAX_ATTEMPTS", 6,
        "Attempts botocore makes of each AWS call (the first included), backing off on throttling, server "
        "errors and lost connections, before the caller sees the error.",
    )
    workflows_dir: str = env(
        "GPUORCH_WORKFLOWS_DIR", "",
        "Folder of workflow folders (graph.json and params.json each); empty: the workflows that ship with gpuorch "
        "(gpuorch/workflows/builtin/).",
    )
    # Renames of declared model files, by role; empty: the name the workflow folder declares (models.json).
    diffusion_model: str = env(
        "GPUORCH_DIFFUSION_MODEL", "", "File name of the diffusion_model role's model file (Qwen-Image-Edit-2509) on "
        "the GPU instance; empty: as its workflow folders declare it (models.json).")
    text_encoder: str = env("GPUORCH_TEXT_ENCODER", "", "File name of the text_encoder role's file (Qwen2.5-VL); "
                            "empty: as declared.")
    vae: str = env("GPUORCH_VAE", "", "File name of the vae role's file (Qwen-Image VAE); empty: as declared.")
    lightning_4step_lora: str = env(
        "GPUORCH_LIGHTNING_4STEP_LORA", "", "File name of the lightning_4step_lora role's file (image edit); empty: "
        "as declared."
    )
    lightning_8step_lora: str = env(
        "GPUORCH_LIGHTNING_8STEP_LORA", "", "File name of the lightning_8step_lora role's file (camera angle); "
        "empty: as declared."
    )
    camera_lora: str = env(
        "GPUORCH_CAMERA_LORA", "", "File name of the camera_lora role's file (the multiple-angles LoRA); empty: as "
        "declared."
    )
    # The model files the workflow folders declare (models.json), on the GPU instance (gpuorch/modelsync/).
    models_dir: str = env(
        "GPUORCH_MODELS_DIR", "",
        "ComfyUI's models folder on the GPU instance (/opt/ComfyUI/models): `gpuorch models sync` puts the declared "
        "model files there at boot, and the GPU worker checks them (present, sizes) before it takes a job; empty: "
        "neither (the local stack's emulator pretends to hold them).",
    )
    models_store: str = env(
        "GPUORCH_MODELS_STORE", "volume",
        "Where the synced model files live: volume (in GPUORCH_MODELS_DIR on the EBS volume, kept across stops, so "
        "a boot only checks them) or instance-store (fetched at every boot into GPUORCH_INSTANCE_STORE_DIR, the "
        "local NVMe that a stop wipes, faster to read, and linked into GPUORCH_MODELS_DIR).",
    )
    instance_store_dir: str = env(
        "GPUORCH_INSTANCE_STORE_DIR", "/mnt/instance-store",
        "Where gpuorch-models-sync.service mounts the instance store at boot (GPUORCH_MODELS_STORE=instance-store).",
    )
    models_mirror: str = env(
        "GPUORCH_MODELS_MIRROR", "",
        "s3://bucket/prefix holding a copy of each declared model file as <prefix>/<folder>/<declared name>: the "
        "sync reads it there instead of its declared source, checked against the same sha256; empty: the sources.",
    )
    models_sync_concurrency: int = env(
        "GPUORCH_MODELS_SYNC_CONCURRENCY", 16, "Ranged GETs `gpuorch models sync` keeps in flight at once."
    )
    monitoring: bool = env(
        "GPUORCH_MONITORING", True,
        "Workers send Celery events and take remote-control commands, through SNS topics, so Flower and "
        "`celery inspect` see them and their tasks; false: neither.",
    )
    monitoring_namespace: str = env(
        "GPUORCH_MONITORING_NAMESPACE", "gpuorch",
        "Prefix of the SNS topics and per-process SQS queues of the events and remote control (1-30 letters, "
        "digits, - or _); deployments sharing an AWS account and region need different ones.",
    )
    flower_address: str = env(
        "GPUORCH_FLOWER_ADDRESS", "127.0.0.1",
        "Address Flower listens on; the default, loopback, keeps it off the network.",
    )
    flower_port: int = env("GPUORCH_FLOWER_PORT", 5555, "Port Flower listens on.")
    flower_basic_auth: str = env(
        "GPUORCH_FLOWER_BASIC_AUTH", "",
        "Comma-separated user:password pairs Flower asks for (its --basic-auth) on its dashboard and API; "
        "empty: Flower refuses to start, unless GPUORCH_FLOWER_ALLOW_NO_AUTH.",
    )
    flower_allow_no_auth: bool = env(
        "GPUORCH_FLOWER_ALLOW_NO_AUTH", False,
        "Let Flower start without a login, for development only: honoured on a loopback GPUORCH_FLOWER_ADDRESS, "
        "refused on any other (its API stays closed either way).",
    )
    flower_inspect_timeout: float = env(
        "GPUORCH_FLOWER_INSPECT_TIMEOUT", 3.0,
        "Seconds Flower waits for the workers' answers when it asks them for their queues, tasks and stats.",
    )
    metrics_address: str = env(
        "GPUORCH_METRICS_ADDRESS", "127.0.0.1",
        "Address the GPU and control workers serve Prometheus /metrics on; the default, loopback, keeps them "
        "off the network (the API serves its /metrics on its own port).",
    )
    gpu_metrics_port: int = env(
        "GPUORCH_GPU_METRICS_PORT", 9101, "Port of the GPU worker's Prometheus /metrics; 0: not served."
    )
    control_metrics_port: int = env(
        "GPUORCH_CONTROL_METRICS_PORT", 9102,
        "Port of the control worker's Prometheus /metrics (the GPU lifecycle's figures); 0: not served.",
    )
    metrics_dir: str = env(
        "GPUORCH_METRICS_DIR", "",
        "Folder under which the API's gunicorn workers and the GPU worker's processes keep their Prometheus "
        "figures, so /metrics sums them (a sub-folder per process kind, emptied at start); empty: a fresh "
        "temporary folder per start.",
    )
    gpu_busy_window_seconds: int = env(
        "GPUORCH_GPU_BUSY_WINDOW_SECONDS", 300,
        "Window of the GPU worker's gpuorch_gpu_busy_share: the fraction of it ComfyUI spent executing jobs.",
    )
    health_timeout_seconds: float = env(
        "GPUORCH_HEALTH_TIMEOUT_SECONDS", 2.0,
        "Seconds each /health probe (SQS, DynamoDB, S3, the GPU's records) may wait for an answer, without retries; "
        "one that does not answer in time is reported in error (503), so a dead endpoint shows within seconds.",
    )
    health_boot_grace_seconds: int = env(
        "GPUORCH_HEALTH_BOOT_GRACE_SECONDS", 600,
        "Seconds after a GPU instance starts during which /health calls it starting, not stale, while its "
        "worker has not reported yet (boot, ComfyUI start, template checks and warm-up); past them the lifecycle "
        "stops an instance whose worker has not reported, and holds it.",
    )
    startup_retry_seconds: int = env(
        "GPUORCH_STARTUP_RETRY_SECONDS", 120,
        "Seconds the GPU worker repeats start-up checks whose failure may pass by itself (model files ComfyUI "
        "does not list yet, ComfyUI not answering) before it records a refusal, which has the lifecycle stop and "
        "hold its instance; 0: at the first failure.",
    )
    log_level: str = env("GPUORCH_LOG_LEVEL", "INFO", "Log level of every gpuorch process.")
    log_format: str = env(
        "GPUORCH_LOG_FORMAT", "json", "json: one JSON object per line (job, task, instance ids included); text."
    )
    api_base_url: str = env(
        "GPUORCH_API_URL", "http://127.0.0.1:8080", "Where clients (the CLI, the demo) reach the REST API."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Build the settings from `environ` (default: the process environment)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = f.metadata["env"]
            if var in environ:
                values[f.name] = _PARSERS.get(type(f.default), lambda _n, raw: raw)(var, environ[var])
        settings = cls(**values)
        settings.validate()
        return settings

    def _validate_models(self) -> None:
        """The model files' settings (GPUORCH_MODELS_*, GPUORCH_INSTANCE_STORE_DIR)."""
        if self.models_store not in MODELS_STORES:
            raise SettingsError(f"GPUORCH_MODELS_STORE must be {' or '.join(MODELS_STORES)}")
        if self.models_sync_concurrency < 1:
            raise SettingsError("GPUORCH_MODELS_SYNC_CONCURRENCY must be at least 1")
        if self.models_mirror:
            try:
                parse_s3_prefix(self.models_mirror)
            except ValueError as exc:
                raise SettingsError(f"GPUORCH_MODELS_MIRROR must be empty or s3://bucket[/prefix]: {exc}") from None
        for var, path in (("GPUORCH_MODELS_DIR", self.models_dir), ("GPUORCH_INSTANCE_STORE_DIR",
                                                                    self.instance_store_dir)):
            if path and not path.startswith("/"):
                raise SettingsError(f"{var} must be an absolute path")

    def validate(self) -> None:
        """Refuse settings that cannot work together, naming the variable."""
        self._validate_models()
        if not 0 <= self.receive_wait_seconds <= 20:
            raise SettingsError("GPUORCH_RECEIVE_WAIT_SECONDS must be between 0 and 20")
        if self.max_receive_count < 1:
            raise SettingsError("GPUORCH_MAX_RECEIVE_COUNT must be at least 1")
        if self.task_time_limit < 1:
            raise SettingsError("GPUORCH_TASK_TIME_LIMIT must be positive")
        if self.health_timeout_seconds <= 0:
            raise SettingsError("GPUORCH_HEALTH_TIMEOUT_SECONDS must be positive")
        if self.max_request_bytes < 0:
            raise SettingsError("GPUORCH_MAX_REQUEST_BYTES must be 0 (sized from the images) or positive")
        if not 1 <= self.output_url_seconds <= MAX_PRESIGN_SECONDS:
            raise SettingsError(f"GPUORCH_OUTPUT_URL_SECONDS must be between 1 and {MAX_PRESIGN_SECONDS}")
        if self.log_format not in ("json", "text"):
            raise SettingsError("GPUORCH_LOG_FORMAT must be json or text")
        if self.aws_max_attempts < 1:
            raise SettingsError("GPUORCH_AWS_MAX_ATTEMPTS must be at least 1")
        if self.aws_write_attempts < 1:
            raise SettingsError("GPUORCH_AWS_WRITE_ATTEMPTS must be at least 1")
        if self.gpu_pipeline_depth < 1:
            raise SettingsError("GPUORCH_GPU_PIPELINE_DEPTH must be at least 1")
        if not NAMESPACE_PATTERN.match(self.monitoring_namespace):
            raise SettingsError("GPUORCH_MONITORING_NAMESPACE must be 1-30 letters, digits, - or _")
        if not 0 < self.flower_port < 65536:
            raise SettingsError("GPUORCH_FLOWER_PORT must be between 1 and 65535")
        for var, port in (("GPUORCH_GPU_METRICS_PORT", self.gpu_metrics_port),
                          ("GPUORCH_CONTROL_METRICS_PORT", self.control_metrics_port)):
            if not 0 <= port < 65536:
                raise SettingsError(f"{var} must be between 0 (not served) and 65535")
        if self.lifecycle_policy not in ("fixed", "learned"):
            raise SettingsError(f"GPUORCH_LIFECYCLE_POLICY must be fixed or learned, not {self.lifecycle_policy!r}")
        if self.wait_value_usd_per_hour < 0:
            raise SettingsError("GPUORCH_WAIT_VALUE_USD_PER_HOUR must not be negative")
        if self.startup_retry_seconds < 0:
            raise SettingsError("GPUORCH_STARTUP_RETRY_SECONDS must not be negative")
        if self.gpu_busy_window_seconds < 1:
            raise SettingsError("GPUORCH_GPU_BUSY_WINDOW_SECONDS must be positive")
        if self.flower_inspect_timeout <= 0:
            raise SettingsError("GPUORCH_FLOWER_INSPECT_TIMEOUT must be positive")
        if self.key_cache_seconds < 0:
            raise SettingsError("GPUORCH_KEY_CACHE_SECONDS must not be negative")
        if self.owner_monthly_cap_usd < 0:
            raise SettingsError("GPUORCH_OWNER_MONTHLY_CAP_USD must be 0 (no cap) or positive")
        if self.spend_check_seconds < 0:
            raise SettingsError("GPUORCH_SPEND_CHECK_SECONDS must not be negative")
        if self.backlog_check_seconds < 0:
            raise SettingsError("GPUORCH_BACKLOG_CHECK_SECONDS must not be negative")
        if self.rate_limit_per_minute < 0:
            raise SettingsError("GPUORCH_RATE_LIMIT_PER_MINUTE must be 0 (no limit) or positive")
        if self.rate_limit_burst < 1:
            raise SettingsError("GPUORCH_RATE_LIMIT_BURST must be at least 1")
        if self.expiry_sweep_seconds < 1:
            raise SettingsError("GPUORCH_EXPIRY_SWEEP_SECONDS must be at least 1")
        if self.webhook_timeout_seconds <= 0 or self.webhook_sweep_seconds < 1:
            raise SettingsError("GPUORCH_WEBHOOK_TIMEOUT_SECONDS must be positive, GPUORCH_WEBHOOK_SWEEP_SECONDS at "
                                "least 1")
        if self.api_waiters < 0:
            raise SettingsError("GPUORCH_API_WAITERS must be 0 (no waiting) or positive")
        if self.wait_poll_seconds <= 0:
            raise SettingsError("GPUORCH_WAIT_POLL_SECONDS must be positive")
        if self.max_backlog < 0:
            raise SettingsError("GPUORCH_MAX_BACKLOG must be 0 (no limit) or positive")
        if not 0 <= self.spot_max_share <= 1:
            raise SettingsError("GPUORCH_SPOT_MAX_SHARE must be between 0 (spot never preferred) and 1")
        if self.spot_hold_seconds < 0:
            raise SettingsError("GPUORCH_SPOT_HOLD_SECONDS must not be negative")
        if self.interruption_check_seconds < 0:
            raise SettingsError("GPUORCH_INTERRUPTION_CHECK_SECONDS must be 0 (never) or positive")
        if self.models_read_mib_s <= 0:
            raise SettingsError("GPUORCH_MODELS_READ_MIB_S must be positive")
        if self.ebs_kms_key and not re.fullmatch(r"arn:aws:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+", self.ebs_kms_key):
            raise SettingsError("GPUORCH_EBS_KMS_KEY must be empty or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)")
        if self.instance_metadata_url and not self.instance_metadata_url.startswith(("http://", "https://")):
            raise SettingsError("GPUORCH_INSTANCE_METADATA_URL must be empty (EC2's, on EC2 only) or an http(s) URL")

    @property
    def models(self) -> ModelFiles:
        return ModelFiles(
            diffusion_model=self.diffusion_model,
            text_encoder=self.text_encoder,
            vae=self.vae,
            lightning_4step_lora=self.lightning_4step_lora,
            lightning_8step_lora=self.lightning_8step_lora,
            camera_lora=self.camera_lora,
        )

    @property
    def soft_time_limit(self) -> int:
        """The soft time limit of a GPU job: SOFT_LIMIT_MARGIN before the hard one, but at most a quarter of it,
        so that a short limit still leaves the job most of its time (7 s gives 6 s, not 1 s); at least 1 s."""
        limit = self.task_time_limit
        return max(1, limit - min(SOFT_LIMIT_MARGIN, max(1, limit // 4)))

    @property
    def job_ttl_seconds(self) -> int:
        return self.job_ttl_days * 86400


def documented_variables() -> list[tuple[str, Any, str]]:
    """(variable, default, description) for every setting: the README's table is made from this."""
    return [(f.metadata["env"], f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that make `Settings.from_env()` in a child process equal `settings`."""
    out = {}
    for f in dataclasses.fields(Settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, tuple):
            text = ",".join(value)
        else:
            text = str(value)
        out[f.metadata["env"]] = text
    return out
