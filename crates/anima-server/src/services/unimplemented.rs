//! Services of the API whose issue has not landed yet. Their generated
//! default methods answer `UNIMPLEMENTED`; the auth middleware still runs
//! first, so even these calls need valid credentials.

use anima_proto::v1::repository_service_server::RepositoryService;

/// Stands in for every service that is not built yet.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotYetImplemented;

impl RepositoryService for NotYetImplemented {}
