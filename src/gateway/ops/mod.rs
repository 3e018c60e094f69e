//! The gateway's operations routes: `/health` (probes), `/routes`, `/`, the model routes
//! (`/model/info`, `/model/new`, …), mounted in front of the management API
//! ([`ops_router`]). They live with the gateway because they act on its live deployment table.

mod health;
mod models;

pub(super) use self::health::{ops_router, Ops};
