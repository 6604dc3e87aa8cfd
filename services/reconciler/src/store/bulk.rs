//! The one way rows are written in bulk: a multi-row statement over one array
//! per column (`INSERT … SELECT … FROM UNNEST($1::t[], …)`), so a table costs
//! one statement however many rows it has; and a [`Chain`] of them (with the
//! crate's other writes) is sent as one statement.

use super::Tx;
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::{Arguments, AssertSqlSafe, Encode, FromRow, Type};

/// Rows go in the order of the arrays (`ORDER BY ordinality`): serial
/// columns (arrival, outbox order) follow it. `filter` is a `WHERE` clause
/// on the rows (or empty), `tail` what follows the `SELECT`, e.g.
/// `ON CONFLICT DO NOTHING`; `first` is the number of the first column's
/// parameter.
fn insert_sql(
    table: &str,
    columns: &[(&str, &str)],
    first: usize,
    filter: &str,
    tail: &str,
) -> String {
    let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
    let names = names.join(", ");
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{t}[]", first + i))
        .collect();
    format!(
        "INSERT INTO {table} ({names}) SELECT {names} FROM UNNEST({}) WITH ORDINALITY AS rows({names}, ordinality)
         {filter} ORDER BY ordinality {tail}",
        arrays.join(", ")
    )
}

/// `sql` with each parameter `$n` numbered `$(n + offset)`. The statements
/// given are this crate's constants, with no `$` but in parameters.
fn renumbered(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        out.push(c);
        if c != '$' {
            continue;
        }
        let mut digits = String::new();
        while let Some((_, d)) = chars.peek().copied().filter(|(_, d)| d.is_ascii_digit()) {
            digits.push(d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&digits),
        }
    }
    out
}

/// Several multi-row inserts sent as one statement (each but the last a
/// data-modifying `WITH`): one round trip for every table of a batch that
/// has rows. Their order among themselves is not defined, so none may read
/// what another writes; foreign keys are checked at the end of the
/// statement, when all are written.
#[derive(Default)]
pub struct Chain {
    /// Each statement, and the name a later one reads its `RETURNING` by.
    statements: Vec<(Option<&'static str>, String)>,
    arguments: PgArguments,
    parameters: usize,
    /// The first column that could not be encoded.
    error: Option<sqlx::error::BoxDynError>,
}

impl Chain {
    /// Rows for `table`, added to the chain by [`Linked::tail`]; a table
    /// without rows adds nothing.
    pub fn insert(&mut self, table: &'static str, rows: usize) -> Linked<'_> {
        Linked {
            chain: self,
            table,
            rows,
            columns: Vec::new(),
            first: 0,
        }
    }

    /// A statement of the crate's own, its parameters numbered from `$1`
    /// (renumbered here), bound in order by [`Own::bind`]. `name`: what a
    /// later statement of the chain reads its `RETURNING` rows as.
    pub fn statement(&mut self, name: Option<&'static str>, sql: &str) -> Own<'_> {
        let sql = renumbered(sql, self.parameters);
        Own {
            chain: self,
            name,
            sql,
        }
    }

    /// Whether a statement called `name` is in the chain.
    pub fn has(&self, name: &str) -> bool {
        self.statements.iter().any(|(n, _)| *n == Some(name))
    }

    fn add<'v, T>(&mut self, values: T)
    where
        T: Encode<'v, Postgres> + Type<Postgres>,
    {
        if self.error.is_none()
            && let Err(e) = self.arguments.add(values)
        {
            self.error = Some(e);
        }
        self.parameters += 1;
    }

    /// The statement that runs the chain (`None`: nothing to write).
    pub fn sql(&self) -> Option<String> {
        let ((_, last), before) = self.statements.split_last()?;
        if before.is_empty() {
            return Some(last.clone());
        }
        let with: Vec<String> = before
            .iter()
            .enumerate()
            .map(|(i, (name, s))| match name {
                Some(name) => format!("{name} AS ({s})"),
                None => format!("w{i} AS ({s})"),
            })
            .collect();
        Some(format!("WITH {}\n{last}", with.join(",\n")))
    }

    /// The statement and its arguments (`None`: nothing to write).
    fn into_query(mut self) -> sqlx::Result<Option<(AssertSqlSafe<String>, PgArguments)>> {
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e));
        }
        // Table and column names are this crate's constants, never input.
        Ok(self.sql().map(|sql| (AssertSqlSafe(sql), self.arguments)))
    }

    /// Run every statement; nothing when there are none.
    pub async fn execute(self, tx: Tx<'_>) -> sqlx::Result<()> {
        if let Some((sql, arguments)) = self.into_query()? {
            sqlx::query_with(sql, arguments).execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Run every statement and read back the rows the last one's
    /// `RETURNING` gives; none when there is nothing to write.
    pub async fn returning<O>(self, tx: Tx<'_>) -> sqlx::Result<Vec<O>>
    where
        O: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        match self.into_query()? {
            Some((sql, arguments)) => {
                sqlx::query_as_with(sql, arguments)
                    .fetch_all(&mut *tx)
                    .await
            }
            None => Ok(Vec::new()),
        }
    }
}

/// One table's rows in a [`Chain`], a column at a time.
pub struct Linked<'c> {
    chain: &'c mut Chain,
    table: &'static str,
    rows: usize,
    columns: Vec<(&'static str, &'static str)>,
    /// The number of its first column's parameter.
    first: usize,
}

impl Linked<'_> {
    /// One column: its name, the SQL type of one value, and the values.
    pub fn column<'v, T>(mut self, name: &'static str, sql_type: &'static str, values: T) -> Self
    where
        T: Encode<'v, Postgres> + Type<Postgres>,
    {
        if self.rows > 0 {
            if self.columns.is_empty() {
                self.first = self.chain.parameters + 1;
            }
            self.chain.add(values);
            self.columns.push((name, sql_type));
        }
        self
    }

    /// Add the table's statement to the chain, `tail` following its `SELECT`.
    pub fn tail(self, tail: &str) {
        self.named(None, "", tail);
    }

    /// Add the table's statement, only the rows `filter` (a `WHERE` clause)
    /// keeps, as `name` when a later one reads its `RETURNING`.
    pub fn named(self, name: Option<&'static str>, filter: &str, tail: &str) {
        if self.rows == 0 {
            return;
        }
        let sql = insert_sql(self.table, &self.columns, self.first, filter, tail);
        self.chain.statements.push((name, sql));
    }
}

/// A statement of the crate's own in a [`Chain`], its parameters bound in order.
pub struct Own<'c> {
    chain: &'c mut Chain,
    name: Option<&'static str>,
    sql: String,
}

impl Own<'_> {
    pub fn bind<'v, T>(self, values: T) -> Self
    where
        T: Encode<'v, Postgres> + Type<Postgres>,
    {
        self.chain.add(values);
        self
    }

    /// Add it to the chain.
    pub fn add(self) {
        self.chain.statements.push((self.name, self.sql));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_renumbered_after_those_before() {
        assert_eq!(
            renumbered("UPDATE t SET a = $1 WHERE b = ANY($2) AND c = $10", 3),
            "UPDATE t SET a = $4 WHERE b = ANY($5) AND c = $13"
        );
        assert_eq!(renumbered("SELECT $1::text[]", 0), "SELECT $1::text[]");
    }

    #[test]
    fn a_chain_numbers_each_statements_parameters_after_the_last_ones() {
        let mut chain = Chain::default();
        chain
            .insert("a", 2)
            .column("x", "bigint", vec![1_i64, 2])
            .column("y", "text", vec!["p", "q"])
            .named(Some("first"), "", "RETURNING x");
        chain
            .insert("empty", 0)
            .column("z", "text", Vec::<String>::new())
            .tail("");
        chain
            .statement(
                None,
                "UPDATE b SET n = n + 1 WHERE x IN (SELECT x FROM first) AND k = ANY($1)",
            )
            .bind(vec![7_i64])
            .add();
        chain
            .insert("c", 1)
            .column("w", "bool", vec![true])
            .tail("ON CONFLICT DO NOTHING");
        let sql = chain.sql().expect("three statements");
        assert!(sql.starts_with("WITH first AS (INSERT INTO a (x, y) SELECT x, y FROM UNNEST($1::bigint[], $2::text[])"), "{sql}");
        assert!(
            sql.contains(
                "w1 AS (UPDATE b SET n = n + 1 WHERE x IN (SELECT x FROM first) AND k = ANY($3))"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("\nINSERT INTO c (w) SELECT w FROM UNNEST($4::bool[])"),
            "{sql}"
        );
        assert!(
            !sql.contains("empty"),
            "a table without rows adds nothing: {sql}"
        );
        assert_eq!(chain.parameters, 4);
        assert!(Chain::default().sql().is_none());
    }
}
