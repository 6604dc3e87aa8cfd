//! Which deliveries a new batch takes while other batches are in flight.
//!
//! Two batches in flight that name the same person or household wait on
//! each other's locks: the lock protocol makes that safe, not fast, and the
//! second batch's transaction then does nothing until the first commits. So
//! a batch taken while others are in flight takes only the messages that
//! name no one those batches name; the others wait, in arrival order, for a
//! batch taken after those land. With no batch in flight every waiting
//! message is taken (up to the batch size), so nothing waits for long.
//!
//! Where a person lives is hinted by what the messages said (registrations
//! and visits name their people's household), so an employment fact is
//! held back behind a batch folding its household. A hint that is wrong or
//! missing costs a lock wait, never correctness: the locks still decide.

use dynzero_contracts::named::Named;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

/// People whose household is remembered, per generation (two are kept):
/// a few MiB, bounded whatever the city's size.
pub const HINTS_PER_GENERATION: usize = 1 << 18;

/// A person's or a household's key: who two transactions would both lock.
fn key(kind: u8, id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    kind.hash(&mut hasher);
    id.hash(&mut hasher);
    hasher.finish()
}

fn person(id: &str) -> u64 {
    key(b'p', id)
}

fn household(id: &str) -> u64 {
    key(b'h', id)
}

/// Person → the household that last named them, bounded: when the current
/// generation is full it becomes the previous one, and the previous one is
/// forgotten.
#[derive(Debug)]
struct Hints {
    current: HashMap<u64, u64>,
    previous: HashMap<u64, u64>,
    per_generation: usize,
}

impl Hints {
    fn learn(&mut self, person: u64, household: u64) {
        if self.current.len() >= self.per_generation && !self.current.contains_key(&person) {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(person, household);
    }

    fn household_of(&self, person: u64) -> Option<u64> {
        self.current
            .get(&person)
            .or_else(|| self.previous.get(&person))
            .copied()
    }
}

/// A message waiting for a batch.
#[derive(Debug)]
struct Waiting<T> {
    item: T,
    /// Who it names: its people and households.
    keys: Vec<u64>,
    /// How many people it names.
    people: usize,
    /// Whether it was held back behind a batch in flight already.
    held: bool,
}

/// Messages waiting for a batch, and the keys of the batches in flight.
#[derive(Debug)]
pub struct Schedule<T> {
    hints: Hints,
    /// The keys each batch in flight holds, oldest first.
    flights: VecDeque<HashSet<u64>>,
    /// Arrived, not yet in a batch, in arrival order.
    waiting: VecDeque<Waiting<T>>,
    /// Messages held back since [`Self::held_back`] was last asked.
    held_back: u64,
}

impl<T> Default for Schedule<T> {
    fn default() -> Self {
        Self::new(HINTS_PER_GENERATION)
    }
}

impl<T> Schedule<T> {
    pub fn new(hints_per_generation: usize) -> Self {
        Self {
            hints: Hints {
                current: HashMap::new(),
                previous: HashMap::new(),
                per_generation: hints_per_generation.max(1),
            },
            flights: VecDeque::new(),
            waiting: VecDeque::new(),
            held_back: 0,
        }
    }

    /// A message arrived naming `named`: it waits for the next batch.
    pub fn arrive(&mut self, item: T, named: &Named) {
        let home = named.household.as_deref().map(household);
        let mut keys: Vec<u64> = Vec::with_capacity(2 * named.people.len() + 1);
        keys.extend(home);
        for id in &named.people {
            let p = person(id);
            keys.push(p);
            // Where they lived before this message (a move bears on both).
            keys.extend(self.hints.household_of(p).filter(|h| Some(*h) != home));
            if let Some(h) = home {
                self.hints.learn(p, h);
            }
        }
        self.waiting.push_back(Waiting {
            item,
            keys,
            people: named.people.len(),
            held: false,
        });
    }

    /// The next batch: in arrival order, every waiting message that names
    /// no one a batch in flight names, nor anyone an earlier message left
    /// waiting names (so one person's messages keep their order); at most
    /// `max` messages naming at most `max_people` people between them (one
    /// message naming more goes alone). Empty when none can go; otherwise
    /// the batch is in flight until [`Self::landed`].
    pub fn take(&mut self, max: usize, max_people: usize) -> Vec<T> {
        let mut taken = Vec::new();
        let mut people = 0;
        let mut holds: HashSet<u64> = HashSet::new();
        let mut left_waiting: HashSet<u64> = HashSet::new();
        let mut still = VecDeque::new();
        for mut waiting in self.waiting.drain(..) {
            let full =
                taken.len() >= max || (!taken.is_empty() && people + waiting.people > max_people);
            let named_elsewhere = !full
                && waiting.keys.iter().any(|k| {
                    left_waiting.contains(k) || self.flights.iter().any(|f| f.contains(k))
                });
            if full || named_elsewhere {
                if named_elsewhere && !waiting.held {
                    self.held_back += 1;
                    waiting.held = true;
                }
                left_waiting.extend(waiting.keys.iter().copied());
                still.push_back(waiting);
            } else {
                people += waiting.people;
                holds.extend(waiting.keys);
                taken.push(waiting.item);
            }
        }
        self.waiting = still;
        if !taken.is_empty() {
            self.flights.push_back(holds);
        }
        taken
    }

    /// The oldest batch in flight committed (or was given up): what it held is free.
    pub fn landed(&mut self) {
        self.flights.pop_front();
    }

    /// Messages held back behind a batch in flight (the first time each
    /// was) since this was last asked.
    pub fn held_back(&mut self) -> u64 {
        std::mem::take(&mut self.held_back)
    }

    /// How many messages wait for a batch.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// The connection is gone: nothing is in flight, and what waited is
    /// dropped (the broker hands it out again). Hints are kept.
    pub fn reset(&mut self) {
        self.flights.clear();
        self.waiting.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn employment(person: &str) -> Named {
        Named {
            household: None,
            people: vec![person.into()],
        }
    }

    fn registration(household: &str, members: &[&str]) -> Named {
        Named {
            household: Some(household.into()),
            people: members.iter().map(|m| m.to_string()).collect(),
        }
    }

    fn schedule() -> Schedule<u32> {
        Schedule::default()
    }

    #[test]
    fn with_nothing_in_flight_everything_goes_up_to_the_batch_size() {
        let mut s = schedule();
        for i in 0..5 {
            s.arrive(i, &employment("A"));
        }
        assert_eq!(s.take(3, 100), [0, 1, 2]);
        assert_eq!(s.waiting(), 2);
        s.landed();
        assert_eq!(s.take(3, 100), [3, 4]);
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn a_person_of_a_batch_in_flight_waits_for_it_to_land() {
        let mut s = schedule();
        s.arrive(1, &employment("A"));
        assert_eq!(s.take(10, 100), [1]);
        s.arrive(2, &employment("A"));
        s.arrive(3, &employment("B"));
        assert_eq!(s.take(10, 100), [3], "B is free, A is held");
        assert_eq!(s.in_flight(), 2);
        s.landed();
        assert_eq!(s.take(10, 100), [2], "A's batch landed");
    }

    #[test]
    fn a_household_of_a_batch_in_flight_holds_its_members_employment() {
        let mut s = schedule();
        s.arrive(1, &registration("H", &["A", "B"]));
        assert_eq!(s.take(10, 100), [1]);
        s.arrive(2, &employment("C"));
        s.arrive(3, &employment("A"));
        s.landed();
        // Landed: A's registration no longer holds anything...
        assert_eq!(s.take(10, 100), [2, 3]);
        // ...but B's household is still known, so a batch folding it holds B.
        s.arrive(4, &employment("B"));
        assert_eq!(s.take(10, 100), Vec::<u32>::new());
        s.landed();
        assert_eq!(s.take(10, 100), [4]);
    }

    #[test]
    fn a_household_hint_holds_another_members_fact() {
        let mut s = schedule();
        // Learned from a registration earlier on.
        s.arrive(1, &registration("H", &["A", "B"]));
        assert_eq!(s.take(10, 100), [1]);
        s.landed();
        // A's employment folds H: B's must not run beside it.
        s.arrive(2, &employment("A"));
        assert_eq!(s.take(10, 100), [2]);
        s.arrive(3, &employment("B"));
        s.arrive(4, &employment("Z"));
        assert_eq!(s.take(10, 100), [4]);
        s.landed();
        assert_eq!(s.take(10, 100), [3]);
    }

    #[test]
    fn one_persons_messages_keep_their_order_behind_a_waiting_one() {
        let mut s = schedule();
        s.arrive(1, &employment("A"));
        assert_eq!(s.take(10, 100), [1]);
        // 2 waits for A; 3 names A and B: it waits behind 2, and so does B's 4.
        s.arrive(2, &employment("A"));
        s.arrive(3, &registration("H", &["A", "B"]));
        s.arrive(4, &employment("B"));
        s.arrive(5, &employment("C"));
        assert_eq!(s.take(10, 100), [5]);
        assert_eq!(s.held_back(), 3);
        assert_eq!(s.held_back(), 0, "counted once");
        s.landed();
        // 1 landed (5 still in flight): 2, 3 and 4 go together, in order.
        assert_eq!(s.take(10, 100), [2, 3, 4]);
    }

    #[test]
    fn a_batch_names_at_most_max_people_unless_one_message_names_more() {
        let mut s = schedule();
        s.arrive(1, &registration("H1", &["A", "B", "C"]));
        s.arrive(2, &registration("H2", &["D", "E"]));
        s.arrive(3, &employment("F"));
        assert_eq!(
            s.take(10, 4),
            [1, 3],
            "3 + 2 people are more than 4, 3 + 1 are not"
        );
        s.landed();
        assert_eq!(s.take(10, 4), [2]);
        s.landed();
        s.arrive(4, &registration("H3", &["G", "H", "I", "J", "K"]));
        assert_eq!(s.take(10, 4), [4], "alone, it goes however many it names");
    }

    #[test]
    fn messages_naming_no_one_never_wait_for_anyone() {
        let mut s = schedule();
        s.arrive(1, &employment("A"));
        assert_eq!(s.take(10, 100), [1]);
        s.arrive(2, &employment("A"));
        s.arrive(3, &Named::default());
        assert_eq!(s.take(10, 100), [3]);
    }

    #[test]
    fn nothing_waits_once_every_batch_has_landed() {
        let mut s = schedule();
        s.arrive(1, &registration("H", &["A", "B"]));
        s.arrive(2, &employment("A"));
        assert_eq!(
            s.take(10, 100),
            [1, 2],
            "one batch may name the same people twice"
        );
        s.arrive(3, &employment("B"));
        s.arrive(4, &employment("A"));
        assert!(s.take(10, 100).is_empty());
        s.landed();
        assert_eq!(s.in_flight(), 0);
        assert_eq!(s.take(10, 100), [3, 4]);
        assert_eq!(s.waiting(), 0);
    }

    #[test]
    fn reset_forgets_what_was_in_flight_and_waiting() {
        let mut s = schedule();
        s.arrive(1, &employment("A"));
        assert_eq!(s.take(10, 100), [1]);
        s.arrive(2, &employment("A"));
        assert!(s.take(10, 100).is_empty());
        s.reset();
        assert_eq!((s.in_flight(), s.waiting()), (0, 0));
        s.arrive(3, &employment("A"));
        assert_eq!(s.take(10, 100), [3]);
    }

    #[test]
    fn hints_are_bounded_to_two_generations() {
        let mut hints = Hints {
            current: HashMap::new(),
            previous: HashMap::new(),
            per_generation: 2,
        };
        for p in 0..5 {
            hints.learn(p, 100 + p);
        }
        assert!(hints.current.len() + hints.previous.len() <= 4);
        assert_eq!(hints.household_of(4), Some(104));
        assert_eq!(
            hints.household_of(0),
            None,
            "the oldest generation is forgotten"
        );
        // Learning again what is known does not start a generation.
        hints.learn(4, 200);
        assert_eq!(hints.household_of(4), Some(200));
        assert_eq!(hints.household_of(3), Some(103));
    }
}
