//! The schema as the database reports it (tables, their columns, and the indexes the
//! migrations name), so a test can hold the SQLite and PostgreSQL migrations to the same
//! shape: both are written by hand and must not drift apart.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;

use crate::{Db, Result, Store};

/// A table's column names and the names of the indexes the migrations created on it
/// (not those a database makes by itself for a primary key or a `UNIQUE` column).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: BTreeSet<String>,
    pub indexes: BTreeSet<String>,
}

impl Store {
    /// Every table but the migrations' own bookkeeping, by name.
    pub async fn schema(&self) -> Result<BTreeMap<String, Table>> {
        let mut tables: BTreeMap<String, Table> = BTreeMap::new();
        match &self.db {
            Db::Sqlite(pool) => {
                let rows = sqlx::query(
                    "SELECT m.name AS tbl, p.name AS col FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '_sqlx_migrations'",
                )
                .fetch_all(pool)
                .await?;
                for row in rows {
                    tables.entry(row.try_get("tbl")?).or_default().columns.insert(row.try_get("col")?);
                }
                let rows = sqlx::query(
                    "SELECT tbl_name AS tbl, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
                )
                .fetch_all(pool)
                .await?;
                for row in rows {
                    tables.entry(row.try_get("tbl")?).or_default().indexes.insert(row.try_get("name")?);
                }
            }
            Db::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT table_name::text AS tbl, column_name::text AS col FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
                )
                .fetch_all(pool)
                .await?;
                for row in rows {
                    tables.entry(row.try_get("tbl")?).or_default().columns.insert(row.try_get("col")?);
                }
                // Indexes behind constraints (primary keys, UNIQUE columns) are the
                // database's own, as SQLite's automatic ones are.
                let rows = sqlx::query(
                    "SELECT i.tablename::text AS tbl, i.indexname::text AS name FROM pg_indexes i \
                     WHERE i.schemaname = current_schema() AND i.tablename <> '_sqlx_migrations' \
                     AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
                )
                .fetch_all(pool)
                .await?;
                for row in rows {
                    tables.entry(row.try_get("tbl")?).or_default().indexes.insert(row.try_get("name")?);
                }
            }
        }
        Ok(tables)
    }
}
