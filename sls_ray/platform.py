"""The platform profile: every constant of the simulated cloud, with provenance.

Values and tags come from ../shared/papers/platform.md; ``configs/platforms/aws_2020.yaml``
holds the 2020 AWS profile. Tags: [doc] vendor documentation, [src] paper source code,
[paper] the paper, [est] an unverified estimate (figures that depend on one say so).
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

MB = 1_000_000
MiB = 1 << 20


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FunctionsProfile(Strict):
    """AWS Lambda as of 2019-2020 (platform.md, "Functions").

    Every number has its legal range (a negative price or cold start, a zero bandwidth or
    concurrency limit is an error naming the field), and infinities and NaN are refused.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    memory_mb_min: int = Field(128, ge=1, description="smallest memory size [doc]")
    memory_mb_max: int = Field(3008, ge=1, description="largest memory size in 2020 [doc]")
    memory_step_mb: int = Field(64, ge=1, description="memory sizes come in these steps [doc]")
    mb_per_vcpu: float = Field(1769.0, gt=0, description="memory that buys one full vCPU [doc]")
    max_vcpus: float = Field(6.0, gt=0, description="vCPU cap at the largest size [doc]")
    gflops_per_vcpu: float = Field(14.0, gt=0, description="GEMM GFLOP/s of one full vCPU, PyWren [src]")
    mem_bandwidth_gbs: float = Field(8.0, gt=0, description="streaming memory bandwidth per vCPU, GB/s [est]")
    nic_mbs: float = Field(70.0, gt=0, description="per-function network bandwidth at large memory, MB/s [paper][src]")
    max_duration_s: float = Field(900.0, gt=0, description="timeout cap (15 min) [doc]")
    default_timeout_s: float = Field(900.0, gt=0, description="timeout when a handler does not set one [doc]")
    default_memory_mb: int = Field(1024, ge=1, description="memory when a handler does not set one [est]")
    tmp_disk_mb: int = Field(512, ge=0, description="/tmp disk [doc]")
    payload_sync_bytes: int = Field(6 * 1024 * 1024, ge=0, description="synchronous invocation payload limit: "
                                    "'6 MB' as the Invoke API counts it, 6 MiB [doc]")
    payload_async_bytes: int = Field(256 * 1024, ge=0, description="asynchronous (event) payload limit [doc]")
    concurrency_limit: int = Field(1000, ge=1, description="concurrent executions per account [doc]")
    invoke_latency_s: float = Field(0.02, gt=0, description="Invoke API round trip [est]")
    cold_start_s: float = Field(0.5, ge=0, description="median cold-start latency [est]")
    cold_start_sigma: float = Field(0.25, ge=0, description="lognormal sigma of cold starts [est]")
    warm_start_s: float = Field(0.005, ge=0, description="start latency of a warm container [est]")
    keep_alive_s: float = Field(600.0, ge=0, description="an idle container stays warm this long [est]")
    runtime_base_mb: float = Field(60.0, ge=0, description="working set of the language runtime itself [est]")
    price_per_gb_s: float = Field(0.0000166667, ge=0, description="USD per GB-second [doc]")
    price_per_request: float = Field(0.20e-6, ge=0, description="USD per invocation [doc]")
    billing_granularity_ms: float = Field(100.0, ge=0, description="duration rounded up to this (100 ms in 2020) [doc]")
    bill_init: bool = Field(False, description="whether a cold start's INIT phase is billed as duration "
                                                "(not for managed runtimes in 2020; for every function since "
                                                "1 August 2025) [doc]")
    async_retries: int = Field(2, ge=0, description="retries of a failed asynchronous invocation [doc]")
    async_retry_delays_s: list[float] = Field([60.0, 120.0], description="delay before each async retry [doc][est]")
    throttle_backoff_s: float = Field(0.1, ge=0, description="first client backoff after a 429 [est]")
    throttle_backoff_max_s: float = Field(20.0, ge=0, description="backoff cap [est]")
    throttle_max_retries: int = Field(50, ge=0, description="client retries of a throttled sync invoke [est]")
    duplicate_delivery_prob: float = Field(0.0, ge=0.0, le=1.0,
                                           description="chance an async event is delivered twice (at-least-once) [est]")

    @field_validator("async_retry_delays_s")
    @classmethod
    def _non_negative(cls, v: list[float]) -> list[float]:
        if any(d < 0 for d in v):
            raise ValueError("retry delays must be >= 0 seconds")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "FunctionsProfile":
        if self.memory_mb_min > self.memory_mb_max:
            raise ValueError(f"memory_mb_min={self.memory_mb_min} is above memory_mb_max={self.memory_mb_max}; "
                             f"the smallest memory size must not exceed the largest")
        problem = self.memory_problem(self.default_memory_mb)
        if problem:
            raise ValueError(f"default_memory_mb={self.default_memory_mb} {problem}")
        return self

    def memory_problem(self, memory_mb: int) -> str:
        """What is wrong with a memory size on this platform ('' when it is a legal size)."""
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, int):
            return "is not a whole number of MB"
        if not (self.memory_mb_min <= memory_mb <= self.memory_mb_max):
            return (f"is outside the platform's range [{self.memory_mb_min}, {self.memory_mb_max}] MB; pick a size "
                    f"in range or raise functions.memory_mb_max in the platform profile")
        if (memory_mb - self.memory_mb_min) % self.memory_step_mb:
            below = memory_mb - (memory_mb - self.memory_mb_min) % self.memory_step_mb
            return (f"is off the platform's grid of {self.memory_step_mb} MB steps from {self.memory_mb_min} MB "
                    f"(functions.memory_step_mb); pick {below} or {below + self.memory_step_mb}")
        return ""

    def vcpus(self, memory_mb: int) -> float:
        """vCPU share is proportional to memory (1,769 MB = one vCPU) [doc]."""
        return min(memory_mb / self.mb_per_vcpu, self.max_vcpus)

    def check_memory(self, memory_mb: int, where: str) -> None:
        """Raise ConfigError (exit 2) when ``memory_mb`` is not a size this platform offers."""
        problem = self.memory_problem(memory_mb)
        if problem:
            from sls_ray.errors import ConfigError  # bad input: the CLI exits 2 with this message

            raise ConfigError(f"{where}: memory_mb={memory_mb} {problem}")


class PlatformProfile(Strict):
    """A whole simulated cloud: functions plus named storage services."""

    name: str = Field("custom", description="profile name, shown in outputs")
    description: str = Field("", description="what era/vendor this profile models")
    functions: FunctionsProfile = Field(default_factory=FunctionsProfile)
    services: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="service name -> settings; 'kind' picks the stand-in from sls_ray.storage.REGISTRY",
    )
    provenance: dict[str, str] = Field(
        default_factory=dict, description="dotted field path -> provenance tag ([doc], [src], [paper], [est])"
    )

    #: name -> the service's typed config (its registry class's ``Config``), validated once
    _service_configs: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _validate_services(self) -> "PlatformProfile":
        """Each service's settings are checked once, here, against its kind's own Config model
        (unknown keys and out-of-range values named); everything else reads the typed result."""
        from sls_ray.storage import validate_service_config

        self._service_configs = {name: validate_service_config(name, raw) for name, raw in self.services.items()}
        return self

    def service_config(self, name: str):
        """The typed config of service ``name`` (KeyError if the profile has none)."""
        return self._service_configs[name]

    def tag(self, path: str) -> str:
        """Provenance tag of a constant, '[?]' when the profile does not say."""
        return self.provenance.get(path, "[?]")
