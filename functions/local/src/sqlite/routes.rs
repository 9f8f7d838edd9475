//! The `KeyValueStore` on SQLite: the edge's routing table, keyed by host.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};
use slipway_core::ports::{KeyValueStore, KvsError, StateError, MAX_KVS_VALUE};

use super::{unavailable, SqliteState};

fn kvs_unavailable(e: StateError) -> KvsError {
    KvsError::Unavailable(Box::new(e))
}

#[async_trait]
impl KeyValueStore for SqliteState {
    async fn get(&self, key: &str) -> Result<Option<String>, KvsError> {
        self.read(|conn| {
            // Every edge request looks its host up: keep the statement compiled.
            conn.prepare_cached("SELECT value FROM kvs WHERE key = ?1")
                .and_then(|mut stmt| stmt.query_row([key], |r| r.get(0)).optional())
                .map_err(unavailable)
        })
        .map_err(kvs_unavailable)
    }

    async fn put(&self, key: &str, value: &str) -> Result<(), KvsError> {
        if value.len() > MAX_KVS_VALUE {
            return Err(KvsError::ValueTooLarge {
                key: key.to_owned(),
                len: value.len(),
            });
        }
        let (key, value) = (key.to_owned(), value.to_owned());
        self.with_conn(move |conn| {
            conn.execute(
                "INSERT INTO kvs (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(unavailable)?;
            Ok(())
        })
        .await
        .map_err(kvs_unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), KvsError> {
        let key = key.to_owned();
        self.with_conn(move |conn| {
            conn.execute("DELETE FROM kvs WHERE key = ?1", [key])
                .map_err(unavailable)?;
            Ok(())
        })
        .await
        .map_err(kvs_unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kvs_values_are_limited_to_one_kilobyte() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("s.db")).unwrap();
        KeyValueStore::put(&store, "docs.localhost", "docs/x")
            .await
            .unwrap();
        assert_eq!(
            KeyValueStore::get(&store, "docs.localhost")
                .await
                .unwrap()
                .as_deref(),
            Some("docs/x")
        );
        assert!(matches!(
            KeyValueStore::put(&store, "k", &"v".repeat(1025)).await,
            Err(KvsError::ValueTooLarge { .. })
        ));
        KeyValueStore::delete(&store, "docs.localhost")
            .await
            .unwrap();
        assert_eq!(
            KeyValueStore::get(&store, "docs.localhost").await.unwrap(),
            None
        );
    }
}
