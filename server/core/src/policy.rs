//! The ownership policy: the one function that decides whether a subject may perform an
//! action. Every route (API, portal, git) asks it; none decides on its own.
//!
//! The caller supplies facts (platform role, and the subject's role in the team the
//! action concerns); the policy never loads anything, so it is a pure table.

use crate::roles::{PlatformRole, TeamRole};

/// Who is asking, as far as the policy needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject {
    pub role: PlatformRole,
    /// The subject's role in the team that the action concerns (the team being changed,
    /// the team that would own a new service, or the owner of the service being changed).
    pub team_role: Option<TeamRole>,
}

impl Subject {
    pub fn new(role: PlatformRole, team_role: Option<TeamRole>) -> Self {
        Self { role, team_role }
    }
}

/// Everything the policy can be asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read the catalog: users, teams, services and their metadata.
    ReadCatalog,
    /// Create, change or remove user accounts.
    ManageUsers,
    /// Create or delete teams.
    ManageTeams,
    /// Add, remove or change members of the team.
    ManageTeamMembers,
    /// Create a service owned by the team.
    CreateService,
    /// Change a service the team owns: metadata, push, deploy, configure, delete.
    ChangeService,
    /// Read a service's build, release and app logs (they carry the team's code's output,
    /// which may hold anything the code printed).
    ReadLogs,
    /// Read the audit log.
    ReadAudit,
    /// Register clusters, publish templates, set quotas.
    AdministerPlatform,
}

/// The policy refused; the message says who may do it instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub &'static str);

/// Decides whether `subject` may perform `action`.
pub fn authorize(subject: Subject, action: Action) -> Result<(), Denied> {
    let admin = subject.role == PlatformRole::Admin;
    let member = subject.team_role.is_some();
    let maintainer = subject.team_role == Some(TeamRole::Maintainer);
    let (allowed, why) = match action {
        Action::ReadCatalog => (true, ""),
        Action::ManageUsers => (admin, "only platform admins may manage users"),
        Action::ManageTeams => (admin, "only platform admins may create or delete teams"),
        Action::ManageTeamMembers => {
            (admin || maintainer, "only the team's maintainers and platform admins may change its members")
        }
        Action::CreateService => {
            (admin || member, "only members of the owning team and platform admins may create its services")
        }
        Action::ChangeService => {
            (admin || member, "only members of the owning team and platform admins may change this service")
        }
        Action::ReadLogs => {
            (admin || member, "only members of the owning team and platform admins may read this service's logs")
        }
        Action::ReadAudit => (admin, "only platform admins may read the audit log"),
        Action::AdministerPlatform => (admin, "only platform admins may do this"),
    };
    if allowed { Ok(()) } else { Err(Denied(why)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    const ADMIN: Subject = Subject { role: PlatformRole::Admin, team_role: None };
    const MAINTAINER: Subject = Subject { role: PlatformRole::Developer, team_role: Some(TeamRole::Maintainer) };
    const MEMBER: Subject = Subject { role: PlatformRole::Developer, team_role: Some(TeamRole::Member) };
    const OUTSIDER: Subject = Subject { role: PlatformRole::Developer, team_role: None };

    /// The whole policy as a table: action, then admin / maintainer / member / outsider.
    const TABLE: &[(Action, [bool; 4])] = &[
        (ReadCatalog, [true, true, true, true]),
        (ManageUsers, [true, false, false, false]),
        (ManageTeams, [true, false, false, false]),
        (ManageTeamMembers, [true, true, false, false]),
        (CreateService, [true, true, true, false]),
        (ChangeService, [true, true, true, false]),
        (ReadLogs, [true, true, true, false]),
        (ReadAudit, [true, false, false, false]),
        (AdministerPlatform, [true, false, false, false]),
    ];

    #[test]
    fn policy_table() {
        let subjects = [("admin", ADMIN), ("maintainer", MAINTAINER), ("member", MEMBER), ("outsider", OUTSIDER)];
        for (action, expected) in TABLE {
            for ((label, subject), want) in subjects.iter().zip(expected) {
                assert_eq!(authorize(*subject, *action).is_ok(), *want, "{label} doing {action:?}");
            }
        }
    }

    /// A number per action. The match has no wildcard, so a new `Action` does not compile
    /// until it gets a number here, and then `the_table_covers_every_action` fails until
    /// the new number's row is in TABLE.
    fn number(action: Action) -> usize {
        match action {
            ReadCatalog => 0,
            ManageUsers => 1,
            ManageTeams => 2,
            ManageTeamMembers => 3,
            CreateService => 4,
            ChangeService => 5,
            ReadAudit => 6,
            AdministerPlatform => 7,
            ReadLogs => 8,
        }
    }
    const ACTIONS: usize = 9;

    #[test]
    fn the_table_covers_every_action() {
        let mut seen = [false; ACTIONS];
        for (action, _) in TABLE {
            let n = number(*action);
            assert!(n < ACTIONS, "raise ACTIONS for {action:?}");
            assert!(!seen[n], "{action:?} is in TABLE twice");
            seen[n] = true;
        }
        assert!(seen.iter().all(|s| *s), "an action has no row in TABLE: {seen:?}");
    }

    #[test]
    fn an_admin_who_is_also_a_member_keeps_admin_rights() {
        let s = Subject::new(PlatformRole::Admin, Some(TeamRole::Member));
        assert!(authorize(s, ManageTeamMembers).is_ok());
    }

    #[test]
    fn refusals_say_who_may() {
        let err = authorize(OUTSIDER, ChangeService).expect_err("outsider is refused");
        assert!(err.to_string().contains("owning team"), "{err}");
    }
}
