//! The time budget of one query: a deadline that the executor, the search, expand and the SQL
//! runner check as they read records and match patterns, so that a query that runs out of time
//! stops its work (and its thread is free again) instead of only being abandoned by its caller.
//!
//! A budget starts when the query starts reading (`QueryBudget::starting_now`); the HTTP layer
//! gives each list request `limits.query_timeout_ms` and each SQL query `limits.sql_timeout_ms`.
//! Work the caller did not ask for over HTTP (the offline export, tests, benchmarks) runs
//! [`QueryBudget::unlimited`].

use std::time::{Duration, Instant};

use crate::error::{DomainError, DomainResult};

/// How long a query may run, and when it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryBudget {
    limit: Option<Duration>,
    deadline: Option<Instant>,
}

impl QueryBudget {
    /// No limit: [`QueryBudget::check`] never fails.
    pub fn unlimited() -> Self {
        QueryBudget::default()
    }

    /// `limit` from now on.
    pub fn starting_now(limit: Duration) -> Self {
        QueryBudget {
            limit: Some(limit),
            // A limit too large for the clock is no limit.
            deadline: Instant::now().checked_add(limit),
        }
    }

    /// The same limit, started again now (each page of an export is one query).
    pub fn restarted(self) -> Self {
        match self.limit {
            Some(limit) => QueryBudget::starting_now(limit),
            None => self,
        }
    }

    /// The limit, if there is one.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// `Ok` while time is left; the query's timeout error once the deadline has passed.
    pub fn check(&self) -> DomainResult<()> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => Err(DomainError::QueryTimedOut {
                limit_ms: self.limit.map_or(0, |limit| {
                    u64::try_from(limit.as_millis()).unwrap_or(u64::MAX)
                }),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_runs_out_and_an_unlimited_one_never_does() {
        assert!(QueryBudget::unlimited().check().is_ok());
        let generous = QueryBudget::starting_now(Duration::from_secs(3600));
        assert!(generous.check().is_ok());
        let spent = QueryBudget::starting_now(Duration::ZERO);
        assert!(matches!(
            spent.check(),
            Err(DomainError::QueryTimedOut { limit_ms: 0 })
        ));
        let restarted = QueryBudget::starting_now(Duration::from_millis(1)).restarted();
        assert_eq!(restarted.limit(), Some(Duration::from_millis(1)));
        assert!(QueryBudget::unlimited().restarted().check().is_ok());
    }
}
