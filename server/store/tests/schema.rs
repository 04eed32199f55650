//! The SQLite and PostgreSQL migrations are written by hand, one set per database: after
//! both have run, the two schemas have the same tables, the same columns in each, and the
//! same named indexes. Needs `SLIPWAY_TEST_POSTGRES_URL` (an admin connection that may
//! create databases), which `scripts/test` sets.

use slipway_store::testing::Fresh;

#[tokio::test]
async fn sqlite_and_postgresql_schemas_stay_alike() {
    let (sqlite, postgres) = (Fresh::sqlite().await, Fresh::postgres("schema").await);
    let lite = sqlite.store.schema().await.expect("sqlite schema");
    let pg = postgres.store.schema().await.expect("pg schema");
    assert!(lite.len() > 10, "the migrations made the tables: {lite:?}");
    let names = |s: &std::collections::BTreeMap<String, _>| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&lite), names(&pg), "the same tables");
    for (table, shape) in &lite {
        assert_eq!(shape.columns, pg[table].columns, "the columns of {table}");
        assert_eq!(shape.indexes, pg[table].indexes, "the named indexes of {table}");
    }
    sqlite.finish().await;
    postgres.finish().await;
}
