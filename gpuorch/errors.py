"""Every error gpuorch raises, in one tree branched by what a caller can do about it.

    GpuorchError
    ├── RequestRefused           the request (or a queue message) can never be accepted as it is; nothing was
    │   │                        recorded or queued
    │   ├── ParamsInvalid        a request's fields, each with its reasons (`errors`: field -> [reason])
    │   │   ├── InputTooLarge    ... an inline image over GPUORCH_MAX_INPUT_BYTES (`too_large` names those fields)
    │   │   ├── IdempotencyKeyReused  ... an idempotency key sent with another request
    │   │   │                    (gpuorch.jobs.idempotency)
    │   │   ├── TooManyAtOnce    ... a batch no limit admits whole, whatever the wait
    │   │   │                    (gpuorch.access.ratelimit)
    │   │   └── PeriodError      ... a cost period that cannot be reported (lifecycle.live.costs)
    │   ├── UnknownWorkflow      no workflow of that name (also a KeyError)
    │   ├── InputRejected        an input image that can never be used as given (gpuorch.inputs)
    │   ├── BindError            parameters or images that do not fit the workflow (gpuorch.workflows)
    │   ├── InvalidCursor        a list cursor this service did not hand out (gpuorch.jobs.store)
    │   ├── MessageRejected      a GPU queue message that can never run (gpuorch.jobs.messages)
    │   ├── ComfyRejected        ComfyUI refused the prompt as sent (gpuorch.comfyui)
    │   ├── InvalidKey           an API key's fields that a key cannot have (gpuorch.access.keys)
    │   ├── UnknownKey           no API key has the id (gpuorch.access.keys)
    │   └── ApiError             the API's own refusals: no key, a body that is not JSON, ... (webapp.errors)
    ├── AdmissionRefused         refused for now, nothing recorded; `retry_after` says when to try again
    │   ├── RateLimited          the API key spent its allowance (gpuorch.access.ratelimit)
    │   ├── BacklogFull          the GPU queue holds GPUORCH_MAX_BACKLOG jobs (gpuorch.access.backlog)
    │   ├── SpendCapReached      the key's owner spent its GPU cap this month (gpuorch.access.spend)
    │   ├── IdempotencyKeyInUse  the same request with its idempotency key is being submitted now
    │   │                        (gpuorch.jobs.idempotency)
    │   └── TooManyWaiters       an API process has GPUORCH_API_WAITERS requests waiting for jobs (gpuorch.jobs.watch)
    ├── JobOutcome               a job ended other than succeeded: what a GPU task and AsyncResult.get() raise
    │   ├── JobFailed            ... failed; the message is its record's reason
    │   ├── JobCancelled         ... was cancelled
    │   └── JobExpired           ... was not started by its deadline
    ├── Conflict                 the state of a record (or of an instance) does not allow the move
    │   ├── TransitionRefused    a late or duplicate writer of a job's status (gpuorch.jobs.store)
    │   ├── RedriveRefused       a dead letter's job moved on before redrive resubmitted it (gpuorch.jobs.redrive)
    │   ├── UnknownInstance      the id names no live instance of the GPU pool (lifecycle.live.pool)
    │   └── LeaseBusy            another owner holds the lease (lifecycle.live.lease)
    ├── Unavailable              a dependency cannot be reached or serve now; trying again later may work
    │   ├── JobDeferred          a job whose record cannot be reached, or is missing: its message goes back to SQS
    │   │   └── JobGivenBack     ... or whose spot instance is interrupted before it can end: back at once
    │   ├── ComfyUnavailable     ComfyUI refused, reset or timed out the connection, or answered 5xx (gpuorch.comfyui)
    │   │   └── ComfyPromptLost  ... and forgot the prompt (it restarted)
    │   ├── InputUnavailable     an input that could not be fetched now (gpuorch.inputs)
    │   ├── OutputsNotStored     S3 kept refusing an output (gpuorch.execution.runner)
    │   ├── CatalogueUnavailable no ComfyUI node catalogue to check against (gpuorch.workflows.preflight)
    │   ├── SourceUnavailable    a model file's source could not be read (gpuorch.modelsync.fetch)
    │   ├── Ec2Unavailable       EC2 kept throttling, failing or not answering (lifecycle.live.pool)
    │   ├── CapacityError        EC2 has no capacity for the instance types tried (lifecycle.live.pool)
    │   ├── UnreadItems          DynamoDB kept leaving heartbeats or refusals unread (lifecycle.live.instance_items)
    │   └── ProbeFailed          a dependency answered, but not with what the API needs (webapp.health)
    └── ConfigurationError       settings, workflow folders or the environment cannot work; a process refuses to start
        ├── SettingsError        a GPUORCH_* variable gpuorch cannot use (gpuorch.settings)
        ├── WorkflowDefinitionError  a workflow folder that cannot be used (gpuorch.workflows)
        ├── SourceMismatch       a model file's source holds other bytes than its declaration (gpuorch.modelsync.fetch)
        ├── IdentityError        a GPU worker that cannot tell which EC2 instance it runs on (lifecycle.live.identity)
        ├── TraceError           a simulator trace that cannot be read (lifecycle.simulation)
        ├── PolicyError          a simulator policy that names none (lifecycle.simulation)
        ├── ScheduleError        a warm window that cannot be read (lifecycle.schedule)
        ├── DeployRefused        settings or options that cannot make a working deployment (gpuorch.deploy)
        ├── ImageError           no usable AMI behind the image parameter (gpuorch.deploy.images)
        ├── PlacementError       no zone of the subnets offers the instance type (gpuorch.deploy.network)
        ├── RenderError          an IAM document with a variable left without a value (gpuorch.deploy.policies)
        ├── NotACheckout         no source tree to ship as the release (gpuorch.deploy.source)
        └── StackFailed          the stack did not complete; CloudFormation's reasons (gpuorch.deploy.stack)

Two families keep a base of their own beside their branch: ComfyError, every failure of the ComfyUI client
(ComfyUnavailable and ComfyRejected as above; ComfyExecutionError, ComfyInterrupted, ComfyTimeout and
ComfyProtocolError, which only ComfyError names), and InputError (InputRejected, InputUnavailable).

Callers decide by branch: a refused request is not retried, a refused admission is retried after
`retry_after`, an unavailable dependency is retried later, a configuration error stops the process.
JobFailed, JobCancelled and JobExpired stay in this module: Celery's result backend re-raises them by this name.
"""

from __future__ import annotations

from collections.abc import Iterable


class GpuorchError(Exception):
    """Base of every error gpuorch raises."""


class RequestRefused(GpuorchError):
    """The request can never be accepted as it is; nothing was recorded or queued."""


class AdmissionRefused(GpuorchError):
    """The request is refused for now, nothing recorded; it may be accepted after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class JobOutcome(GpuorchError):
    """A job ended other than succeeded."""


class Conflict(GpuorchError):
    """The state of a record (or of an instance) does not allow the move asked for."""


class Unavailable(GpuorchError):
    """A dependency cannot be reached or serve now; trying again later may work."""


class ConfigurationError(GpuorchError):
    """Settings, workflow folders or the environment cannot work; a process refuses to start with one."""


class ParamsInvalid(RequestRefused, ValueError):
    """A request whose fields fail validation; `errors` maps each field to its reasons."""

    def __init__(self, errors: dict, message: str | None = None):
        self.errors = errors
        super().__init__(message or f"invalid job request: {errors}")


class InputTooLarge(ParamsInvalid):
    """A job request with an inline image over the byte limit (the API answers 413); `too_large` names those
    fields, `errors` every refused field."""

    def __init__(self, errors: dict, too_large: list[str]):
        super().__init__(errors)
        self.too_large = too_large


class UnknownWorkflow(RequestRefused, KeyError):
    """No workflow of that name is in the catalogue; `known` lists those that are."""

    def __init__(self, name: str, known: Iterable[str]):
        self.name = name
        self.known = tuple(known)
        super().__init__(name)

    def __str__(self) -> str:
        # KeyError would print the repr of its argument; say what is known instead.
        return f"No workflow is named {self.name!r}; known: {', '.join(self.known) or 'none'}."


class JobFailed(JobOutcome):
    """Raised by a GPU task (and so by `AsyncResult.get()`) when its job failed; the message is the reason."""


class JobCancelled(JobOutcome):
    """Raised by a GPU task (and so by `AsyncResult.get()`) when its job was cancelled."""


class JobExpired(JobOutcome):
    """Raised by a GPU task (and so by `AsyncResult.get()`) when its job was not started by its deadline: it never
    ran."""


class JobDeferred(Unavailable):
    """A job that cannot go on now (its record unreachable or missing): its message goes back to the queue."""


class JobGivenBack(JobDeferred):
    """A job its GPU worker gives back because EC2 interrupts the (spot) instance before the job could surely end:
    its message is made visible again at once, for another instance."""
