"""The inbox outlives every copy of an event the deployed Kafka topics can still hand out."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from deploy_k8s.k8s_support import K8S

from sonobridge.common.settings import DeliverySettings

# Kafka deletes a record only with its segment, and rolls a quiet topic's segment after
# segment.ms: a record can outlive retention.ms by that much. Kafka's default, unless set.
KAFKA_SEGMENT_MS = 604_800_000


def _job_topic_configs() -> list[dict[str, int]]:
    kustomization = yaml.safe_load((K8S / "base" / "jobs" / "kustomization.yaml").read_text())
    for generator in kustomization["configMapGenerator"]:
        if generator["name"] == "sonobridge-kafka-topics":
            literals = dict(item.split("=", 1) for item in generator["literals"])
            return [{"retention.ms": int(literals["TOPIC_RETENTION_MS"])}]
    raise AssertionError("no sonobridge-kafka-topics settings in the jobs kustomization")


def _strimzi_topic_configs() -> list[dict[str, int]]:
    topics = yaml.safe_load_all((K8S / "examples" / "strimzi" / "kafkatopics.yaml").read_text())
    return [
        {key: int(value) for key, value in topic["spec"]["config"].items() if key.endswith("ms")}
        for topic in topics
        if topic and not topic["spec"]["topicName"].endswith(".dlq")
    ]


def _deployed_delivery_settings() -> DeliverySettings:
    """The delivery settings every service gets from the base's sonobridge-common ConfigMap."""
    kustomization = yaml.safe_load((K8S / "base" / "common" / "kustomization.yaml").read_text())
    for generator in kustomization["configMapGenerator"]:
        if generator["name"] == "sonobridge-common":
            literals = dict(item.split("=", 1) for item in generator["literals"])
            prefix = "DELIVERY__"
            return DeliverySettings(
                **{k[len(prefix) :].lower(): v for k, v in literals.items() if k.startswith(prefix)}
            )
    raise AssertionError("no sonobridge-common settings in the common kustomization")


@pytest.mark.parametrize("configs", [_job_topic_configs, _strimzi_topic_configs])
def test_the_deployed_redelivery_horizon_covers_the_deployed_topics(configs: object) -> None:
    # Dead-letter topics are left out: a dead letter never reached the inbox, so replaying it
    # is its first processing, not a duplicate.
    topics = configs()  # type: ignore[operator]
    assert topics
    for settings in (DeliverySettings(), _deployed_delivery_settings()):
        horizon = timedelta(days=settings.redelivery_horizon_days)
        # Validated at start-up: the inbox outlives the horizon.
        assert settings.inbox_retention_days >= settings.redelivery_horizon_days
        for config in topics:
            kept = config["retention.ms"] + config.get("segment.ms", KAFKA_SEGMENT_MS)
            assert timedelta(milliseconds=kept) <= horizon, config
