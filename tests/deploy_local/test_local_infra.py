"""Smoke tests: the deploy/local Kafka, MinIO and PostgreSQL really serve clients."""

from __future__ import annotations

import io

import pytest

pytestmark = pytest.mark.infra


def test_kafka_delivers_a_produced_message_to_a_consumer(
    kafka_bootstrap: str, unique_topic: str
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    try:
        metadata = producer.send(unique_topic, key=b"exam-1", value=b"hello sonobridge").get(
            timeout=60
        )
    finally:
        producer.close()
    assert metadata.topic == unique_topic

    consumer = KafkaConsumer(
        unique_topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique_topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    received: list[tuple[bytes, bytes]] = []
    try:
        for message in consumer:
            received.append((message.key, message.value))
            break
        consumer.commit()
    finally:
        consumer.close()
    assert received == [(b"exam-1", b"hello sonobridge")]


def test_minio_returns_the_object_that_was_put(minio_endpoint, unique_bucket: str) -> None:
    from minio import Minio

    client = Minio(
        minio_endpoint.endpoint,
        access_key=minio_endpoint.access_key,
        secret_key=minio_endpoint.secret_key,
        secure=False,
    )
    payload = b"DICM" + bytes(range(256))
    client.make_bucket(unique_bucket)
    try:
        client.put_object(unique_bucket, "exams/1.dcm", io.BytesIO(payload), len(payload))
        response = client.get_object(unique_bucket, "exams/1.dcm")
        try:
            assert response.read() == payload
        finally:
            response.close()
            response.release_conn()
    finally:
        client.remove_object(unique_bucket, "exams/1.dcm")
        client.remove_bucket(unique_bucket)


def test_postgres_answers_select_version(postgres_url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("select version()")).scalar_one()
    finally:
        engine.dispose()
    assert version.startswith("PostgreSQL 15.")


def test_pg_database_gives_each_test_its_own_writable_database(pg_database: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_database)
    try:
        with engine.begin() as conn:
            conn.execute(text("create table probe (id int primary key)"))
            conn.execute(text("insert into probe values (1)"))
            name = conn.execute(text("select current_database()")).scalar_one()
            count = conn.execute(text("select count(*) from probe")).scalar_one()
    finally:
        engine.dispose()
    assert name.startswith("test_")
    assert count == 1
