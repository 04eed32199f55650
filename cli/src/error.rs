//! The CLI's errors: each prints as one line and maps to an exit code.

use slipway_api::Problem;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with a problem document.
    #[error("{}", problem_line(.0))]
    Api(Problem),
    /// The server could not be reached or answered something unexpected.
    #[error("{0}")]
    Transport(String),
    /// The command was used wrongly or the local setup is wrong.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api(p) if p.status == 401 => 4,
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

fn problem_line(problem: &Problem) -> String {
    let hint = if problem.status == 401 { " (run `slipway login`)" } else { "" };
    format!("{}{hint}", problem.detail)
}
