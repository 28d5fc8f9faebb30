"""Topics with a description and a value schema kept in the schema registry.

Workato's developer API (the topics v1 dialect) manages a topic and its schema as one
thing; sluicegate keeps the schema where every other schema is, so this module ties the
two together:

* The schema is registered as JSON Schema under ``<topic>-value`` (Confluent's topic
  name strategy), the subject the publish path validates against and records v2
  producers share. The topic's config keeps the description, the schema *as given*
  (Workato's field list or a JSON Schema) and the id it was registered as.
* A topic created here sets its subject's compatibility level to ``NONE``: Workato lets
  a topic's schema change in any way, and each change is still a new version in the
  registry. The level is visible (``GET /config/<topic>-value``) and an operator may
  tighten it; changes are then checked against it as for any producer.
* Deleting the topic deletes its value subject permanently (a Workato user expects the
  topic and its schema gone, and a new topic of the same name starts at version 1);
  schema ids stay resolvable, as after any permanent delete.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

import msgspec

from sluicegate.core.catalog import TopicCatalog
from sluicegate.core.schemas.compatibility import CompatibilityLevel
from sluicegate.core.schemas.model import LATEST, RegisteredSchema, SchemaType
from sluicegate.core.schemas.naming import subject_name
from sluicegate.core.schemas.registry import SchemaRegistry
from sluicegate.core.schemas.workato import ValueSchema
from sluicegate.core.topics import Topic, TopicSpec, TopicUpdate
from sluicegate.errors import Conflict, NotFound, SubjectNotFound
from sluicegate.storage.topic_rules import updated_topic

__all__ = [
    "DESCRIPTION",
    "SCHEMA_AS_GIVEN",
    "SCHEMA_ID",
    "SchemaTopic",
    "SchemaTopics",
    "value_subject",
]

logger = logging.getLogger("sluicegate.schema_topics")

#: Keys of ``Topic.config`` this module owns.
DESCRIPTION = "description"
SCHEMA_AS_GIVEN = "value_schema"
SCHEMA_ID = "value_schema_id"


class SchemaTopic(msgspec.Struct, frozen=True, kw_only=True):
    """A topic, its description and its value schema."""

    topic: Topic
    description: str
    #: The schema as given; the registry's JSON Schema if it was changed there since;
    #: ``None`` if the subject has no live JSON Schema version.
    schema: Any
    #: The latest live version of the value subject, whatever its type.
    registered: RegisteredSchema | None


def value_subject(topic: str) -> str:
    """The subject of ``topic``'s value schema (Confluent's topic name strategy)."""
    return subject_name("topic", topic, None, is_key=False)


class SchemaTopics:
    """Create, describe, change and delete topics together with their value schema."""

    def __init__(self, topics: TopicCatalog, registry: SchemaRegistry) -> None:
        self._topics = topics
        self._registry = registry

    async def create(self, spec: TopicSpec, description: str, schema: ValueSchema) -> SchemaTopic:
        """A new topic with its schema registered; ``TopicExists`` if the name is taken."""
        topic = await self._topics.create(spec)
        subject = value_subject(topic.name)
        try:
            await self._registry.set_compatibility_level(CompatibilityLevel.NONE, subject)
            registered = await self._registry.register(subject, schema.text, SchemaType.JSON)
            config = {
                **topic.config,
                DESCRIPTION: description,
                SCHEMA_AS_GIVEN: schema.given,
                SCHEMA_ID: registered.id,
            }
            topic = await self._topics.alter(topic.name, TopicUpdate(config=config))
        except BaseException:
            # A topic whose schema is not registered would take any message: none at all.
            await self._forget(topic.name)
            raise
        return self.describe(topic)

    async def topic(self, topic_id: int) -> Topic:
        """The topic with this id; ``UnknownTopic`` if there is none (or it is internal)."""
        return await self._topics.by_id(topic_id)

    async def list(self) -> list[Topic]:
        """Every topic, by name: one call to the log, whatever their number."""
        return await self._topics.list()

    def describe(self, topic: Topic) -> SchemaTopic:
        """``topic`` with its description and schema; in memory, no I/O."""
        try:
            registered = self._registry.get_version(value_subject(topic.name), LATEST)
        except NotFound:
            registered = None
        schema: Any = None
        if registered is not None and registered.schema_type is SchemaType.JSON:
            if registered.id == topic.config.get(SCHEMA_ID):
                schema = topic.config.get(SCHEMA_AS_GIVEN)
            else:
                # Changed through the registry API since: the registry is the truth.
                schema = json.loads(registered.schema)
        description = topic.config.get(DESCRIPTION)
        return SchemaTopic(
            topic=topic,
            description=description if isinstance(description, str) else "",
            schema=schema,
            registered=registered,
        )

    async def update(
        self,
        topic: Topic,
        *,
        retention_ms: int | msgspec.UnsetType | None = msgspec.UNSET,
        description: str | msgspec.UnsetType = msgspec.UNSET,
        schema: ValueSchema | msgspec.UnsetType = msgspec.UNSET,
        partitions: int | msgspec.UnsetType = msgspec.UNSET,
    ) -> SchemaTopic:
        """Change what is given (partitions only grow); a new schema is a new version of
        the value subject, and so is going back to an earlier one: the topic's schema is
        the subject's latest version.

        The schema is registered before the topic is changed, once the change has passed
        the rules every backend applies (``updated_topic``), so that a refused request
        changes nothing. A change that fails after that (the storage unreachable, the
        topic deleted meanwhile) leaves the new version registered; the next update
        settles the rest.
        """
        config = dict(topic.config)
        if not isinstance(description, msgspec.UnsetType):
            config[DESCRIPTION] = description
        update = TopicUpdate(retention_ms=retention_ms, config=config, partitions=partitions)
        if not isinstance(schema, msgspec.UnsetType):
            updated_topic(topic, update, topic.updated_at + 1)  # BadRequest: nothing done
            registered = await self._registry.register(
                value_subject(topic.name), schema.text, SchemaType.JSON, as_latest=True
            )
            config[SCHEMA_AS_GIVEN] = schema.given
            config[SCHEMA_ID] = registered.id
            update = TopicUpdate(retention_ms=retention_ms, config=config, partitions=partitions)
        return self.describe(await self._topics.alter(topic.name, update))

    async def purge(self, topic: Topic) -> None:
        """Every message gone; the topic and its schema stay."""
        await self._topics.purge(topic.name)

    async def delete(self, topic: Topic) -> None:
        """The topic, its messages and its value subject gone.

        ``Conflict`` before anything is deleted if another schema references a version
        of the subject: deleting it would break that schema.
        """
        subject = value_subject(topic.name)
        try:
            versions = self._registry.versions(subject, deleted=True)
        except SubjectNotFound:
            versions = []
        for version in versions:
            users = self._registry.referenced_by(subject, version)
            if users:
                raise Conflict(
                    f"the schema of topic {topic.name!r} (subject {subject!r} version "
                    f"{version}) is referenced by schema ids {users}: delete those first",
                    topic=topic.name,
                )
        await self._topics.delete(topic.name)
        await self._drop_subject(subject)

    async def _forget(self, name: str) -> None:
        """Undo a half-made topic; a failure here is logged, the original error raised."""
        try:
            await self._topics.delete(name)
            await self._drop_subject(value_subject(name))
        except Exception:
            logger.exception("could not remove topic %r after its creation failed", name)

    async def _drop_subject(self, subject: str) -> None:
        """Soft-delete, then permanently delete every version and the subject's level."""
        # NotFound: no versions (or none left to soft-delete), no level of its own.
        for permanent in (False, True):
            with contextlib.suppress(NotFound):
                await self._registry.delete_subject(subject, permanent=permanent)
        with contextlib.suppress(NotFound):
            await self._registry.delete_compatibility_level(subject)
