"""Google Cloud adapters: the only modules that import `google.cloud.*`.

Firestore event log and catalog, Pub/Sub command bus; payloads go through the fsspec
payload store with a `gs://` URL (gcsfs).
"""
