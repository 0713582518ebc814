"""The typed SQLAlchemy models; Alembic migrations (migrations/) alone make the schema."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations match on SQLite and PostgreSQL alike.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

URL = String(2048)
Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements only INTEGER keys


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite keeps no zone: store every value as naive UTC so comparisons order correctly.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum(cls: type[enum.Enum]) -> Enum:
    # Stored as plain strings: no database ENUM type to migrate when a value is added.
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e])


class Role(enum.StrEnum):
    """What an account may do: members comment, authors publish, moderators moderate."""

    ADMIN = "admin"
    MODERATOR = "moderator"
    AUTHOR = "author"
    MEMBER = "member"

    @property
    def can_publish(self) -> bool:
        return self in (Role.ADMIN, Role.MODERATOR, Role.AUTHOR)

    @property
    def can_moderate(self) -> bool:
        return self in (Role.ADMIN, Role.MODERATOR)


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    UNLISTED = "unlisted"
    FOLLOWERS = "followers"


class CommentPolicy(enum.StrEnum):
    OPEN = "open"
    MODERATED = "moderated"
    CLOSED = "closed"


class CommentState(enum.StrEnum):
    VISIBLE = "visible"
    PENDING = "pending"
    REJECTED = "rejected"
    REMOVED = "removed"
    DELETED = "deleted"


class FollowState(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    BLOCKED = "blocked"  # the followed remote actor blocked us: nothing is sent to it


class JobState(enum.StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    DONE = "done"
    FAILED = "failed"


class InstanceValue(Base):
    """Instance-wide values shared by every process (the generated session secret, ...)."""

    __tablename__ = "instance_values"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Actor(Base):
    """An ActivityPub actor: ours (with a private key) or a cached remote one."""

    __tablename__ = "actors"
    __table_args__ = (UniqueConstraint("username", "domain"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(URL, unique=True)
    local: Mapped[bool] = mapped_column(Boolean, default=False)
    type: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(255))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    display_name: Mapped[str] = mapped_column(String(500), default="")
    summary: Mapped[str] = mapped_column(Text, default="")
    url: Mapped[str | None] = mapped_column(URL)
    icon_url: Mapped[str | None] = mapped_column(URL)
    inbox_url: Mapped[str | None] = mapped_column(URL)
    shared_inbox_url: Mapped[str | None] = mapped_column(URL)
    outbox_url: Mapped[str | None] = mapped_column(URL)
    followers_url: Mapped[str | None] = mapped_column(URL)
    following_url: Mapped[str | None] = mapped_column(URL)
    featured_url: Mapped[str | None] = mapped_column(URL)
    key_id: Mapped[str | None] = mapped_column(URL, index=True)
    key_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    public_key_pem: Mapped[str | None] = mapped_column(Text)
    private_key_pem: Mapped[str | None] = mapped_column(Text)
    manually_approves_followers: Mapped[bool] = mapped_column(Boolean, default=False)
    hide_followers: Mapped[bool] = mapped_column(Boolean, default=False)
    suspended: Mapped[bool] = mapped_column(Boolean, default=False)
    blocks_us: Mapped[bool] = mapped_column(Boolean, default=False)
    raw: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    account: Mapped[Account | None] = relationship(back_populates="actor", uselist=False)

    @property
    def handle(self) -> str:
        return f"@{self.username}@{self.domain}"

    @property
    def name(self) -> str:
        return self.display_name or self.username


class Account(Base):
    """A local login: a person of the organisation, with a role and a Person actor."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("actors.id"), unique=True)
    username: Mapped[str] = mapped_column(String(30), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # For NodeInfo's active users (as Mastodon counts them, by sign-in).
    last_signed_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The newest notification the member has seen: later ones are marked new.
    notifications_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    actor: Mapped[Actor] = relationship(back_populates="account", lazy="joined")


class Story(Base):
    """A long-form article: ours, or one from a followed remote actor (for /network)."""

    __tablename__ = "stories"
    __table_args__ = (Index("ix_stories_local_published", "local", "published_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    uri: Mapped[str | None] = mapped_column(URL, unique=True)
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("actors.id"), index=True)
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    source_markdown: Mapped[str] = mapped_column(Text, default="")
    content_html: Mapped[str] = mapped_column(Text, default="")
    # The body's words for full-text search (sanitize.text_for_search); the index over title,
    # summary and this is not in the metadata: db/fulltext.py. Deferred: only the index reads it.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="", deferred=True)
    language: Mapped[str] = mapped_column(String(16), default="en")
    visibility: Mapped[Visibility] = mapped_column(_enum(Visibility), default=Visibility.PUBLIC)
    comment_policy: Mapped[CommentPolicy] = mapped_column(
        _enum(CommentPolicy), default=CommentPolicy.OPEN
    )
    sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    content_warning: Mapped[str] = mapped_column(String(500), default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    object_type: Mapped[str] = mapped_column(String(32), default="Article")
    url: Mapped[str | None] = mapped_column(URL)
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    share_count: Mapped[int] = mapped_column(Integer, default=0)

    author: Mapped[Actor] = relationship(lazy="joined")
    tags: Mapped[list[StoryTag]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", order_by="StoryTag.name"
    )


class StoryTag(Base):
    __tablename__ = "story_tags"

    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Comment(Base):
    """A reply in a story's thread, local or remote."""

    __tablename__ = "comments"
    __table_args__ = (
        Index("ix_comments_story_state_published", "story_id", "state", "published_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    uri: Mapped[str | None] = mapped_column(URL, unique=True)
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id"))
    in_reply_to: Mapped[str] = mapped_column(URL)
    author_id: Mapped[int] = mapped_column(ForeignKey("actors.id"), index=True)
    url: Mapped[str | None] = mapped_column(URL)
    content_html: Mapped[str] = mapped_column(Text)
    state: Mapped[CommentState] = mapped_column(_enum(CommentState), default=CommentState.VISIBLE)
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    share_count: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When it reached us (our clock; `published` is the author's claim): notifications go by it.
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=lambda: datetime.now(UTC))
    # The Create that brought a remote comment, kept to forward it unchanged to the thread.
    activity_raw: Mapped[str | None] = mapped_column(Text)

    author: Mapped[Actor] = relationship(lazy="joined")


class CommentMention(Base):
    """An actor a local comment names with `@`: its Note tags them as a Mention and they get it."""

    __tablename__ = "comment_mentions"

    comment_id: Mapped[int] = mapped_column(ForeignKey("comments.id"), primary_key=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("actors.id"), primary_key=True, index=True)


class Report(Base):
    """A Flag from another server: someone there reported our actors or what they wrote."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    activity_uri: Mapped[str] = mapped_column(URL, unique=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("actors.id"))  # often their server
    # The reported URIs that are ours (actors, stories, comments), as a JSON list.
    objects: Mapped[str] = mapped_column(Text)
    comment: Mapped[str] = mapped_column(Text, default="")  # the reporter's words, plain text
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    resolved_by: Mapped[str | None] = mapped_column(String(30))  # the moderator's username

    reporter: Mapped[Actor] = relationship(lazy="joined")


class Interaction(Base):
    """A Like or Announce of one of the stories or comments we carry, by one actor."""

    __tablename__ = "interactions"
    __table_args__ = (UniqueConstraint("actor_id", "type", "object_uri"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("actors.id"))
    type: Mapped[str] = mapped_column(String(32))
    object_uri: Mapped[str] = mapped_column(URL, index=True)
    activity_uri: Mapped[str] = mapped_column(URL, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Follow(Base):
    """One actor following another (either side may be local)."""

    __tablename__ = "follows"
    __table_args__ = (
        UniqueConstraint("follower_id", "followed_id"),
        Index("ix_follows_followed_state", "followed_id", "state"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    follower_id: Mapped[int] = mapped_column(ForeignKey("actors.id"))
    followed_id: Mapped[int] = mapped_column(ForeignKey("actors.id"))
    state: Mapped[FollowState] = mapped_column(_enum(FollowState))
    activity_uri: Mapped[str | None] = mapped_column(URL)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Job(Base):
    """A durable unit of background work: claimed under a lease, retried, failures recorded."""

    __tablename__ = "jobs"
    # Finished jobs stay for the record, so claiming reads partial indexes of live jobs only.
    __table_args__ = (
        Index(
            "ix_jobs_due",
            "run_at",
            "id",
            postgresql_where=text("state = 'queued'"),
            sqlite_where=text("state = 'queued'"),
        ),
        Index(
            "ix_jobs_lease",
            "lease_until",
            postgresql_where=text("state = 'claimed'"),
            sqlite_where=text("state = 'claimed'"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    # The remote host a delivery goes to: a worker claims no more jobs for a host than its
    # per-host limit, so a slow peer's backlog waits in the queue, not in worker slots.
    host: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[JobState] = mapped_column(_enum(JobState), default=JobState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RateLimit(Base):
    """A fixed-window counter shared by every process (login attempts, follow floods)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime())
    count: Mapped[int] = mapped_column(Integer, default=0)


class DomainPolicy(enum.StrEnum):
    NONE = "none"
    BLOCKED = "blocked"
    ALLOWED = "allowed"


class Domain(Base):
    """A remote host (with its port, if any): the operator's policy and its delivery health."""

    __tablename__ = "domains"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    policy: Mapped[DomainPolicy] = mapped_column(_enum(DomainPolicy), default=DomainPolicy.NONE)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failures_since: Mapped[int] = mapped_column(Integer, default=0)
    failure_days: Mapped[int] = mapped_column(Integer, default=0)
    unavailable: Mapped[bool] = mapped_column(Boolean, default=False)


class InboxActivity(Base):
    """A verified incoming activity, stored raw under its id before we answer 202."""

    __tablename__ = "inbox_activities"
    # One row per activity and signer: a reply forwarded by a thread's owner is a new arrival
    # even when its author already sent it to us directly.
    __table_args__ = (UniqueConstraint("uri", "signer_key_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # Looked up by (uri, signer_key_id), which the unique constraint indexes; no other index:
    # every insert pays for each one (the inbox's hot path, BENCHMARKS.md).
    uri: Mapped[str] = mapped_column(URL)
    type: Mapped[str] = mapped_column(String(64))
    actor_uri: Mapped[str] = mapped_column(URL)
    signer_key_id: Mapped[str] = mapped_column(URL)
    raw: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(Text)


class Activity(Base):
    """An activity we sent: stored so that its id dereferences and deliveries can be retried."""

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    uri: Mapped[str | None] = mapped_column(URL, unique=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("actors.id"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    object_uri: Mapped[str | None] = mapped_column(URL, index=True)
    raw: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Tombstone(Base):
    """A deleted object's id: a replayed Create must not bring it back, even before it arrived."""

    __tablename__ = "tombstones"

    uri: Mapped[str] = mapped_column(URL, primary_key=True)
    actor_uri: Mapped[str | None] = mapped_column(URL)
    deleted_at: Mapped[datetime] = mapped_column(UTCDateTime())
