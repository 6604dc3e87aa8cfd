//! §6a 14 under shuffled arrival: the same facts, in any order of arrival and
//! any batching, give the same final state, at most one `placement_overdue`
//! per zero-employment spell and at most one `visit_overdue` per gap.

#[path = "../../domain/tests/common/mod.rs"]
mod common;
mod simulated;

use chrono::{Days, Duration, NaiveDate};
use common::*;
use dynzero_domain::alerts::AlertKind;
use dynzero_domain::facts::{EmploymentEvent, EmploymentFact, Order, Visit};
use dynzero_domain::ids::IdNumber;
use dynzero_domain::reconcile::{HouseholdFacts, reconcile};
use dynzero_domain::rules::Rules;
use proptest::prelude::*;
use simulated::Hub;
use std::collections::BTreeSet;

#[derive(Debug, Clone)]
enum Spec {
    Start {
        person: usize,
        employer: u32,
        day: u64,
    },
    End {
        person: usize,
        employer: u32,
        day: u64,
    },
    Visit {
        day: u64,
    },
}

fn base() -> NaiveDate {
    d("2025-01-01")
}

fn today() -> NaiveDate {
    d("2026-03-01")
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        (0..2usize, 1..3u32, 0..420u64).prop_map(|(person, employer, day)| Spec::Start {
            person,
            employer,
            day
        }),
        (0..2usize, 1..3u32, 0..420u64).prop_map(|(person, employer, day)| Spec::End {
            person,
            employer,
            day
        }),
        (0..420u64).prop_map(|day| Spec::Visit { day }),
    ]
}

/// The facts in one order of arrival. A fact's date and source `time` are
/// its own; only its arrival number follows the order.
fn arrive(specs: &[Spec], order: &[usize], people: &[IdNumber]) -> Vec<HouseholdFacts> {
    let mut h = Household::new("H1");
    h.register(base(), vec![member(&people[0]), member(&people[1])]);
    let mut facts = h.facts().clone();
    let mut snapshots = Vec::new();
    for (position, &i) in order.iter().enumerate() {
        let at = |day: u64| Order {
            date: base() + Days::new(day),
            time: t("2024-12-01T00:00:00Z") + Duration::seconds(i as i64),
            arrival: position as i64 + 2,
        };
        match &specs[i] {
            Spec::Start {
                person,
                employer: e,
                day,
            } => facts.employment.push(EmploymentFact {
                id_number: people[*person].clone(),
                order: at(*day),
                event: EmploymentEvent::Started {
                    employer: employer(*e),
                    terms: stable_terms(),
                },
            }),
            Spec::End {
                person,
                employer: e,
                day,
            } => facts.employment.push(EmploymentFact {
                id_number: people[*person].clone(),
                order: at(*day),
                event: EmploymentEvent::Ended {
                    employer: employer(*e),
                },
            }),
            Spec::Visit { day } => facts.visits.push(Visit {
                household_id: facts.household_id.clone(),
                order: at(*day),
            }),
        }
        snapshots.push(facts.clone());
    }
    snapshots
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn shuffled_arrival_raises_one_alert_per_spell_or_gap_and_the_same_final_state(
        specs in proptest::collection::vec(spec(), 1..10),
        seed in any::<u64>(),
        cuts in proptest::collection::btree_set(0..10usize, 0..4),
    ) {
        let people = vec![man("1985-03-01", 1), woman("1987-07-01", 2)];
        let mut order: Vec<usize> = (0..specs.len()).collect();
        let mut rng = seed;
        for i in (1..order.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let snapshots = arrive(&specs, &order, &people);
        // Batches end at the cuts and at the last message.
        let ends: BTreeSet<usize> = cuts
            .into_iter()
            .filter(|&c| c < snapshots.len())
            .chain([snapshots.len() - 1])
            .collect();
        let mut hub = Hub::new(snapshots[0].household_id.clone());
        for end in ends {
            hub.plan(&snapshots[end], today());
        }
        let all = snapshots.last().expect("at least one fact");
        let expected = reconcile(all, today(), &Rules::default()).map(|r| r.state);
        prop_assert_eq!(hub.published_state(), expected);

        let placement: Vec<_> = hub
            .raised
            .iter()
            .filter(|(a, _, _)| a.kind() == AlertKind::PlacementOverdue)
            .map(|(_, _, spell)| *spell)
            .collect();
        let distinct: BTreeSet<_> = placement.iter().collect();
        prop_assert_eq!(distinct.len(), placement.len(), "two placement_overdue in one spell");
        prop_assert!(placement.len() <= hub.spells());
        let visits = specs.iter().filter(|s| matches!(s, Spec::Visit { .. })).count();
        prop_assert!(
            hub.raised(AlertKind::VisitOverdue) <= hub.spells() * (1 + visits),
            "{} visit_overdue for {} spells and {} visits",
            hub.raised(AlertKind::VisitOverdue),
            hub.spells(),
            visits
        );
    }
}
