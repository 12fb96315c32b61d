"""tus 1.0 core: a request in a version the server does not speak gets 412 naming its versions."""

from __future__ import annotations

from ingest.ingest_support import RunningIngest, new_exam, tus_create


def test_unsupported_tus_version_gets_412_with_tus_version(ingest: RunningIngest) -> None:
    with ingest.client() as client:
        exam_id = new_exam(client, study_instance_uid="1.2.826.0.1.3680043.8.498.77")
        session = tus_create(client, exam_id, 10)
        answers = {
            "create": client.post(
                f"/v1/exams/{exam_id}/uploads",
                headers={"Tus-Resumable": "0.2.2", "Upload-Length": "5"},
            ),
            "create_unversioned": client.post(
                f"/v1/exams/{exam_id}/uploads", headers={"Upload-Length": "5"}
            ),
            "patch": client.patch(
                session,
                content=b"0123456789",
                headers={
                    "Tus-Resumable": "2.0.0",
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
            ),
            "head": client.head(session, headers={"Tus-Resumable": "0.2.2"}),
        }
    for name, answer in answers.items():
        assert answer.status_code == 412, (name, answer.status_code)
        assert answer.headers.get("tus-version") == "1.0.0", (name, dict(answer.headers))
