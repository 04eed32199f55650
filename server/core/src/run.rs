//! The pipeline run's state machine: the statuses a run and its stages can be in, the
//! stages a run is made of, and the transitions between statuses (one function each).
//! The store persists these as their `as_str` words; every other crate matches on the
//! enums, never on the words.

use std::fmt;

/// A run's status. `Preparing` runs are not claimable yet (their build context is being
/// exported); the last five never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunStatus {
    Preparing,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Superseded,
    Skipped,
}

/// A stage's status within a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StageStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

/// The stages a run is made of, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Build,
    Push,
    Deploy,
}

/// The stages of a run made by a push: build the image, push it to the registry, deploy.
pub const PUSH_STAGES: &[Stage] = &[Stage::Build, Stage::Push, Stage::Deploy];
/// The stages of a run that deploys an image built before (a rollback, a promotion).
pub const DEPLOY_STAGES: &[Stage] = &[Stage::Deploy];

/// A word that names no status or stage of this version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} run cannot become {to}")]
pub struct Refused {
    pub from: RunStatus,
    pub to: RunStatus,
}

macro_rules! words {
    ($ty:ident, $kind:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The word stored in the database and shown in the API, CLI and portal.
            pub const fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $word),+ }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<Self, UnknownWord> {
                match word {
                    $($word => Ok($ty::$variant),)+
                    _ => Err(UnknownWord { kind: $kind, word: word.to_owned() }),
                }
            }
        }

        /// For the store's row decoding (`#[sqlx(try_from = "String")]`).
        impl TryFrom<String> for $ty {
            type Error = UnknownWord;

            fn try_from(word: String) -> Result<Self, UnknownWord> {
                word.parse()
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

words!(RunStatus, "run status", {
    Preparing => "preparing", Queued => "queued", Running => "running", Succeeded => "succeeded",
    Failed => "failed", Cancelled => "cancelled", Superseded => "superseded", Skipped => "skipped",
});
words!(StageStatus, "stage status", {
    Pending => "pending", Running => "running", Succeeded => "succeeded", Failed => "failed", Skipped => "skipped",
});
words!(Stage, "stage", { Build => "build", Push => "push", Deploy => "deploy" });

impl RunStatus {
    /// Statuses after which a run never changes again.
    pub const FINAL: &'static [RunStatus] =
        &[RunStatus::Succeeded, RunStatus::Failed, RunStatus::Cancelled, RunStatus::Superseded, RunStatus::Skipped];

    pub fn is_final(self) -> bool {
        Self::FINAL.contains(&self)
    }

    /// Not yet claimed by a worker: it may still be cancelled or superseded outright.
    pub fn is_waiting(self) -> bool {
        matches!(self, RunStatus::Preparing | RunStatus::Queued)
    }

    /// Whether a run may go from `self` to `to`: the whole state machine in one table.
    pub fn allows(self, to: RunStatus) -> bool {
        use RunStatus::*;
        matches!(
            (self, to),
            // Its build context is exported: workers may claim it.
            (Preparing, Queued)
            // A worker claimed it.
            | (Queued, Running)
            // Before any worker took it: cancelled, replaced by a newer run of its
            // environment, or refused (its context could not be prepared, its replica
            // stopped).
            | (Preparing | Queued, Cancelled | Superseded | Failed)
            // Its worker ended it, or it was interrupted (its replica stopped).
            | (Running, Succeeded | Failed | Cancelled)
            // Its replica stopped renewing the lease: back in the queue for another.
            | (Running, Queued)
        )
    }

    /// The build context is ready: workers may claim the run.
    pub fn queue(self) -> Result<RunStatus, Refused> {
        if self == RunStatus::Preparing {
            Ok(RunStatus::Queued)
        } else {
            Err(Refused { from: self, to: RunStatus::Queued })
        }
    }

    /// A worker claimed the run.
    pub fn claim(self) -> Result<RunStatus, Refused> {
        if self.allows(RunStatus::Running) {
            Ok(RunStatus::Running)
        } else {
            Err(Refused { from: self, to: RunStatus::Running })
        }
    }

    /// The run's worker ended it with `outcome` (succeeded, failed or cancelled).
    pub fn finish(self, outcome: RunStatus) -> Result<RunStatus, Refused> {
        match outcome {
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled if self == RunStatus::Running => {
                Ok(outcome)
            }
            _ => Err(Refused { from: self, to: outcome }),
        }
    }

    /// Cancelled before any worker took it.
    pub fn cancel_waiting(self) -> Result<RunStatus, Refused> {
        if self.is_waiting() { Ok(RunStatus::Cancelled) } else { Err(Refused { from: self, to: RunStatus::Cancelled }) }
    }

    /// A newer run of the same environment replaced it before it started.
    pub fn supersede(self) -> Result<RunStatus, Refused> {
        if self.is_waiting() {
            Ok(RunStatus::Superseded)
        } else {
            Err(Refused { from: self, to: RunStatus::Superseded })
        }
    }

    /// It never reached a worker and cannot (its context failed, its replica stopped).
    pub fn fail_unstarted(self) -> Result<RunStatus, Refused> {
        if self.is_waiting() { Ok(RunStatus::Failed) } else { Err(Refused { from: self, to: RunStatus::Failed }) }
    }

    /// Its worker's replica stopped renewing the lease: another replica runs it again.
    pub fn requeue(self) -> Result<RunStatus, Refused> {
        if self == RunStatus::Running {
            Ok(RunStatus::Queued)
        } else {
            Err(Refused { from: self, to: RunStatus::Queued })
        }
    }

    /// Ended because its worker is gone and nobody takes it over.
    pub fn interrupt(self) -> Result<RunStatus, Refused> {
        match self {
            RunStatus::Running | RunStatus::Queued | RunStatus::Preparing => Ok(RunStatus::Failed),
            _ => Err(Refused { from: self, to: RunStatus::Failed }),
        }
    }

    /// The status a new run starts in: waiting for its context (`prepared` false) or
    /// queued, or skipped when it has nothing to do, or failed when it was refused.
    pub fn initial(prepared: bool) -> RunStatus {
        if prepared { RunStatus::Queued } else { RunStatus::Preparing }
    }
}

impl StageStatus {
    /// The status a new run's stages start in: pending while the run is waiting,
    /// skipped when the run starts final (refused, or nothing to do).
    pub fn initial(run: RunStatus) -> StageStatus {
        if run.is_waiting() { StageStatus::Pending } else { StageStatus::Skipped }
    }

    /// What a stage becomes when its run ends before it finished: a running stage
    /// failed with it, a pending one never ran.
    pub fn when_run_ends(self) -> StageStatus {
        match self {
            StageStatus::Running => StageStatus::Failed,
            StageStatus::Pending => StageStatus::Skipped,
            done => done,
        }
    }

    pub fn is_done(self) -> bool {
        matches!(self, StageStatus::Succeeded | StageStatus::Failed | StageStatus::Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunStatus::*;

    /// Every (from, to) pair the state machine allows; any pair not here is refused.
    const ALLOWED: &[(RunStatus, RunStatus)] = &[
        (Preparing, Queued),
        (Preparing, Cancelled),
        (Preparing, Superseded),
        (Preparing, Failed),
        (Queued, Running),
        (Queued, Cancelled),
        (Queued, Superseded),
        (Queued, Failed),
        (Running, Succeeded),
        (Running, Failed),
        (Running, Cancelled),
        (Running, Queued),
    ];

    #[test]
    fn the_transition_table_is_exactly_the_allowed_pairs() {
        for &from in RunStatus::ALL {
            for &to in RunStatus::ALL {
                assert_eq!(from.allows(to), ALLOWED.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn each_transition_function_takes_exactly_its_sources_to_its_target() {
        type Step = fn(RunStatus) -> Result<RunStatus, Refused>;
        let steps: &[(&str, Step, &[RunStatus], RunStatus)] = &[
            ("queue", RunStatus::queue, &[Preparing], Queued),
            ("claim", RunStatus::claim, &[Queued], Running),
            ("cancel_waiting", RunStatus::cancel_waiting, &[Preparing, Queued], Cancelled),
            ("supersede", RunStatus::supersede, &[Preparing, Queued], Superseded),
            ("fail_unstarted", RunStatus::fail_unstarted, &[Preparing, Queued], Failed),
            ("requeue", RunStatus::requeue, &[Running], Queued),
            ("interrupt", RunStatus::interrupt, &[Preparing, Queued, Running], Failed),
        ];
        for &(name, step, sources, to) in steps {
            for &from in RunStatus::ALL {
                let expected = if sources.contains(&from) { Ok(to) } else { Err(Refused { from, to }) };
                assert_eq!(step(from), expected, "{name} from {from}");
                if sources.contains(&from) {
                    assert!(from.allows(to), "{name} from {from} is not in the table");
                }
            }
        }
    }

    #[test]
    fn finish_takes_only_a_running_run_to_an_outcome() {
        for &from in RunStatus::ALL {
            for &outcome in RunStatus::ALL {
                let expected = from == Running && matches!(outcome, Succeeded | Failed | Cancelled);
                assert_eq!(from.finish(outcome).is_ok(), expected, "{from} finish {outcome}");
            }
        }
    }

    #[test]
    fn final_statuses_have_no_way_out() {
        for &from in RunStatus::FINAL {
            assert!(from.is_final());
            assert!(RunStatus::ALL.iter().all(|&to| !from.allows(to)), "{from} has a way out");
        }
        assert!(!Preparing.is_final() && !Queued.is_final() && !Running.is_final());
    }

    #[test]
    fn words_round_trip_and_unknown_words_are_named() {
        for &status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
        }
        for &status in StageStatus::ALL {
            assert_eq!(status.as_str().parse::<StageStatus>(), Ok(status));
        }
        for &stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(stage));
        }
        let err = "compile".parse::<Stage>().unwrap_err();
        assert_eq!(err.to_string(), "unknown stage \"compile\"");
        assert_eq!(Refused { from: Succeeded, to: Running }.to_string(), "a succeeded run cannot become running");
    }

    #[test]
    fn stages_start_pending_or_skipped_and_end_with_their_run() {
        assert_eq!(StageStatus::initial(Preparing), StageStatus::Pending);
        assert_eq!(StageStatus::initial(Queued), StageStatus::Pending);
        assert_eq!(StageStatus::initial(Failed), StageStatus::Skipped);
        assert_eq!(StageStatus::initial(Skipped), StageStatus::Skipped);
        assert_eq!(StageStatus::Running.when_run_ends(), StageStatus::Failed);
        assert_eq!(StageStatus::Pending.when_run_ends(), StageStatus::Skipped);
        assert_eq!(StageStatus::Succeeded.when_run_ends(), StageStatus::Succeeded);
        assert_eq!(RunStatus::initial(true), Queued);
        assert_eq!(RunStatus::initial(false), Preparing);
    }
}
