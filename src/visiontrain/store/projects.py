"""Projects, their images (content-addressed), views (one task each), concepts and annotations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from visiontrain.store.base import Base, Split, UTCDateTime, ViewKind, enum_column, utcnow


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("organization_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    images: Mapped[list["Image"]] = relationship(back_populates="project", cascade="all, delete-orphan", passive_deletes=True)
    views: Mapped[list["View"]] = relationship(back_populates="project", cascade="all, delete-orphan", passive_deletes=True)


class Image(Base):
    """One image of a project; the same bytes uploaded twice are the same image (unique sha256)."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    blob_key: Mapped[str] = mapped_column(String(300))
    original_name: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    project: Mapped[Project] = relationship(back_populates="images")


class View(Base):
    """One task on the project's images: classification, tagging (multi-label) or detection."""

    __tablename__ = "views"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(enum_column(ViewKind))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The view's validation split (``services.splits``): made once, with this fraction and seed, then
    # extended to new images without moving old ones; None until the first version or re-split.
    split_fraction: Mapped[float | None] = mapped_column(Float)
    split_seed: Mapped[int | None] = mapped_column(BigInteger)  # seeds go to 2**32 - 1, past a 32-bit INTEGER
    split_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # +1 at each re-split

    project: Mapped[Project] = relationship(back_populates="views")
    concepts: Mapped[list["Concept"]] = relationship(
        back_populates="view", cascade="all, delete-orphan", passive_deletes=True, order_by="Concept.id"
    )


class Concept(Base):
    __tablename__ = "concepts"
    __table_args__ = (UniqueConstraint("view_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    view_id: Mapped[int] = mapped_column(ForeignKey("views.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    view: Mapped[View] = relationship(back_populates="concepts")


class ViewImage(Base):
    """An image's state in one view: annotated or not, its fixed split and its side in the view's split.

    ``annotated`` is True once the user has said what the image shows, even when that is nothing
    (a tagging image "without concept", a detection image with no boxes). ``split``: the side the
    user fixed (None: the view's split decides). ``assigned_split``: the side the view's split gave
    it (None: not placed yet); it never changes until the view is re-split.
    """

    __tablename__ = "view_images"

    view_id: Mapped[int] = mapped_column(ForeignKey("views.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True)
    annotated: Mapped[bool] = mapped_column(Boolean, default=False)
    split: Mapped[str | None] = mapped_column(enum_column(Split))
    assigned_split: Mapped[str | None] = mapped_column(enum_column(Split))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Annotation(Base):
    """An image shows a concept (classification, tagging) or a box of it (detection, pixel coordinates)."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_view_image", "view_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    view_id: Mapped[int] = mapped_column(ForeignKey("views.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    concept_id: Mapped[int] = mapped_column(ForeignKey("concepts.id", ondelete="CASCADE"), index=True)
    x_min: Mapped[float | None] = mapped_column(Float)
    y_min: Mapped[float | None] = mapped_column(Float)
    x_max: Mapped[float | None] = mapped_column(Float)
    y_max: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    concept: Mapped[Concept] = relationship()
