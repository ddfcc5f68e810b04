"""The `ha:` section: one leader per account among processes sharing a PostgreSQL journal."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class HaConfig(BaseModel):
    """`ha:` — active-standby on one PostgreSQL journal (docs/high-availability.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    group: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="one name per account: the processes of a group elect one leader",
    )
    lease_s: float = Field(default=10.0, ge=1.0, le=600.0, description="leadership lease")
    renew_s: float | None = Field(
        default=None, gt=0, description="how often the leader renews; default lease_s / 3"
    )

    @model_validator(mode="after")
    def _renew_within_lease(self) -> HaConfig:
        # the fence wants a quarter of the lease left at each write: renewing at half keeps it
        if self.renew_s is not None and self.renew_s > self.lease_s / 2:
            raise ValueError(
                f"renew_s {self.renew_s} is more than half of lease_s {self.lease_s}; renew at "
                f"most every {self.lease_s / 2:g} s"
            )
        return self

    @property
    def renew_every_s(self) -> float:
        return self.renew_s if self.renew_s is not None else self.lease_s / 3
