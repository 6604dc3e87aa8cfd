//! The lock protocol. A batch takes every lock it will need up front, in one
//! global order — people first, then households — so two transactions never
//! wait on each other in a cycle.

use super::Tx;

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
pub const MOST_PERSON_LOCKS: usize = 512;

/// A person's lock key: FNV-1a, stable across processes and versions
/// (unlike std's hasher), in 31 bits. The database computes the same
/// (`dynzero_person_key`) for the people only it knows of.
pub fn person_key(id_number: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id_number.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash & 0x7fff_ffff) as i32
}

/// What [`lock_batch`] locked and read under its locks.
#[derive(Debug, Default)]
pub struct Locked {
    /// Every household now locked.
    pub households: Vec<String>,
    /// (household, person) for every person a registered household ever named.
    pub members: Vec<(String, String)>,
    /// (household, person) for every household that ever named one of the
    /// people, or of those members.
    pub naming: Vec<(String, String)>,
}

/// Every lock a batch needs, in one round trip (`dynzero_lock_batch`): the
/// people the messages are about and every earlier member of the households
/// they register, then the households naming any of them and those the
/// messages name (`new`, created when missing), in household_id order. Then
/// who names whom, read again under those locks.
pub async fn lock_batch(
    tx: Tx<'_>,
    people: &[&str],
    registered: &[&str],
    new: &[&str],
) -> sqlx::Result<Locked> {
    let mut locked = Locked::default();
    if people.is_empty() && registered.is_empty() && new.is_empty() {
        return Ok(locked);
    }
    let keys: Vec<i32> = people.iter().map(|p| person_key(p)).collect();
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT kind, household, person FROM dynzero_lock_batch($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(people)
    .bind(keys)
    .bind(registered)
    .bind(new)
    .bind(REGION_LOCK_SPACE)
    .bind(PERSON_LOCK_SPACE)
    .bind(REGIONS as i32)
    .bind(MOST_PERSON_LOCKS as i32)
    .fetch_all(&mut *tx)
    .await?;
    for (kind, household, person) in rows {
        match (kind.as_str(), person) {
            ("locked", _) => locked.households.push(household),
            ("member", Some(person)) => locked.members.push((household, person)),
            ("naming", Some(person)) => locked.naming.push((household, person)),
            _ => {
                return Err(sqlx::Error::Protocol(format!(
                    "dynzero_lock_batch: row {kind:?}"
                )));
            }
        }
    }
    Ok(locked)
}

/// Lock `households` (whose rows exist), in household_id order.
pub async fn lock_households(tx: Tx<'_>, households: &[String]) -> sqlx::Result<()> {
    if households.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT household_id FROM household WHERE household_id = ANY($1) ORDER BY household_id FOR UPDATE")
        .bind(households)
        .fetch_all(&mut *tx)
        .await?;
    Ok(())
}
