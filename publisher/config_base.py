"""The base of every settings section: strict values, unknown keys refused, no control characters.
Its own module so the sections in publisher.config and publisher.config_mail share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from publisher import config_rules as rules


class Section(BaseModel):
    # strict: "yes" is not a bool, "30" is not a number; no inf or nan anywhere. TOML has no path
    # type, so each Path field says strict=False (it takes text, and only text).
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, Path):
            return rules.check_path(value)
        return rules.check_text(value, info.field_name)
