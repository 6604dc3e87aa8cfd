//! The lock protocol. A batch takes every lock it will need up front, in one
//! global order — people first, then households — so two transactions never
//! wait on each other in a cycle.

use super::Tx;
use std::collections::BTreeSet;

/// Advisory locks for people: facts about one person, and registrations
/// naming them, take their turn. Two levels, so that a batch waits only for
/// batches about the same people, while one naming thousands (a large
/// layoff) still takes a bounded number of locks:
/// - up to [`MOST_PERSON_LOCKS`] people: a shared lock on each one's region
///   (one of [`REGIONS`]) and an exclusive lock on each person;
/// - more: exclusive locks on their regions only.
///
/// Region locks come first, in region order, then person locks in key
/// order: one global order, so no two transactions wait on each other in a cycle.
const REGION_LOCK_SPACE: i32 = 0x647a;
const PERSON_LOCK_SPACE: i32 = 0x647b;
const REGIONS: u32 = 1024;
const MOST_PERSON_LOCKS: usize = 512;

/// A person's lock key: FNV-1a, stable across processes and versions
/// (unlike std's hasher), in 31 bits.
fn person_key(id_number: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id_number.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff) as i32
}

fn region(person_key: i32) -> i32 {
    (person_key as u32 % REGIONS) as i32
}

pub async fn lock_people(tx: Tx<'_>, people: &[&str]) -> sqlx::Result<()> {
    let keys: BTreeSet<i32> = people.iter().map(|p| person_key(p)).collect();
    if keys.is_empty() {
        return Ok(());
    }
    let regions: BTreeSet<i32> = keys.iter().map(|&k| region(k)).collect();
    let regions: Vec<i32> = regions.into_iter().collect();
    // Each statement takes its locks in the order of its sorted array.
    if keys.len() > MOST_PERSON_LOCKS {
        sqlx::query(
            "SELECT count(pg_advisory_xact_lock($1, r)) FROM (SELECT unnest($2::int[]) AS r) AS s",
        )
        .bind(REGION_LOCK_SPACE)
        .bind(regions)
        .execute(&mut *tx)
        .await?;
        return Ok(());
    }
    // One statement: the region locks are all taken (the aggregate reads
    // every one before it yields its row) before the lateral subquery, which
    // depends on that row, takes the person locks.
    sqlx::query(
        "SELECT people.n FROM
             (SELECT count(pg_advisory_xact_lock_shared($1, r)) AS n FROM unnest($2::int[]) AS r) AS regions
         CROSS JOIN LATERAL
             (SELECT count(pg_advisory_xact_lock($3, p)) AS n FROM unnest($4::int[]) AS p
              WHERE regions.n IS NOT NULL) AS people",
    )
    .bind(REGION_LOCK_SPACE)
    .bind(regions)
    .bind(PERSON_LOCK_SPACE)
    .bind(keys.into_iter().collect::<Vec<i32>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Create the rows of `new` households that are missing (those a
/// registration or visit names: any other household was created by the
/// registration that named its people) and lock all `households`, in
/// household_id order.
pub async fn lock_households(tx: Tx<'_>, households: &[String], new: &[&str]) -> sqlx::Result<()> {
    if households.is_empty() {
        return Ok(());
    }
    if !new.is_empty() {
        sqlx::query(
            "INSERT INTO household (household_id) SELECT h FROM UNNEST($1::text[]) AS h ORDER BY h
             ON CONFLICT DO NOTHING",
        )
        .bind(new)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("SELECT household_id FROM household WHERE household_id = ANY($1) ORDER BY household_id FOR UPDATE")
        .bind(households)
        .fetch_all(&mut *tx)
        .await?;
    Ok(())
}
