"""Conformance suites for storages and serializers, yours included (needs pytest and anyio).

- `lakery.testing.storage.StorageConformance` and `GarbageCollectionConformance`
- `lakery.testing.serializer.SerializerConformance` and `StreamSerializerConformance`
"""
