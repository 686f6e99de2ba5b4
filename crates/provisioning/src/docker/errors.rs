//! Engine API errors as [`DriverError`]s.
//!
//! The engine answers `{"message": …}` with a status
//! (docs.docker.com/reference/api/engine/version/v1.41): 404 for a missing
//! container, image, network or volume; 409 for a name in use, a container
//! being removed, a volume in use; 500 for most failures, of which few are
//! worth a retry (a port already allocated is not). A refused or timed out
//! connection is transient.

use bollard::errors::Error;

use crate::DriverError;

/// A classified engine error, keeping the status so callers can act on a
/// 404 or 409 before it becomes a [`DriverError`].
#[derive(Debug)]
pub(crate) struct ApiError {
    /// What we were doing (`create container tenantry-acme`).
    pub call: String,
    /// HTTP status, when the engine answered.
    pub status: Option<u16>,
    /// The engine's message or the transport's error.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(call: impl Into<String>, e: Error) -> Self {
        let call = call.into();
        match e {
            Error::DockerResponseServerError {
                status_code,
                message,
            } => Self {
                call,
                status: Some(status_code),
                message,
            },
            other => Self {
                call,
                status: None,
                message: other.to_string(),
            },
        }
    }

    pub(crate) fn is(&self, status: u16) -> bool {
        self.status == Some(status)
    }

    fn transient(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        match self.status {
            // No answer: refused, reset, timed out.
            None => !m.contains("json") && !m.contains("parse"),
            Some(429 | 502 | 503 | 504) => true,
            // "removal of container … is already in progress", "… is
            // restarting, wait until the container is running".
            Some(409) => m.contains("in progress") || m.contains("restarting"),
            Some(500) => {
                m.contains("i/o timeout")
                    || m.contains("context deadline exceeded")
                    || m.contains("connection reset")
                    || m.contains("try again")
            }
            Some(_) => false,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(
                f,
                "{}: Docker engine answered {s}: {}",
                self.call, self.message
            ),
            None => write!(f, "{}: {}", self.call, self.message),
        }
    }
}

impl From<ApiError> for DriverError {
    fn from(e: ApiError) -> Self {
        let reason = e.to_string();
        if e.transient() {
            return Self::Transient { reason };
        }
        match e.status {
            Some(401 | 403) => Self::Unauthorized { reason },
            Some(404) => Self::NotFound { reason },
            _ => Self::Failed { reason },
        }
    }
}

/// Runs a bollard call and tags its error with `call`.
pub(crate) trait Call<T> {
    fn call(self, what: impl Into<String>) -> Result<T, ApiError>;
}

impl<T> Call<T> for Result<T, Error> {
    fn call(self, what: impl Into<String>) -> Result<T, ApiError> {
        self.map_err(|e| ApiError::new(what, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> DriverError {
        ApiError::new(
            "call",
            Error::DockerResponseServerError {
                status_code,
                message: message.into(),
            },
        )
        .into()
    }

    #[test]
    fn statuses_and_messages_classify() {
        assert!(matches!(
            server(404, "No such container: x"),
            DriverError::NotFound { .. }
        ));
        assert!(matches!(
            server(403, "no"),
            DriverError::Unauthorized { .. }
        ));
        assert!(server(503, "busy").is_transient());
        assert!(server(409, "removal of container x is already in progress").is_transient());
        assert!(matches!(
            server(
                409,
                "Conflict. The container name \"/tenantry-acme\" is already in use"
            ),
            DriverError::Failed { .. }
        ));
        assert!(matches!(
            server(
                500,
                "Bind for 0.0.0.0:20001 failed: port is already allocated"
            ),
            DriverError::Failed { .. }
        ));
        let timeout: DriverError = ApiError::new("call", Error::RequestTimeoutError).into();
        assert!(timeout.is_transient());
    }
}
