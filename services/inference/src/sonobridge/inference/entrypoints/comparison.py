"""The shadow-vs-serving comparison as a JSON document and as text, for REST and the CLI."""

from __future__ import annotations

from typing import Any

from sonobridge.inference.domain.comparison import VersionComparison


def comparison_document(found: VersionComparison) -> dict[str, Any]:
    """Return the comparison as JSON: counts and rates only, no instance or patient data."""
    return {
        "model": found.model_name,
        "serving_version": found.serving_version,
        "device_models": [
            {
                "device_model": d.device.key,
                "versions": [
                    {
                        "version": f.version,
                        "stage": f.stage,
                        "labelled_instances": f.labelled,
                        "clean_labels": f.clean,
                        "faulty_labels": f.faulty,
                        "false_rescans": f.false_rescans,
                        "faults_caught": f.faults_caught,
                        "false_rescan_rate": f.false_rescan_rate,
                        "fault_catch_rate": f.fault_catch_rate,
                    }
                    for f in d.versions
                ],
                "agreement_with_serving": [
                    {
                        "version": a.version,
                        "instances_judged_by_both": a.both,
                        "agreeing": a.agreeing,
                        "rate": a.rate,
                    }
                    for a in d.agreements
                ],
                "recommendations": list(d.recommendations),
            }
            for d in found.devices
        ],
    }


def comparison_text(found: VersionComparison) -> str:
    """Return the comparison as a plain-text table per device model."""
    lines = [f"{found.model_name}: serving {found.serving_version}"]
    if not found.devices:
        lines.append("no labelled instance has a stored verdict yet")
    for d in found.devices:
        lines.append(f"\n{d.device.key}")
        lines.append(
            f"  {'version':<10}{'stage':<9}{'labelled':>9}{'clean':>7}{'faulty':>7}"
            f"{'false rescans':>15}{'faults caught':>15}"
        )
        for f in d.versions:
            lines.append(
                f"  {f.version:<10}{f.stage:<9}{f.labelled:>9}{f.clean:>7}{f.faulty:>7}"
                f"{_count(f.false_rescans, f.false_rescan_rate):>15}"
                f"{_count(f.faults_caught, f.fault_catch_rate):>15}"
            )
        for a in d.agreements:
            rate = "n/a" if a.rate is None else f"{a.rate:.0%}"
            lines.append(
                f"  agreement {a.version} vs {found.serving_version}: "
                f"{a.agreeing}/{a.both} ({rate})"
            )
        lines += [f"  {r}" for r in d.recommendations]
    return "\n".join(lines)


def _count(n: int, rate: float | None) -> str:
    return f"{n} ({'n/a' if rate is None else f'{rate:.0%}'})"
