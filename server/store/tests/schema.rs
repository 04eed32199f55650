//! The SQLite and PostgreSQL migrations are written by hand, one set per database: after
//! both have run, the two schemas have the same tables, the same columns in each, and the
//! same named indexes. Needs `SLIPWAY_TEST_POSTGRES_URL` (an admin connection that may
//! create databases), which `scripts/test` sets.

use slipway_store::Store;
use sqlx::Connection;

#[tokio::test]
async fn sqlite_and_postgresql_schemas_stay_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = Store::open(&format!("sqlite://{}/schema.db", dir.path().display()), 2).await.expect("sqlite");

    let admin = std::env::var("SLIPWAY_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("SLIPWAY_TEST_POSTGRES_URL is not set: run scripts/test, which starts a private PostgreSQL")
    });
    let name = format!("slipway_schema_{}", std::process::id());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect to PostgreSQL");
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .await
        .expect("drop");
    // The name is this test's own: a fixed prefix and a process id.
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.expect("create");
    let mut url = url::Url::parse(&admin).expect("url");
    url.set_path(&format!("/{name}"));
    let postgres = Store::open(url.as_str(), 2).await.expect("postgres");

    let (lite, pg) = (sqlite.schema().await.expect("sqlite schema"), postgres.schema().await.expect("pg schema"));
    assert!(lite.len() > 10, "the migrations made the tables: {lite:?}");
    let names = |s: &std::collections::BTreeMap<String, _>| s.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&lite), names(&pg), "the same tables");
    for (table, shape) in &lite {
        assert_eq!(shape.columns, pg[table].columns, "the columns of {table}");
        assert_eq!(shape.indexes, pg[table].indexes, "the named indexes of {table}");
    }
    postgres.close().await;
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(format!("DROP DATABASE {name}"))).await.expect("drop");
}
