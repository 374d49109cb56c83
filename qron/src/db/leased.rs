//! A leased job as the lease returns it, decoded by the positions of its columns.

use chrono::{DateTime, Utc};
use sqlx::postgres::types::PgInterval;

/// A job handed to a worker.
#[derive(Debug, Clone)]
pub(crate) struct LeasedJob {
    pub id: i64,
    pub owner: String,
    pub name: Option<String>,
    pub expr: String,
    pub recurring: bool,
    pub run_at: DateTime<Utc>,
    pub slot_at: DateTime<Utc>,
    /// JSON text, the handler decodes its typed payload straight from it; `None` for JSON
    /// `null` (the payload of every job without input: nothing to allocate).
    pub payload: Option<String>,
    /// JSON text, decoded by the execution (one row that does not decode fails its own job,
    /// not the lease); `None` for `{}`.
    pub meta: Option<String>,
    pub attempt: i32,
    pub executions: i64,
    pub max_attempts: i32,
    pub timeout: PgInterval,
    pub lease_token: i64,
    pub revision: i64,
    /// The instant the schedule counts from.
    pub start_at: DateTime<Utc>,
    /// A remote lease's secret (a UUID's text); `None` for a worker's own lease.
    pub lease_secret: Option<String>,
    /// When the lease runs out, by the server's clock, unless renewed.
    pub lease_expires_at: DateTime<Utc>,
    /// Its place in the lease order: its run time, put back by its priority (in UTC).
    pub lease_at: chrono::NaiveDateTime,
    /// Its owner's turn in the lease, and the owner's weight (see `owner_columns`): the
    /// worker starts the jobs of one lease in the rounds the lease took them in.
    pub turn: i64,
    pub weight: i32,
    /// Other jobs wait for it (see `migrations/0023_dependencies.sql`): its end is written at
    /// once, and kept in the history.
    pub has_dependents: bool,
    /// Leased as the successor of this running job of the worker's (see
    /// `migrations/0028_places.sql`): it takes that job's place, in its slot, when it ends.
    pub successor_of: Option<i64>,
}

impl LeasedJob {
    /// A job of `owner` due and leased at `at`, with a 1 s limit and 5 attempts, its first
    /// attempt: for the tests' own changes.
    #[cfg(test)]
    pub(crate) fn for_test(id: i64, owner: &str, at: DateTime<Utc>) -> Self {
        Self {
            id,
            owner: owner.to_owned(),
            name: None,
            expr: "@after 0s".to_owned(),
            recurring: false,
            run_at: at,
            slot_at: at,
            payload: None,
            meta: None,
            attempt: 1,
            executions: 1,
            max_attempts: 5,
            timeout: PgInterval {
                months: 0,
                days: 0,
                microseconds: 1_000_000,
            },
            lease_token: 1,
            revision: 0,
            start_at: at,
            lease_secret: None,
            lease_expires_at: at,
            lease_at: at.naive_utc(),
            turn: 1,
            weight: 1,
            has_dependents: false,
            successor_of: None,
        }
    }

    /// The bytes of payload and meta it holds.
    pub(crate) fn bytes(&self) -> u64 {
        let len = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        u64::try_from(len(&self.payload).saturating_add(len(&self.meta))).unwrap_or(u64::MAX)
    }
}

/// The lease's `RETURNING` list, by name, in order: [`LeasedJob`] is decoded by these
/// positions (a lease returns up to a batch of rows, and looking each column up by name was a
/// noticeable part of a worker's time). A test checks that the statement's list is this one.
const LEASED_COLUMNS: [&str; 23] = [
    "id",
    "owner",
    "name",
    "expr",
    "recurring",
    "run_at",
    "slot_at",
    "payload",
    "meta",
    "attempt",
    "executions",
    "max_attempts",
    "timeout",
    "lease_token",
    "revision",
    "start_at",
    "lease_secret",
    "lease_expires_at",
    "lease_at",
    "turn",
    "weight",
    "has_dependents",
    "successor_of",
];

/// The position of `column` in [`LEASED_COLUMNS`] (evaluated at compile time: a name not in
/// the list does not compile).
const fn leased(column: &str) -> usize {
    let mut i = 0;
    while i < LEASED_COLUMNS.len() {
        if str_eq(LEASED_COLUMNS[i], column) {
            return i;
        }
        i += 1;
    }
    panic!("not a column of the lease's RETURNING list")
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for LeasedJob {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
        use sqlx::Row as _;
        Ok(Self {
            id: row.try_get_unchecked(const { leased("id") })?,
            owner: row.try_get_unchecked(const { leased("owner") })?,
            name: row.try_get_unchecked(const { leased("name") })?,
            expr: row.try_get_unchecked(const { leased("expr") })?,
            recurring: row.try_get_unchecked(const { leased("recurring") })?,
            run_at: row.try_get_unchecked(const { leased("run_at") })?,
            slot_at: row.try_get_unchecked(const { leased("slot_at") })?,
            payload: row.try_get_unchecked(const { leased("payload") })?,
            meta: row.try_get_unchecked(const { leased("meta") })?,
            attempt: row.try_get_unchecked(const { leased("attempt") })?,
            executions: row.try_get_unchecked(const { leased("executions") })?,
            max_attempts: row.try_get_unchecked(const { leased("max_attempts") })?,
            timeout: row.try_get_unchecked(const { leased("timeout") })?,
            lease_token: row.try_get_unchecked(const { leased("lease_token") })?,
            revision: row.try_get_unchecked(const { leased("revision") })?,
            start_at: row.try_get_unchecked(const { leased("start_at") })?,
            lease_secret: row.try_get_unchecked(const { leased("lease_secret") })?,
            lease_expires_at: row.try_get_unchecked(const { leased("lease_expires_at") })?,
            lease_at: row.try_get_unchecked(const { leased("lease_at") })?,
            turn: row
                .try_get_unchecked::<Option<i64>, _>(const { leased("turn") })?
                .unwrap_or(0),
            weight: row
                .try_get_unchecked::<Option<i32>, _>(const { leased("weight") })?
                .unwrap_or(1),
            has_dependents: row.try_get_unchecked(const { leased("has_dependents") })?,
            successor_of: row.try_get_unchecked(const { leased("successor_of") })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::JOB_LEASE;

    #[test]
    fn the_lease_returns_the_columns_its_row_is_decoded_by() {
        // The name each item of the RETURNING list gets: its alias, or its column.
        let list = JOB_LEASE
            .rsplit_once("RETURNING")
            .map(|(_, l)| l)
            .unwrap_or_default();
        // Items are separated by the commas outside parentheses.
        let mut items = Vec::new();
        let (mut depth, mut from) = (0, 0);
        for (i, c) in list.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&list[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        items.push(&list[from..]);
        let names: Vec<&str> = items
            .into_iter()
            .map(|item| {
                let item = item.trim();
                match item.rsplit_once(" AS ") {
                    Some((_, alias)) => alias.trim(),
                    None => item.trim_start_matches("j."),
                }
            })
            .collect();
        assert_eq!(names, LEASED_COLUMNS);
    }
}
