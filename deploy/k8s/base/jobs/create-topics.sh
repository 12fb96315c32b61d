#!/bin/sh
# Create every SonoBridge topic and its dead-letter companion; existing topics are left as they are.
set -eu
topics_file="${TOPICS_FILE:-/etc/sonobridge/topics/topics.txt}"
kafka_topics="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

create() {
    "$kafka_topics" --bootstrap-server "$KAFKA__BOOTSTRAP_SERVERS" --create --if-not-exists \
        --topic "$1" --partitions "$TOPIC_PARTITIONS" \
        --replication-factor "$TOPIC_REPLICATION_FACTOR" \
        --config "min.insync.replicas=$TOPIC_MIN_INSYNC_REPLICAS" \
        --config "retention.ms=$2"
}

count=0
while IFS= read -r topic || [ -n "$topic" ]; do
    case "$topic" in '' | '#'*) continue ;; esac
    create "$topic" "$TOPIC_RETENTION_MS"
    # Dead letters wait for a person, so they are kept longer than the live stream.
    create "$topic.dlq" "$DLQ_RETENTION_MS"
    count=$((count + 2))
done <"$topics_file"
echo "ensured $count topics on $KAFKA__BOOTSTRAP_SERVERS"
