"""SQLAlchemy repository of tus upload sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from sonobridge.ingest.adapters.orm import upload_sessions
from sonobridge.ingest.adapters.rows import changed, given, optional, record, values_of
from sonobridge.ingest.domain.records import UploadSession


@dataclass
class SqlUploads:
    """tus upload sessions in one session."""

    session: Session

    def get(self, session_id: str) -> UploadSession | None:
        """Return an upload session."""
        query = select(upload_sessions).where(upload_sessions.c.session_id == session_id)
        return optional(UploadSession, self.session.execute(query).first())

    def add(self, upload: UploadSession) -> None:
        """Insert an upload session."""
        self.session.execute(insert(upload_sessions).values(**values_of(upload)))

    def lock(
        self, session_id: str, offset: int, generation: int, status: str, expires_at: datetime
    ) -> bool:
        """Take the append lock at `offset` (compare-and-set); False if another holds it."""
        return changed(
            self.session.execute(
                update(upload_sessions)
                .where(
                    upload_sessions.c.session_id == session_id,
                    upload_sessions.c.upload_offset == offset,
                    upload_sessions.c.status == status,
                    upload_sessions.c.parts == generation,
                )
                .values(status="appending", parts=generation + 1, expires_at=expires_at)
            )
        )

    def release(
        self,
        session_id: str,
        generation: int,
        *,
        status: str,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        expires_at: datetime | None = None,
    ) -> bool:
        """Update a session still locked by `generation`; False if the lock was taken over."""
        values = given(
            status=status,
            upload_offset=upload_offset,
            interrupted=interrupted,
            expires_at=expires_at,
        )
        return changed(
            self.session.execute(
                update(upload_sessions)
                .where(
                    upload_sessions.c.session_id == session_id,
                    upload_sessions.c.status == "appending",
                    upload_sessions.c.parts == generation,
                )
                .values(**values)
            )
        )

    def update(
        self,
        session_id: str,
        *,
        status: str | None = None,
        upload_offset: int | None = None,
        interrupted: bool | None = None,
        sop_instance_uid: str | None = None,
    ) -> None:
        """Update the given fields of an upload session."""
        values = given(
            status=status,
            upload_offset=upload_offset,
            interrupted=interrupted,
            sop_instance_uid=sop_instance_uid,
        )
        self.session.execute(
            update(upload_sessions)
            .where(upload_sessions.c.session_id == session_id)
            .values(**values)
        )

    def delete(self, session_id: str) -> None:
        """Delete an upload session."""
        self.session.execute(
            delete(upload_sessions).where(upload_sessions.c.session_id == session_id)
        )

    def locked(self, expiring_before: datetime) -> list[UploadSession]:
        """Return sessions locked by an append whose expiry (set when locked) is before the cut."""
        query = select(upload_sessions).where(
            upload_sessions.c.status == "appending",
            upload_sessions.c.expires_at < expiring_before,
        )
        return [record(UploadSession, r) for r in self.session.execute(query)]

    def full_open(self) -> list[UploadSession]:
        """Return open sessions whose offset reached their length (left by older versions)."""
        query = select(upload_sessions).where(
            upload_sessions.c.status == "open",
            upload_sessions.c.upload_offset >= upload_sessions.c.upload_length,
        )
        return [record(UploadSession, r) for r in self.session.execute(query)]

    def expired(self, now: datetime, limit: int = 100) -> list[str]:
        """Return ids of sessions past their expiry."""
        query = (
            select(upload_sessions.c.session_id)
            .where(upload_sessions.c.expires_at < now)
            .limit(limit)
        )
        return [r.session_id for r in self.session.execute(query)]
