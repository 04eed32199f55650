//! Platform roles (what a user is on the whole platform) and team roles (what a user is
//! in one team).

use std::fmt;
use std::str::FromStr;

/// A user's platform-wide role: the platform team are admins, everyone else develops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformRole {
    Admin,
    Developer,
}

/// A member's role within one team: maintainers manage the membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TeamRole {
    Member,
    Maintainer,
}

impl TeamRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Member => "member",
            TeamRole::Maintainer => "maintainer",
        }
    }
}

impl fmt::Display for TeamRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not a team role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown team role {0:?}; use \"maintainer\" or \"member\"")]
pub struct UnknownTeamRole(pub String);

impl FromStr for TeamRole {
    type Err = UnknownTeamRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(TeamRole::Member),
            "maintainer" => Ok(TeamRole::Maintainer),
            other => Err(UnknownTeamRole(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_roles_round_trip_through_text() {
        for role in [TeamRole::Member, TeamRole::Maintainer] {
            assert_eq!(role.as_str().parse::<TeamRole>(), Ok(role));
        }
        assert!("owner".parse::<TeamRole>().is_err());
        assert!(TeamRole::Maintainer > TeamRole::Member);
    }
}
