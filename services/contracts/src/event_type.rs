//! The seven inbound event types (docs/contract.md section 4) and their wire names.

/// The `type` of an inbound CloudEvent. A well-formed `type` that is none of
/// these is `unknown_type`, so parsing returns `Option` rather than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    HouseholdRegistered,
    HouseholdVisited,
    LayoffNotice,
    EmploymentStarted,
    EmploymentEnded,
    SubsidyChanged,
    JobPosting,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::HouseholdRegistered,
        EventType::HouseholdVisited,
        EventType::LayoffNotice,
        EventType::EmploymentStarted,
        EventType::EmploymentEnded,
        EventType::SubsidyChanged,
        EventType::JobPosting,
    ];

    /// The wire name, also the routing key on `dynzero.inbound`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::HouseholdRegistered => "household.registered",
            EventType::HouseholdVisited => "household.visited",
            EventType::LayoffNotice => "layoff.notice",
            EventType::EmploymentStarted => "employment.started",
            EventType::EmploymentEnded => "employment.ended",
            EventType::SubsidyChanged => "subsidy.changed",
            EventType::JobPosting => "job.posting",
        }
    }

    /// Exact, case-sensitive match on the wire name.
    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_wire_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn names_outside_the_seven_are_not_types() {
        for s in [
            "",
            "Household.Registered",
            "household.registered ",
            "household",
            "dynzero.household.state",
        ] {
            assert_eq!(EventType::parse(s), None, "{s:?}");
        }
    }
}
