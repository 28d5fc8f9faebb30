"""The schema registry: ids, subjects, versions and compatibility, kept in the log itself.

Semantics are Confluent Schema Registry's, so its clients and serializers work unchanged:

* ids are global, start at 1 and never change meaning; the same schema (same type,
  normal form and references) gets the same id under any subject;
* each subject numbers its versions 1, 2, 3...; registering a schema a subject already
  holds returns that version; a new one must pass the subject's compatibility level
  against its live versions;
* a soft delete hides versions (``deleted=True`` shows them), a permanent delete removes
  them and is allowed only after a soft delete.

All state lives in one internal topic (see ``state.py``) and is replayed by ``load()``.
Writes are serialized by one lock within a process. Across nodes on one Kafka cluster,
a new id and a subject's next version are claimed (``StateTopic.claim``): two nodes that
register at the same moment both learn from the log which claim came first, and the
loser decides again against it — the same schema gets one id, and another schema the
next id, without a leader node.

The records v2 hot path (``remembered``, else a registration, then ``encode_confluent``)
touches only in-memory dicts once a schema text has been seen: no parsing, no I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import cast

from sluicegate.core.schemas import wire
from sluicegate.core.schemas.avro import AvroSchema
from sluicegate.core.schemas.compatibility import CompatibilityLevel, incompatibilities
from sluicegate.core.schemas.json_schema import JsonSchema
from sluicegate.core.schemas.model import (
    LATEST,
    ParsedSchema,
    Reason,
    RegisteredSchema,
    Schema,
    SchemaReference,
    SchemaType,
    Version,
    parse_schema_type,
)
from sluicegate.core.schemas.state import (
    STATE_TOPIC,
    StoredConfig,
    StoredEntry,
    StoredSchema,
    StoredVersion,
    config_key,
    parse_key,
    schema_key,
    version_key,
)
from sluicegate.core.state_topic import StateTopic
from sluicegate.errors import (
    IncompatibleSchema,
    InvalidSchema,
    NotFound,
    SchemaNotFound,
    SubjectNotFound,
    Unprocessable,
    VersionNotFound,
)
from sluicegate.storage.base import Log

__all__ = ["SchemaRegistry"]

MAX_SUBJECT_LENGTH = 1024
_FAST_PATH_SIZE = 10_000
_NAME_CACHE_SIZE = 1_000

Identity = tuple[SchemaType, str, tuple[SchemaReference, ...]]


class SchemaRegistry:
    """Avro and JSON schemas by id and by subject, with Confluent's semantics."""

    def __init__(
        self, log: Log, *, default_compatibility: CompatibilityLevel = CompatibilityLevel.BACKWARD
    ) -> None:
        self._default_level = default_compatibility
        self._state: StateTopic[StoredEntry] = StateTopic(
            log,
            STATE_TOPIC,
            # A tagged union decodes as one type; StateTopic's signature names a class.
            cast("type[StoredEntry]", StoredEntry),
            on_change=self._apply,
        )
        self._write_lock = asyncio.Lock()
        self._schemas: dict[int, StoredSchema] = {}
        self._ids: dict[Identity, int] = {}
        self._subjects: dict[str, dict[int, StoredVersion]] = {}
        self._locations: dict[int, set[tuple[str, int]]] = {}
        self._referrers: dict[tuple[str, int], set[int]] = {}
        self._global_level: CompatibilityLevel | None = None
        self._subject_levels: dict[str, CompatibilityLevel] = {}
        self._next_id = 1
        self._encoders: dict[int, tuple[bytes, ParsedSchema]] = {}
        self._fast: dict[tuple[str, SchemaType, str], RegisteredSchema] = {}
        self._names: dict[tuple[SchemaType, str], str | None] = {}
        #: Counts every change applied (here or followed from another node): what was
        #: derived from the registry at one count is still right at the same count.
        self.changes = 0

    # -- lifecycle -------------------------------------------------------------------

    async def load(self) -> None:
        """Create the internal topic if needed and replay it; the log must be running."""
        await self._state.load()

    async def follow(self) -> None:
        """Apply other nodes' changes as they are written; runs until cancelled."""
        await self._state.follow()

    # -- the records v2 hot path -----------------------------------------------------

    def remembered(
        self, subject: str, schema: str, schema_type: str = "AVRO"
    ) -> RegisteredSchema | None:
        """What ``register`` answered for this exact text under ``subject`` (kept in
        memory for the producers' hot path), else ``None``: a registration that writes
        nothing."""
        return self._fast.get((subject, parse_schema_type(schema_type), schema))

    async def get_or_register(
        self, subject: str, schema: str, schema_type: str = "AVRO"
    ) -> RegisteredSchema:
        """``register``, answered from memory when this subject has seen this exact text."""
        known = self.remembered(subject, schema, schema_type)
        if known is not None:
            return known
        return await self.register(subject, schema, schema_type)

    def encode_confluent(self, schema_id: int, datum: object) -> bytes:
        """``datum`` validated and written with schema ``schema_id``, in the wire format."""
        encoder = self._encoders.get(schema_id)
        if encoder is None:
            parsed = self.parsed(schema_id)
            encoder = (wire.header(schema_id), parsed)
            self._encoders[schema_id] = encoder
        header, parsed = encoder
        return header + parsed.encode(datum)

    def decode_confluent(self, data: bytes) -> tuple[int, object]:
        """The schema id and the datum of wire-format ``data``."""
        schema_id, payload = wire.unframe(data)
        return schema_id, self.parsed(schema_id).decode(payload)

    def full_name(self, schema: str, schema_type: str = "AVRO") -> str | None:
        """The name subject strategies use: Avro named type, JSON Schema ``title``."""
        kind = parse_schema_type(schema_type)
        key = (kind, schema)
        if key not in self._names:
            if len(self._names) >= _NAME_CACHE_SIZE:
                del self._names[next(iter(self._names))]
            self._names[key] = _parse(kind, schema, []).full_name
        return self._names[key]

    # -- registering -----------------------------------------------------------------

    async def register(
        self,
        subject: str,
        schema: str,
        schema_type: str = "AVRO",
        references: Sequence[SchemaReference] = (),
        *,
        normalize: bool = False,
        as_latest: bool = False,
    ) -> RegisteredSchema:
        """Register ``schema`` under ``subject``, or return the version that already has it.

        ``as_latest``: a schema an earlier version has, but not the latest, is registered
        again as a new version, so that it is the subject's latest (the schema a topic's
        messages are checked against) — what going back to an earlier schema means to a
        topic's owner; Confluent's API returns the earlier version instead.

        Raises ``InvalidSchema`` if it does not parse, ``IncompatibleSchema`` (with the
        reasons in ``detail["messages"]``) if the subject's compatibility level refuses it.
        """
        _check_subject(subject)
        kind = parse_schema_type(schema_type)
        refs = tuple(references)
        async with self._write_lock:
            # Concurrent first produces of one schema queue here: one registers, the rest
            # find it remembered.
            known = self._fast.get((subject, kind, schema)) if not refs and not as_latest else None
            if known is not None:
                return known
            while True:
                # Each turn decides against what the log holds now; a turn whose id or
                # version another node claimed first decides again against the winner.
                await self._state.catch_up()
                registered = await self._register_once(
                    subject, schema, kind, refs, normalize=normalize, as_latest=as_latest
                )
                if registered is not None:
                    return self._remember(subject, schema, registered)

    async def _register_once(
        self,
        subject: str,
        schema: str,
        kind: SchemaType,
        refs: tuple[SchemaReference, ...],
        *,
        normalize: bool,
        as_latest: bool,
    ) -> RegisteredSchema | None:
        """One turn of ``register``; ``None`` when it wrote a claim and must decide again
        (a new id claimed, or a version that another schema took first)."""
        parsed = _parse(kind, schema, self._resolve_references(kind, refs))
        identity: Identity = (kind, parsed.canonical, refs)
        schema_id = self._ids.get(identity)
        live = self._live_versions(subject)
        for stored in live:
            if stored.schema_id == schema_id and (not as_latest or stored is live[-1]):
                return self._registered(stored)
        level = self.compatibility_level(subject, default_to_global=True)
        previous = [(v.version, self.parsed(v.schema_id)) for v in live]
        messages = incompatibilities(level, parsed, previous)
        if messages:
            raise IncompatibleSchema(
                f"Schema being registered is incompatible with an earlier schema for "
                f'subject "{subject}": {"; ".join(messages)}',
                messages=messages,
            )
        if schema_id is None:
            candidate = self._next_id
            text = parsed.canonical if normalize else schema
            held, _ = await self._state.claim(
                schema_key(candidate),
                StoredSchema(
                    id=candidate,
                    schema_type=kind,
                    schema=text,
                    canonical=parsed.canonical,
                    references=refs,
                ),
            )
            if isinstance(held, StoredSchema) and held.id == self._ids.get(identity):
                self._encoders.setdefault(held.id, (wire.header(held.id), parsed))
            # Whoever won the id, the identity's id is now the first one the log gave it
            # (another node may have registered it under another id a moment earlier, and
            # this id then stays unused), and the subject may have changed meanwhile: the
            # next turn decides the version against all of it.
            return None
        version = max(self._subjects.get(subject, {}), default=0) + 1
        wanted = StoredVersion(subject=subject, version=version, schema_id=schema_id)
        held, won = await self._state.claim(version_key(subject, version), wanted)
        if isinstance(held, StoredVersion) and (
            won or (held.schema_id == schema_id and not held.deleted)
        ):
            return self._registered(held)
        return None  # another schema took this version first: check against it

    def _remember(self, subject: str, text: str, registered: RegisteredSchema) -> RegisteredSchema:
        if registered.references:
            return registered  # the fast path takes no references: text alone is not the key
        if len(self._fast) >= _FAST_PATH_SIZE:
            del self._fast[next(iter(self._fast))]
        self._fast[(subject, registered.schema_type, text)] = registered
        return registered

    def _resolve_references(
        self, kind: SchemaType, references: Iterable[SchemaReference]
    ) -> list[tuple[str, ParsedSchema]]:
        resolved: list[tuple[str, ParsedSchema]] = []
        for reference in references:
            stored = self._subjects.get(reference.subject, {}).get(reference.version)
            if stored is None:
                raise InvalidSchema(
                    f"Invalid schema: reference {reference.name!r} names subject "
                    f"{reference.subject!r} version {reference.version}, which does not exist"
                )
            parsed = self.parsed(stored.schema_id)
            if parsed.schema_type is not kind:
                raise InvalidSchema(
                    f"Invalid schema: reference {reference.name!r} is a {parsed.schema_type} "
                    f"schema; a {kind} schema can only reference {kind} schemas"
                )
            resolved.append((reference.name, parsed))
        return resolved

    # -- reading ---------------------------------------------------------------------

    def parsed(self, schema_id: int) -> ParsedSchema:
        """The parsed schema with this id (cached); ``SchemaNotFound`` if there is none."""
        encoder = self._encoders.get(schema_id)
        if encoder is not None:
            return encoder[1]
        stored = self._stored(schema_id)
        parsed = _parse(
            stored.schema_type,
            stored.schema,
            self._resolve_references(stored.schema_type, stored.references),
        )
        self._encoders[schema_id] = (wire.header(schema_id), parsed)
        return parsed

    def schema(self, schema_id: int) -> Schema:
        """The schema with this id while a subject version holds it, soft-deleted ones
        included; ``SchemaNotFound`` once every version that held it was deleted
        permanently (``_located``)."""
        stored = self._located(schema_id)
        return Schema(
            id=stored.id,
            schema=stored.schema,
            schema_type=stored.schema_type,
            references=stored.references,
        )

    def schema_types(self) -> list[str]:
        """The schema types this registry accepts."""
        return [kind.value for kind in SchemaType]

    def subjects(
        self, *, deleted: bool = False, deleted_only: bool = False, prefix: str = ""
    ) -> list[str]:
        """Subjects with a live version (``deleted``: also soft-deleted ones), sorted."""
        found = []
        for subject, versions in self._subjects.items():
            if not subject.startswith(prefix) or not versions:
                continue
            live = any(not v.deleted for v in versions.values())
            if (deleted_only and not live) or (not deleted_only and (live or deleted)):
                found.append(subject)
        return sorted(found)

    def versions(
        self, subject: str, *, deleted: bool = False, deleted_only: bool = False
    ) -> list[int]:
        """The subject's version numbers; ``SubjectNotFound`` if it has none to show."""
        versions = self._subjects.get(subject, {})
        if deleted_only:
            found = [v.version for v in versions.values() if v.deleted]
        else:
            found = [v.version for v in versions.values() if deleted or not v.deleted]
        if not found and not (deleted_only and versions):
            raise _subject_not_found(subject)
        return sorted(found)

    def get_version(
        self, subject: str, version: Version, *, deleted: bool = False
    ) -> RegisteredSchema:
        """One version of a subject (``latest``: the newest live one)."""
        return self._registered(self._find_version(subject, version, deleted=deleted))

    def lookup(
        self,
        subject: str,
        schema: str,
        schema_type: str = "AVRO",
        references: Sequence[SchemaReference] = (),
        *,
        deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema``; ``SchemaNotFound`` if none."""
        kind = parse_schema_type(schema_type)
        refs = tuple(references)
        versions = [v for v in self._subjects.get(subject, {}).values() if deleted or not v.deleted]
        if not versions:
            raise _subject_not_found(subject)
        parsed = _parse(kind, schema, self._resolve_references(kind, refs))
        schema_id = self._ids.get((kind, parsed.canonical, refs))
        matches = [v for v in versions if v.schema_id == schema_id]
        if not matches:
            raise SchemaNotFound("Schema not found")
        return self._registered(min(matches, key=lambda v: (v.deleted, v.version)))

    def subjects_for_id(self, schema_id: int, *, deleted: bool = False) -> list[str]:
        """Subjects that have a version with this schema."""
        return sorted({subject for subject, _ in self.versions_for_id(schema_id, deleted=deleted)})

    def versions_for_id(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        """``(subject, version)`` pairs that hold this schema."""
        self._located(schema_id)
        pairs = []
        for subject, version in self._locations.get(schema_id, ()):
            stored = self._subjects[subject][version]
            if deleted or not stored.deleted:
                pairs.append((subject, version))
        return sorted(pairs)

    def referenced_by(self, subject: str, version: Version) -> list[int]:
        """Ids of schemas with a live version that reference this subject version."""
        stored = self._find_version(subject, version, deleted=True)
        return sorted(
            schema_id
            for schema_id in self._referrers.get((subject, stored.version), ())
            if any(not self._subjects[s][v].deleted for s, v in self._locations.get(schema_id, ()))
        )

    # -- compatibility ---------------------------------------------------------------

    def compatibility_level(
        self, subject: str | None = None, *, default_to_global: bool = False
    ) -> CompatibilityLevel:
        """The level of ``subject`` (or the global one); ``NotFound`` if it has none set."""
        if subject is None:
            return self._global_level or self._default_level
        level = self._subject_levels.get(subject)
        if level is not None:
            return level
        if default_to_global:
            return self._global_level or self._default_level
        raise NotFound(
            f"Subject '{subject}' does not have subject-level compatibility configured",
            reason=Reason.SUBJECT_COMPATIBILITY_NOT_SET,
        )

    async def set_compatibility_level(
        self, level: CompatibilityLevel, subject: str | None = None
    ) -> CompatibilityLevel:
        """Set the level of ``subject``, or the global level."""
        if subject is not None:
            _check_subject(subject)
        async with self._write_lock:
            await self._state.put(
                config_key(subject), StoredConfig(subject=subject, compatibility=level)
            )
        return level

    async def delete_compatibility_level(self, subject: str | None = None) -> CompatibilityLevel:
        """Forget the level of ``subject`` (it follows the global one again), or reset the
        global level to the default; returns the level that was in force."""
        async with self._write_lock:
            await self._state.catch_up()
            previous = self.compatibility_level(subject)
            await self._state.delete(config_key(subject))
        return previous

    def check_compatibility(
        self,
        subject: str,
        schema: str,
        schema_type: str = "AVRO",
        references: Sequence[SchemaReference] = (),
        *,
        version: Version | None = None,
    ) -> list[str]:
        """Why ``schema`` could not be registered next (empty: it could).

        With ``version``, against that version only; otherwise against what the subject's
        level checks (the latest live version, or all of them if transitive). ``latest``
        of a subject without live versions has nothing to be incompatible with.
        """
        kind = parse_schema_type(schema_type)
        parsed = _parse(kind, schema, self._resolve_references(kind, tuple(references)))
        level = self.compatibility_level(subject, default_to_global=True)
        if version is not None and not (version == LATEST and not self._live_versions(subject)):
            stored = self._find_version(subject, version, deleted=False)
            return incompatibilities(
                level, parsed, [(stored.version, self.parsed(stored.schema_id))]
            )
        previous = [(v.version, self.parsed(v.schema_id)) for v in self._live_versions(subject)]
        return incompatibilities(level, parsed, previous)

    # -- deleting --------------------------------------------------------------------

    async def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every live version, or permanently remove soft-deleted ones."""
        async with self._write_lock:
            await self._state.catch_up()
            versions = self._subjects.get(subject)
            if not versions:
                raise _subject_not_found(subject)
            live = [v for v in versions.values() if not v.deleted]
            if permanent:
                if live:
                    raise NotFound(
                        f"Subject '{subject}' was not deleted first before being permanently "
                        "deleted",
                        reason=Reason.SUBJECT_NOT_SOFT_DELETED,
                    )
                numbers = sorted(versions)
                for number in numbers:
                    self._check_unreferenced(subject, number)
                for number in numbers:
                    await self._state.delete(version_key(subject, number))
                if subject in self._subject_levels:
                    await self._state.delete(config_key(subject))
                return numbers
            if not live:
                raise NotFound(
                    f"Subject '{subject}' was soft deleted.Set permanent=true to delete "
                    "permanently",
                    reason=Reason.SUBJECT_SOFT_DELETED,
                )
            for stored in live:
                self._check_unreferenced(subject, stored.version)
            for stored in sorted(live, key=lambda v: v.version):
                await self._state.put(
                    version_key(subject, stored.version),
                    StoredVersion(
                        subject=subject,
                        version=stored.version,
                        schema_id=stored.schema_id,
                        deleted=True,
                    ),
                )
            return sorted(v.version for v in live)

    async def delete_version(
        self, subject: str, version: Version, *, permanent: bool = False
    ) -> int:
        """Soft-delete one version, or permanently remove a soft-deleted one."""
        async with self._write_lock:
            await self._state.catch_up()
            stored = self._find_version(subject, version, deleted=permanent, deleting=True)
            if permanent and not stored.deleted:
                raise NotFound(
                    f"Subject '{subject}' Version {stored.version} was not deleted first "
                    "before being permanently deleted",
                    reason=Reason.VERSION_NOT_SOFT_DELETED,
                )
            self._check_unreferenced(subject, stored.version)
            key = version_key(subject, stored.version)
            if permanent:
                await self._state.delete(key)
            else:
                await self._state.put(
                    key,
                    StoredVersion(
                        subject=subject,
                        version=stored.version,
                        schema_id=stored.schema_id,
                        deleted=True,
                    ),
                )
            return stored.version

    def _check_unreferenced(self, subject: str, version: int) -> None:
        users = self.referenced_by(subject, version)
        if users:
            raise Unprocessable(
                f"One or more references exist to the schema {{subject={subject}, "
                f"version={version}}}: schema ids {users}",
                reason=Reason.REFERENCE_EXISTS,
            )

    # -- in-memory state -------------------------------------------------------------

    def _stored(self, schema_id: int) -> StoredSchema:
        stored = self._schemas.get(schema_id)
        if stored is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return stored

    def _located(self, schema_id: int) -> StoredSchema:
        """The schema with this id, if a subject version holds it (soft-deleted or not).

        A permanent delete removes an id with its last version, as Confluent's registry
        does ("a hard delete removes all metadata, including schema IDs"): the API's reads
        by id say it is not found. The log keeps the text, so ``parsed`` still decodes
        records written with it, and the same schema registered again gets it back.
        """
        stored = self._stored(schema_id)
        if not self._locations.get(schema_id):
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return stored

    def _live_versions(self, subject: str) -> list[StoredVersion]:
        versions = self._subjects.get(subject, {})
        return sorted((v for v in versions.values() if not v.deleted), key=lambda v: v.version)

    def _find_version(
        self, subject: str, version: Version, *, deleted: bool, deleting: bool = False
    ) -> StoredVersion:
        """The version, soft-deleted ones only with ``deleted``. A soft-deleted one is
        "not found" (40402) to a read, as Confluent and Karapace answer; a soft delete of
        it again (``deleting``) says it was soft deleted (40406)."""
        versions = self._subjects.get(subject, {})
        visible = {n: v for n, v in versions.items() if deleted or not v.deleted}
        if not visible:
            raise _subject_not_found(subject)
        if version == LATEST:
            return visible[max(visible)]
        stored = visible.get(version)
        if stored is not None:
            return stored
        if deleting and version in versions:
            raise VersionNotFound(
                f"Subject '{subject}' Version {version} was soft deleted.Set permanent=true "
                "to delete permanently",
                reason=Reason.VERSION_SOFT_DELETED,
            )
        raise VersionNotFound(f"Version {version} not found.")

    def _registered(self, stored: StoredVersion) -> RegisteredSchema:
        schema = self._stored(stored.schema_id)
        return RegisteredSchema(
            id=schema.id,
            subject=stored.subject,
            version=stored.version,
            schema=schema.schema,
            schema_type=schema.schema_type,
            references=schema.references,
        )

    def _apply(self, key: str, entry: StoredEntry | None) -> None:
        """Fold one change of the internal topic into memory (every node, same order)."""
        self.changes += 1
        match entry:
            case StoredSchema():
                self._schemas[entry.id] = entry
                self._ids.setdefault(
                    (entry.schema_type, entry.canonical, entry.references), entry.id
                )
                self._next_id = max(self._next_id, entry.id + 1)
                for ref in entry.references:
                    self._referrers.setdefault((ref.subject, ref.version), set()).add(entry.id)
            case StoredVersion():
                self._subjects.setdefault(entry.subject, {})[entry.version] = entry
                self._locations.setdefault(entry.schema_id, set()).add(
                    (entry.subject, entry.version)
                )
                if entry.deleted:
                    self._fast.clear()
            case StoredConfig():
                if entry.subject is None:
                    self._global_level = entry.compatibility
                else:
                    self._subject_levels[entry.subject] = entry.compatibility
            case None:
                self._forget(key)

    def _forget(self, key: str) -> None:
        match parse_key(key):
            case ("version", (subject, version)):
                versions = self._subjects.get(subject, {})
                stored = versions.pop(version, None)
                if not versions:
                    self._subjects.pop(subject, None)
                if stored is not None:
                    self._locations.get(stored.schema_id, set()).discard((subject, version))
                self._fast.clear()
            case ("config", None):
                self._global_level = None
            case ("config", str() as subject):
                self._subject_levels.pop(subject, None)
            case _:
                pass


def _parse(
    kind: SchemaType, text: str, references: Sequence[tuple[str, ParsedSchema]]
) -> ParsedSchema:
    if not text.strip():
        raise InvalidSchema("Invalid schema: the schema is empty")
    if kind is SchemaType.AVRO:
        return AvroSchema.parse(text, [cast(AvroSchema, parsed) for _, parsed in references])
    return JsonSchema.parse(text, {name: cast(JsonSchema, parsed) for name, parsed in references})


def _check_subject(subject: str) -> None:
    if (
        not subject
        or len(subject) > MAX_SUBJECT_LENGTH
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in subject)
    ):
        raise Unprocessable(
            f"The specified subject '{subject[:100]}' is not valid: 1 to "
            f"{MAX_SUBJECT_LENGTH} characters without control characters",
            reason=Reason.INVALID_SUBJECT,
        )


def _subject_not_found(subject: str) -> SubjectNotFound:
    return SubjectNotFound(f"Subject '{subject}' not found.")
