"""Event bus port, its Kafka and embedded adapters, and the consumer worker."""

from sonobridge.common.bus.ports import EventBus, ReceivedEvent, Subscription, dlq_topic

__all__ = ["EventBus", "ReceivedEvent", "Subscription", "dlq_topic"]
