//! The one way rows are written in bulk: a multi-row statement over one array
//! per column (`INSERT … SELECT … FROM UNNEST($1::t[], …)`), so a batch costs
//! one statement per table however many rows it has.

use super::Tx;
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::{Arguments, AssertSqlSafe, Encode, FromRow, Type};

/// The rows of one multi-row statement, a column at a time.
pub struct Bulk {
    table: &'static str,
    rows: usize,
    /// (name, SQL type of one element)
    columns: Vec<(&'static str, &'static str)>,
    arguments: PgArguments,
    /// The first column that could not be encoded.
    error: Option<sqlx::error::BoxDynError>,
}

impl Bulk {
    /// Rows for `table`; `rows` is the length of every column to come.
    pub fn insert(table: &'static str, rows: usize) -> Self {
        Self {
            table,
            rows,
            columns: Vec::new(),
            arguments: PgArguments::default(),
            error: None,
        }
    }

    /// One column: its name, the SQL type of one value, and the values.
    pub fn column<'v, T>(mut self, name: &'static str, sql_type: &'static str, values: T) -> Self
    where
        T: Encode<'v, Postgres> + Type<Postgres>,
    {
        if self.error.is_none()
            && let Err(e) = self.arguments.add(values)
        {
            self.error = Some(e);
        }
        self.columns.push((name, sql_type));
        self
    }

    /// Rows go in the order of the arrays (`ORDER BY ordinality`): serial
    /// columns (arrival, outbox order) follow it. `tail` is what follows the
    /// `SELECT`, e.g. `ON CONFLICT DO NOTHING`.
    fn sql(&self, tail: &str) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(n, _)| *n).collect();
        let names = names.join(", ");
        let arrays: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (_, t))| format!("${}::{t}[]", i + 1))
            .collect();
        format!(
            "INSERT INTO {} ({names}) SELECT {names} FROM UNNEST({}) WITH ORDINALITY AS rows({names}, ordinality)
             ORDER BY ordinality {tail}",
            self.table,
            arrays.join(", ")
        )
    }

    fn arguments(&mut self) -> sqlx::Result<PgArguments> {
        match self.error.take() {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok(std::mem::take(&mut self.arguments)),
        }
    }

    /// Write the rows; nothing when there are none.
    pub async fn execute(mut self, tx: Tx<'_>, tail: &str) -> sqlx::Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        // Table and column names are this crate's constants, never input.
        let sql = AssertSqlSafe(self.sql(tail));
        sqlx::query_with(sql, self.arguments()?)
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// Write the rows and read back what `tail`'s `RETURNING` names.
    pub async fn returning<O>(mut self, tx: Tx<'_>, tail: &str) -> sqlx::Result<Vec<O>>
    where
        O: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        let sql = AssertSqlSafe(self.sql(tail));
        sqlx::query_as_with(sql, self.arguments()?)
            .fetch_all(&mut *tx)
            .await
    }
}
