"""Validation per device model: look a state up, promote on a report, demote on expert labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sonobridge.common.auth import Principal
from sonobridge.common.problems import InvalidInput, Unavailable
from sonobridge.inference.domain.validation import (
    GATING_MODELS,
    DeviceModel,
    DeviceValidation,
    ExpertLabel,
    PromotionRefused,
    StateChange,
    ValidationPolicy,
    ValidationReport,
    ValidationState,
    demotion_target,
    promotion_shortfalls,
)
from sonobridge.inference.handlers import Dependencies
from sonobridge.inference.ports import DeviceValidations, ServedModel

# Who may label an instance's quality: experts reading, and reporting on their behalf.
LABELLERS = ("expert", "admin", "service")


def device_state(deps: Dependencies, model: ServedModel, device: DeviceModel) -> ValidationState:
    """Return the state of a served gating model on a device model (the card's default if none)."""
    name = model.card.name
    stored = deps.validations.find(name, device) if deps.validations is not None else None
    state = (
        stored.state if stored else ValidationPolicy.of_card(model.card.raw).default_state(device)
    )
    _show(deps, name, device, state)
    return state


def list_validations(deps: Dependencies) -> list[DeviceValidation]:
    """Return every stored state, by model then device model."""
    found = _store(deps).all()
    return sorted(found, key=lambda v: (v.model_name, v.device.key))


def promote_device_model(
    deps: Dependencies,
    principal: Principal,
    report_body: Mapping[str, Any],
    *,
    to_state: str = ValidationState.GATING,
    reason: str = "",
) -> StateChange:
    """Promote a model on a device model when its validation report meets the card (admins).

    The report must be of the version served now: a report of another version says nothing
    of the weights that would gate.
    """
    principal.require_role("admin")
    target = _state(to_state)
    report = ValidationReport.of_json(report_body)
    model = _gating_model(deps, report.model_name)
    if report.model_version != model.card.version:
        raise PromotionRefused(
            f"the report is of {report.model_name} {report.model_version}; "
            f"{model.card.version} is served"
        )
    short = promotion_shortfalls(ValidationPolicy.of_card(model.card.raw), report)
    if short:
        raise PromotionRefused(f"validation report refused: {'; '.join(short)}")
    current = device_state(deps, model, report.device)
    if _rank(target) <= _rank(current):
        raise PromotionRefused(
            f"{report.device.key} is already {current.value} for {model.card.name}"
        )
    why = (
        f"validation report: {report.n_frames} frames, false-rescan rate "
        f"{report.false_rescan_rate:.3f}, fault catch rate {report.fault_catch_rate:.3f}"
    )
    change = StateChange(
        model.card.name,
        model.card.version,
        report.device,
        current,
        target,
        principal.user,
        f"{reason}; {why}" if reason else why,
        deps.clock(),
    )
    _record(deps, change, "promotion")
    return change


def record_quality_labels(
    deps: Dependencies, principal: Principal, labels: Sequence[ExpertLabel]
) -> list[StateChange]:
    """Keep experts' quality labels and demote any model whose rolling window now fails its card.

    Labels are kept before the window is judged; a failure in between is repaired by the
    next label of that device model, which judges the same window again.
    """
    principal.require_role(*LABELLERS)
    for label in labels:
        _gating_model(deps, label.model_name)
    store = _store(deps)
    store.add_labels(labels)
    changes = []
    for name, device in sorted({(lb.model_name, lb.device) for lb in labels}, key=str):
        model = _gating_model(deps, name)
        policy = ValidationPolicy.of_card(model.card.raw)
        current = device_state(deps, model, device)
        target = demotion_target(policy, current, store.window(name, device, policy.window))
        if target is None:
            continue
        change = StateChange(
            name,
            model.card.version,
            device,
            current,
            target[0],
            principal.user,
            target[1],
            deps.clock(),
        )
        _record(deps, change, "demotion")
        changes.append(change)
    return changes


def show_stored_states(deps: Dependencies) -> None:
    """Export every stored state as a metric (at start-up, before any lookup)."""
    if deps.validations is None:
        return
    for v in deps.validations.all():
        _show(deps, v.model_name, v.device, v.state)


def _record(deps: Dependencies, change: StateChange, trigger: str) -> None:
    _store(deps).change(change)
    deps.metrics.validation_changes.labels(
        change.model_name, change.from_state.value, change.to_state.value, trigger
    ).inc()
    _show(deps, change.model_name, change.device, change.to_state)


def _show(deps: Dependencies, model: str, device: DeviceModel, state: ValidationState) -> None:
    for each in ValidationState:
        deps.metrics.validation_state.labels(model, device.key, each.value).set(each is state)


def _store(deps: Dependencies) -> DeviceValidations:
    if deps.validations is None:
        raise Unavailable("this replica keeps no validation states")
    return deps.validations


def _gating_model(deps: Dependencies, name: str) -> ServedModel:
    if name not in GATING_MODELS:
        raise InvalidInput(f"{name!r} is not a gating model ({', '.join(GATING_MODELS)})")
    return deps.models.get(name)


def _state(name: str) -> ValidationState:
    try:
        return ValidationState(name)
    except ValueError as exc:
        raise InvalidInput(f"unknown validation state {name!r}") from exc


def _rank(state: ValidationState) -> int:
    return list(ValidationState).index(state)
