"""Event and service contracts: every message round-trips, every event has a well-named topic."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sonobridge.api.events.v1 import events_pb2, topics
from sonobridge.api.inference.v1 import inference_pb2, inference_pb2_grpc
from sonobridge.api.ingest.v1 import ingest_pb2
from sonobridge.api.maintenance.v1 import maintenance_pb2
from sonobridge.api.reporting.v1 import reporting_pb2

PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
CONTRACT_FILES: tuple[FileDescriptor, ...] = (
    events_pb2.DESCRIPTOR,
    inference_pb2.DESCRIPTOR,
    ingest_pb2.DESCRIPTOR,
    reporting_pb2.DESCRIPTOR,
    maintenance_pb2.DESCRIPTOR,
)
# Messages in events.proto that are parts of events, not events with a topic of their own.
EVENT_PARTS = {
    "InstanceRef",
    "PixelSpacing",
    "ExamContext",
    "Finding",
    "QualityAssessment",
    "InstanceQuality",
    "ModelRef",
    "ProbeHealth",
    "AiAgreement",
}
PRODUCERS = {"ingest", "inference", "reporting", "maintenance"}
TOPIC_NAME = re.compile(r"^sonobridge\.(?P<producer>[a-z]+)\.(?P<event>[a-z]+(-[a-z]+)*)\.v1$")


def all_messages(descriptor: Descriptor) -> Iterator[Descriptor]:
    yield descriptor
    for nested in descriptor.nested_types:
        if not nested.GetOptions().map_entry:
            yield from all_messages(nested)


def contract_messages() -> list[Descriptor]:
    return [
        message
        for file in CONTRACT_FILES
        for top in file.message_types_by_name.values()
        for message in all_messages(top)
    ]


def message_class(descriptor: Descriptor) -> type[Message]:
    module = importlib.import_module(
        descriptor.file.name.removesuffix(".proto").replace("/", ".") + "_pb2"
    )
    cls: object = module
    for part in descriptor.full_name.removeprefix(descriptor.file.package + ".").split("."):
        cls = getattr(cls, part)
    assert isinstance(cls, type)
    return cls


def scalar_for(field: FieldDescriptor, salt: int) -> object:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[-1].number
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"{field.name}-{salt}"
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes([1, 2, salt % 256])
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 0.25 + salt
    return 7 + salt


def populate(message: Message, depth: int = 0) -> Message:
    """Set every field (the first member of each oneof) to a non-default value."""
    if isinstance(message, Timestamp):
        message.FromJsonString("2025-03-14T08:30:15.250Z")
        return message
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None and oneof.fields[0] is not field:
            continue
        is_message = field.type == FieldDescriptor.TYPE_MESSAGE
        if is_message and depth > 3:
            continue  # google.protobuf.Struct nests itself without end
        value = getattr(message, field.name)
        if is_message and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                populate(value["key"], depth + 1)
            else:
                value["key"] = scalar_for(value_field, 1)
        elif field.is_repeated:
            for salt in (1, 2):
                if is_message:
                    populate(value.add(), depth + 1)
                else:
                    value.append(scalar_for(field, salt))
        elif is_message:
            populate(value, depth + 1)
        else:
            setattr(message, field.name, scalar_for(field, 0))
    return message


def expected_field_names(descriptor: Descriptor) -> set[str]:
    return {
        field.name
        for field in descriptor.fields
        if field.containing_oneof is None or field.containing_oneof.fields[0] is field
    }


@pytest.mark.parametrize("descriptor", contract_messages(), ids=lambda d: d.full_name)
def test_every_contract_message_round_trips_with_every_field_set(descriptor: Descriptor) -> None:
    cls = message_class(descriptor)
    original = populate(cls())

    from_wire = cls.FromString(original.SerializeToString(deterministic=True))
    from_json = json_format.Parse(json_format.MessageToJson(original), cls())

    assert {field.name for field, _ in original.ListFields()} == expected_field_names(descriptor)
    assert from_wire == original
    assert from_json == original


def test_a_realistic_exam_completed_event_survives_the_wire() -> None:
    started, completed = Timestamp(), Timestamp()
    started.FromJsonString("2025-03-14T08:21:00Z")
    completed.FromJsonString("2025-03-14T08:29:30Z")
    study = "1.2.826.0.1.3680043.8.498.1"
    event = events_pb2.ExamCompleted(
        context=events_pb2.ExamContext(
            exam_id="6f1c2a52-2b5e-4c1e-9a5e-0d7f3b1c9a10",
            study_instance_uid=study,
            institution_id="pujiang-township-03",
            operator_id="nurse-17",
            device_serial="HP-2207-0042",
            exam_type=events_pb2.EXAM_TYPE_CAROTID,
            patient_ref="p-9c2e41",
        ),
        instances=[
            events_pb2.InstanceRef(
                study_instance_uid=study,
                series_instance_uid=f"{study}.1",
                sop_instance_uid=f"{study}.1.{n}",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.3.1",
                object_key=f"dicom/{study}/{study}.1/{study}.1.{n}.dcm",
                sha256="ab" * 32,
                size_bytes=5_242_880,
                transfer_syntax_uid="1.2.840.10008.1.2.4.50",
                number_of_frames=90,
                modality="US",
            )
            for n in (1, 2)
        ],
        instance_count=2,
        total_bytes=10_485_760,
        started_at=started,
        completed_at=completed,
        scan_seconds=510.0,
        manifest_sha256="cd" * 32,
    )

    decoded = events_pb2.ExamCompleted.FromString(event.SerializeToString())

    assert decoded == event
    assert decoded.context.exam_type == events_pb2.EXAM_TYPE_CAROTID
    assert decoded.instances[1].object_key.endswith(".1.2.dcm")
    assert decoded.completed_at.ToSeconds() - decoded.started_at.ToSeconds() == 510
    assert topics.topic_for(decoded) == "sonobridge.ingest.exam-completed.v1"


def test_an_absent_measurement_value_is_told_apart_from_zero() -> None:
    absent = events_pb2.Finding(code="C1")
    zero = events_pb2.Finding(code="C1", value=0.0)

    assert not events_pb2.Finding.FromString(absent.SerializeToString()).HasField("value")
    assert events_pb2.Finding.FromString(zero.SerializeToString()).HasField("value")


def test_every_event_message_has_a_topic_and_parts_have_none() -> None:
    top_level = set(events_pb2.DESCRIPTOR.message_types_by_name)
    events = {f"sonobridge.api.events.v1.{name}" for name in top_level - EVENT_PARTS}

    assert top_level >= EVENT_PARTS
    assert set(topics.TOPICS) == events
    assert len(set(topics.TOPICS.values())) == len(topics.TOPICS)


def test_every_topic_constant_is_mapped_to_an_event() -> None:
    constants = {
        value
        for name, value in vars(topics).items()
        if name.isupper() and isinstance(value, str) and value.startswith("sonobridge.")
    }

    assert constants == set(topics.TOPICS.values())


@pytest.mark.parametrize("ce_type", sorted(topics.TOPICS))
def test_topic_names_follow_producer_event_major_version(ce_type: str) -> None:
    match = TOPIC_NAME.match(topics.TOPICS[ce_type])
    message_name = ce_type.rsplit(".", 1)[1]
    kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", message_name).lower()

    assert match is not None, topics.TOPICS[ce_type]
    assert match["producer"] in PRODUCERS
    assert match["event"] == kebab


@pytest.mark.parametrize("ce_type", sorted(topics.TOPICS))
def test_topic_and_message_class_lookups_agree(ce_type: str) -> None:
    cls = topics.message_class_for(ce_type)

    assert cls.DESCRIPTOR.full_name == ce_type
    assert topics.ce_type_for(cls()) == ce_type
    assert topics.topic_for(cls) == topics.topic_for(cls()) == topics.TOPICS[ce_type]


def test_a_part_message_has_no_topic() -> None:
    with pytest.raises(topics.UnknownEventError, match=r"sonobridge\.api\.events\.v1\.Finding"):
        topics.topic_for(events_pb2.Finding())


def test_an_unknown_ce_type_is_refused_by_name() -> None:
    with pytest.raises(topics.UnknownEventError, match=r"events\.v1\.ExamStarted"):
        topics.message_class_for("sonobridge.api.events.v1.ExamStarted")


def test_the_dead_letter_topic_appends_dlq() -> None:
    assert topics.dlq_topic(topics.REPORT_SIGNED) == "sonobridge.reporting.report-signed.v1.dlq"
    with pytest.raises(ValueError, match="already a dead-letter topic"):
        topics.dlq_topic("sonobridge.reporting.report-signed.v1.dlq")
    with pytest.raises(ValueError, match="empty"):
        topics.dlq_topic("")


def contract_enums() -> list[EnumDescriptor]:
    enums: list[EnumDescriptor] = []
    for file in CONTRACT_FILES:
        enums += file.enum_types_by_name.values()
        for top in file.message_types_by_name.values():
            for message in all_messages(top):
                enums += message.enum_types
    return enums


@pytest.mark.parametrize("enum", contract_enums(), ids=lambda e: e.full_name)
def test_enum_values_carry_the_enum_prefix_and_zero_is_unspecified(enum: EnumDescriptor) -> None:
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"

    assert enum.values_by_number[0].name == prefix + "UNSPECIFIED"
    assert all(value.name.startswith(prefix) for value in enum.values)


def test_rpcs_are_verb_noun_with_matching_request_and_response() -> None:
    methods = [
        method
        for file in CONTRACT_FILES
        for service in file.services_by_name.values()
        for method in service.methods
    ]

    assert {m.containing_service.name for m in methods} == {
        "InferenceService",
        "IngestService",
        "ReportingService",
        "MaintenanceService",
    }
    for method in methods:
        # A streaming method (InferStream) carries its unary twin's (Infer's) messages.
        stem = method.name.removesuffix("Stream") if method.client_streaming else method.name
        assert method.client_streaming == method.server_streaming, method.full_name
        assert method.input_type.name == f"{stem}Request", method.full_name
        assert method.output_type.name == f"{stem}Response", method.full_name


def generated_modules() -> list[str]:
    return sorted(
        ".".join(path.relative_to(PROTO_ROOT).with_suffix("").parts)
        for suffix in ("_pb2.py", "_pb2_grpc.py")
        for path in (PROTO_ROOT / "sonobridge").rglob(f"*{suffix}")
    )


@pytest.mark.parametrize("module_name", generated_modules())
def test_every_generated_module_imports(module_name: str) -> None:
    module = importlib.import_module(module_name)

    assert module.__name__ == module_name


class ListOnlyInference(inference_pb2_grpc.InferenceServiceServicer):
    def ListModels(  # noqa: N802 - the name is fixed by the proto service
        self, request: inference_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> inference_pb2.ListModelsResponse:
        return inference_pb2.ListModelsResponse(
            models=[
                inference_pb2.ModelSummary(
                    name="carotid-imt",
                    version="1.2.0",
                    task=inference_pb2.MODEL_TASK_MEASUREMENT,
                    exam_types=[request.exam_type],
                    pinned=True,
                )
            ]
        )


def test_generated_stub_and_servicer_talk_over_a_real_channel() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    inference_pb2_grpc.add_InferenceServiceServicer_to_server(ListOnlyInference(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            listed = stub.ListModels(
                inference_pb2.ListModelsRequest(exam_type=events_pb2.EXAM_TYPE_CAROTID), timeout=5
            )
            with pytest.raises(grpc.RpcError) as unimplemented:
                stub.GetModel(inference_pb2.GetModelRequest(name="carotid-imt"), timeout=5)
    finally:
        server.stop(grace=None)

    assert [(m.name, m.version, m.pinned) for m in listed.models] == [
        ("carotid-imt", "1.2.0", True)
    ]
    assert list(listed.models[0].exam_types) == [events_pb2.EXAM_TYPE_CAROTID]
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
