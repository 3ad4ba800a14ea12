//! The admin API's view of the running gateway: what `/api/*` reads and the
//! actions it may take (drain, reload). It only reads shared state and sends
//! messages; it never touches a call's task directly.

use std::sync::Arc;

use crate::ops::http::{
    AdminBackend, AdminError, CallView, DrainStatus, OperatorView, QueueView, Readiness,
    ReloadReport, RemovedCaller,
};

use super::Router;

pub struct Admin {
    pub router: Arc<Router>,
    pub readiness: Arc<Readiness>,
}

impl AdminBackend for Admin {
    async fn queues(&self) -> Vec<QueueView> {
        self.router.queue_views()
    }

    async fn operators(&self) -> Vec<OperatorView> {
        self.router.operator_views()
    }

    async fn calls(&self) -> Vec<CallView> {
        self.router.call_views()
    }

    async fn pause(
        &self,
        operator: String,
        reason: Option<String>,
    ) -> Result<OperatorView, AdminError> {
        self.router.pause_operator(&operator, reason)
    }

    async fn unpause(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.router.unpause_operator(&operator)
    }

    async fn logout(&self, operator: String) -> Result<OperatorView, AdminError> {
        self.router.logout_operator(&operator)
    }

    async fn remove_caller(
        &self,
        queue: String,
        call_id: String,
    ) -> Result<RemovedCaller, AdminError> {
        self.router.remove_caller(&queue, &call_id)
    }

    async fn reload(&self) -> ReloadReport {
        // Prompts and plans together, as SIGHUP and the watcher do: a new plan
        // may name a prompt file that came with it.
        let res = self.router.services.reload();
        let plans = self.router.services.plans().plans().len() as u32;
        match res {
            Ok(warnings) => ReloadReport {
                ok: true,
                plans,
                warnings: warnings.iter().map(ToString::to_string).collect(),
                errors: Vec::new(),
            },
            Err(errors) => ReloadReport {
                ok: false,
                plans,
                warnings: Vec::new(),
                errors: errors.iter().map(ToString::to_string).collect(),
            },
        }
    }

    async fn drain(&self) -> DrainStatus {
        self.router.drain();
        self.readiness.set_draining(true);
        DrainStatus {
            draining: true,
            active_calls: self.router.active_calls() as u32,
        }
    }
}
