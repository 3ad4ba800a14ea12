//! The one owner of routing: which call owns which dialog, INVITE server
//! transaction and client transaction, keyed by the call's handle.
//!
//! The router asks it where a message goes; call drivers tell it what they
//! open and close. Each call has two inboxes: network messages on a bounded
//! one (a peer flooding one dialog loses messages, which retransmissions
//! recover, instead of growing memory) and the gateway's own events
//! (transaction timeouts, CANCEL, ACD commands, shutdown) on a lossless one,
//! whose size is bounded by admission: a full gateway refuses new calls at
//! the door. It holds no call state beyond the admin view each call keeps
//! current.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::acd::AcdCommand;
use crate::ops::http::{CallState, CallView};
use crate::ops::metrics as m;
use crate::sip::Message;
use crate::sip::transaction::TxId;

/// A network message for a call. Boxed: a channel keeps a block of 32
/// slots per call from the start, so the slot stays a pointer wide rather
/// than a whole message (8 KiB per call otherwise).
#[derive(Debug)]
pub enum NetMsg {
    Request {
        req: Box<Message>,
        tx: TxId,
    },
    Ack {
        req: Box<Message>,
    },
    Response {
        resp: Box<Message>,
        tx: Option<TxId>,
    },
}

/// The gateway's own events for a call; never dropped.
#[derive(Debug)]
pub enum Ctl {
    /// The caller's CANCEL matched the INVITE.
    Cancel,
    /// A client transaction of this call timed out.
    Timeout {
        tx: TxId,
    },
    /// Our 2xx on the trunk leg was never acknowledged.
    AckTimeout,
    Shutdown,
    /// An admin took the caller out of its queue.
    Remove,
    /// Boxed for the same reason as [`NetMsg`].
    Acd(Box<AcdCommand>),
}

/// How deep a call's network inbox may grow.
pub const NET_INBOX: usize = 64;

/// A call's entry in the admin API, updated by its driver.
pub type SharedView = Arc<Mutex<CallView>>;

/// Where to reach one call.
#[derive(Clone)]
pub struct CallHandle {
    pub id: u64,
    pub net: mpsc::Sender<NetMsg>,
    pub ctl: mpsc::UnboundedSender<Ctl>,
    pub view: SharedView,
}

/// (Call-ID, our tag).
pub type DialogKey = (String, String);

#[derive(Default)]
struct Table {
    calls: HashMap<u64, CallHandle>,
    dialogs: HashMap<DialogKey, u64>,
    /// Trunk Call-ID → our tag, for requests that arrive without a To tag
    /// and for ACK timeouts.
    by_call_id: HashMap<String, String>,
    /// INVITE server transactions not answered yet, for CANCEL.
    invites: HashMap<TxId, u64>,
    /// Client transactions in flight, for their timeouts.
    clients: HashMap<TxId, u64>,
}

#[derive(Default)]
pub struct Routes {
    table: Mutex<Table>,
}

impl Routes {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new call from the trunk: its dialog and INVITE are routed to it.
    pub fn admit(&self, call: CallHandle, key: DialogKey, invite_tx: TxId) {
        let mut t = self.table();
        t.by_call_id.insert(key.0.clone(), key.1.clone());
        t.dialogs.insert(key, call.id);
        t.invites.insert(invite_tx, call.id);
        t.calls.insert(call.id, call);
        dialogs_gauge(&t);
    }

    /// Another dialog (an operator or transfer leg) of call `id`.
    pub fn route_dialog(&self, key: DialogKey, id: u64) {
        let mut t = self.table();
        t.dialogs.insert(key, id);
        dialogs_gauge(&t);
    }

    pub fn forget_dialog(&self, key: &DialogKey) {
        let mut t = self.table();
        t.dialogs.remove(key);
        dialogs_gauge(&t);
    }

    /// The INVITE got its final answer: a CANCEL no longer matches it.
    pub fn invite_answered(&self, tx: TxId) {
        self.table().invites.remove(&tx);
    }

    pub fn client_started(&self, tx: TxId, id: u64) {
        self.table().clients.insert(tx, id);
    }

    pub fn client_done(&self, tx: TxId) {
        self.table().clients.remove(&tx);
    }

    /// The call is over: everything of it goes.
    pub fn forget_call(&self, id: u64, key: &DialogKey, invite_tx: TxId, clients: &[TxId]) {
        let mut t = self.table();
        t.calls.remove(&id);
        t.dialogs.remove(key);
        t.invites.remove(&invite_tx);
        for tx in clients {
            t.clients.remove(tx);
        }
        if t.by_call_id.get(&key.0) == Some(&key.1) {
            t.by_call_id.remove(&key.0);
        }
        dialogs_gauge(&t);
    }

    /// The call owning dialog (Call-ID, our tag); without a tag, the trunk
    /// call with that Call-ID.
    pub fn by_dialog(&self, call_id: &str, local_tag: Option<&str>) -> Option<CallHandle> {
        let t = self.table();
        let id = match local_tag {
            Some(tag) => t.dialogs.get(&(call_id.to_owned(), tag.to_owned())),
            None => {
                let tag = t.by_call_id.get(call_id)?;
                t.dialogs.get(&(call_id.to_owned(), tag.clone()))
            }
        }?;
        t.calls.get(id).cloned()
    }

    pub fn by_invite(&self, tx: TxId) -> Option<CallHandle> {
        let t = self.table();
        t.invites.get(&tx).and_then(|id| t.calls.get(id)).cloned()
    }

    pub fn by_client(&self, tx: TxId) -> Option<CallHandle> {
        let t = self.table();
        t.clients.get(&tx).and_then(|id| t.calls.get(id)).cloned()
    }

    pub fn by_id(&self, id: u64) -> Option<CallHandle> {
        self.table().calls.get(&id).cloned()
    }

    /// Calls from the trunk in progress.
    pub fn len(&self) -> usize {
        self.table().calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<CallHandle> {
        self.table().calls.values().cloned().collect()
    }

    pub fn views(&self) -> Vec<CallView> {
        self.all()
            .iter()
            .map(|c| c.view.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// The views by the ACD's number for each call.
    pub fn views_by_id(&self) -> HashMap<u64, CallView> {
        self.all()
            .into_iter()
            .map(|c| {
                let v = c.view.lock().unwrap_or_else(|p| p.into_inner()).clone();
                (c.id, v)
            })
            .collect()
    }
}

fn dialogs_gauge(t: &Table) {
    metrics::gauge!(m::SIP_DIALOGS_ACTIVE).set(t.dialogs.len() as f64);
}

/// The `state` label of `conmutador_calls_active`.
pub fn state_label(s: CallState) -> &'static str {
    match s {
        CallState::Ivr => "ivr",
        CallState::Queued => "queued",
        CallState::Ringing => "ringing",
        CallState::Bridged => "bridged",
    }
}
