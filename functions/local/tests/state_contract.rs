//! The shared `StateStore` contract (`slipway-testkit`) on the embedded SQLite store, each
//! case on a new database in its own temporary directory.

use slipway_local::sqlite::SqliteState;

slipway_testkit::state_store_contract!(async {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteState::open(&dir.path().join("state.db")).expect("a new database");
    (store, dir)
});
