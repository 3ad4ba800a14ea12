//! Session timers on the trunk leg (RFC 4028): a carrier that asks for
//! them (Session-Expires) gets them. A Session-Expires below our Min-SE is
//! refused 422; a longer one than we keep is lowered. Whoever refreshes
//! (the carrier, by re-INVITE or UPDATE, or we, by UPDATE when the carrier
//! allows it and re-INVITE otherwise, at half the interval), a session that
//! is not refreshed in time is ended with BYE.
//!
//! Only the trunk leg has one: operator phones are ours and watched by RTP
//! timeouts and OPTIONS pings.

use std::time::{Duration, Instant};

use super::{CallCore, End, Env, Figure, MediaCmd, Output};
use crate::sdp;
use crate::sip::{Message, Method, new_branch};

/// What a request from the carrier asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Asked {
    /// No Session-Expires: no timer.
    Nothing,
    /// Below our Min-SE: answer 422.
    TooSmall,
    Timer {
        interval: u32,
        we_refresh: bool,
    },
}

/// Reads Session-Expires, Min-SE and Supported of a dialog-creating or
/// refreshing request from the carrier (the UAC of that transaction).
pub(super) fn asked(req: &Message, min_se: u32, max_se: u32) -> Asked {
    let Ok(Some(se)) = req.session_expires() else {
        return Asked::Nothing;
    };
    if se.delta < min_se {
        return Asked::TooSmall;
    }
    let peer_min = req.min_se().ok().flatten().unwrap_or(0);
    let interval = se.delta.min(max_se).max(peer_min);
    let supports = |name: &str| {
        req.header_values(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("timer"))
    };
    let peer_supports = supports("Supported") || supports("Require");
    let we_refresh = match se.refresher.as_deref() {
        // A carrier that does not know timers cannot refresh (a proxy put
        // the header there): we must.
        _ if !peer_supports => true,
        Some(r) if r.eq_ignore_ascii_case("uas") => true,
        _ => false,
    };
    Asked::Timer {
        interval,
        we_refresh,
    }
}

#[derive(Debug)]
pub(super) struct SessionTimer {
    pub interval: u32,
    pub we_refresh: bool,
    /// When we refresh next (we refresh), or when the session is over
    /// unless refreshed (they refresh, or our refresh is out).
    pub at: Instant,
    /// Our refresh in flight: its branch, CSeq and whether it is an INVITE.
    refresh: Option<(String, u32, bool)>,
}

impl SessionTimer {
    pub fn start(interval: u32, we_refresh: bool, now: Instant) -> SessionTimer {
        let mut t = SessionTimer {
            interval,
            we_refresh,
            at: now,
            refresh: None,
        };
        t.restart(now);
        t
    }

    fn restart(&mut self, now: Instant) {
        let i = u64::from(self.interval);
        self.at = if self.we_refresh {
            now + Duration::from_secs(i / 2)
        } else {
            // §10: the side that does not refresh ends the session a little
            // before it expires.
            now + Duration::from_secs(i - (i / 3).min(32))
        };
        self.refresh = None;
    }

    /// The headers our 2xx to a request that set this timer carries; the
    /// carrier is the UAC of that transaction.
    pub fn answer_headers(&self) -> Vec<(&'static str, String)> {
        let refresher = if self.we_refresh { "uas" } else { "uac" };
        let mut h = vec![(
            "Session-Expires",
            format!("{};refresher={refresher}", self.interval),
        )];
        if !self.we_refresh {
            h.push(("Require", "timer".to_owned()));
        }
        h
    }

    pub fn is_refresh(&self, branch: &str) -> bool {
        self.refresh.as_ref().is_some_and(|(b, _, _)| b == branch)
    }
}

impl<E: Env> CallCore<E> {
    /// The headers for a 2xx that carries the session timer, if any.
    pub(super) fn timer_headers(&self) -> Vec<(&'static str, String)> {
        self.trunk
            .timer
            .as_ref()
            .map(SessionTimer::answer_headers)
            .unwrap_or_default()
    }

    /// A refresh (or the INVITE) from the carrier set or renewed the timer.
    pub(super) fn carrier_refreshed(&mut self, asked: Asked) {
        match asked {
            Asked::Timer {
                interval,
                we_refresh,
            } => {
                if self.trunk.timer.is_some() {
                    self.out
                        .push(Output::Figure(Figure::SessionRefreshed { by_us: false }));
                }
                self.trunk.timer = Some(SessionTimer::start(interval, we_refresh, self.now.at));
            }
            Asked::Nothing => {
                // A refresh without the header still proves the session is
                // alive: same interval, same refresher.
                if let Some(t) = &mut self.trunk.timer {
                    t.restart(self.now.at);
                    self.out
                        .push(Output::Figure(Figure::SessionRefreshed { by_us: false }));
                }
            }
            Asked::TooSmall => {}
        }
    }

    /// The timer's deadline passed.
    pub(super) fn session_timer_due(&mut self) -> Result<(), End> {
        let Some(t) = &self.trunk.timer else {
            return Ok(());
        };
        if t.at > self.now.at {
            return Ok(());
        }
        if !t.we_refresh || t.refresh.is_some() {
            tracing::info!(call = self.id, "session not refreshed in time, hanging up");
            return Err(End::SessionExpired);
        }
        self.send_refresh();
        Ok(())
    }

    /// Our refresh: UPDATE when the carrier allows it (no SDP to
    /// renegotiate), re-INVITE with our current SDP otherwise.
    fn send_refresh(&mut self) {
        let use_update = self.trunk.peer_allows_update;
        let Some(t) = &self.trunk.timer else { return };
        let interval = t.interval;
        let method = if use_update {
            Method::Update
        } else {
            Method::Invite
        };
        let branch = new_branch();
        let via = self.env.via(&self.trunk.peer, &branch);
        let seq = self.trunk.dialog.peek_cseq();
        let Some(b) = self.trunk.dialog.request(method.clone(), via) else {
            return;
        };
        let mut b = b
            .header("Contact", self.env.contact(&self.trunk.peer))
            .header("Supported", "timer")
            .header("Session-Expires", format!("{interval};refresher=uac"))
            .header("Min-SE", self.cfg.session_min_se.to_string())
            .header("User-Agent", &self.cfg.user_agent);
        if method == Method::Invite {
            b = b.body("application/sdp", self.trunk.current_sdp.clone());
        }
        let bytes = b.build();
        if let Some(t) = &mut self.trunk.timer {
            t.refresh = Some((branch.clone(), seq, method == Method::Invite));
            // Unanswered by the end of the interval, the session is over.
            t.at = self.now.at + Duration::from_secs(u64::from(interval) / 2);
        }
        self.out.push(Output::Request {
            peer: self.trunk.peer,
            method,
            branch,
            bytes,
        });
    }

    /// The carrier answered our refresh.
    pub(super) fn on_refresh_response(&mut self, resp: Message) -> Result<(), End> {
        let status = resp.status().unwrap_or(0);
        if status < 200 {
            return Ok(());
        }
        let Some((_, seq, is_invite)) = self.trunk.timer.as_mut().and_then(|t| t.refresh.take())
        else {
            return Ok(());
        };
        match status {
            200..=299 => {
                if is_invite {
                    let branch = new_branch();
                    let via = self.env.via(&self.trunk.peer, &branch);
                    let ack = self.trunk.dialog.ack(seq, via).build();
                    self.out.push(Output::Raw {
                        peer: self.trunk.peer,
                        bytes: ack,
                    });
                    if let (Ok((params, srtp)), Some(leg)) = (
                        sdp::accept_answer_secure(
                            resp.body(),
                            &self.cfg.codecs,
                            self.trunk.local_sdp(),
                        ),
                        self.trunk.leg,
                    ) {
                        self.media(MediaCmd::Update { leg, params, srtp });
                    }
                }
                let se = resp.session_expires().ok().flatten();
                if let Some(t) = &mut self.trunk.timer {
                    if let Some(se) = se {
                        t.interval = se.delta.max(self.cfg.session_min_se);
                        // In our request's answer "uac" is us.
                        t.we_refresh = !se
                            .refresher
                            .as_deref()
                            .is_some_and(|r| r.eq_ignore_ascii_case("uas"));
                    }
                    t.restart(self.now.at);
                }
                self.out
                    .push(Output::Figure(Figure::SessionRefreshed { by_us: true }));
                Ok(())
            }
            422 => {
                let min = resp.min_se().ok().flatten().unwrap_or(0);
                if let Some(t) = &mut self.trunk.timer {
                    t.interval = t.interval.max(min).max(self.cfg.session_min_se);
                }
                self.send_refresh();
                Ok(())
            }
            405 | 501 if !is_invite => {
                // The carrier listed UPDATE but does not take it: re-INVITE.
                self.trunk.peer_allows_update = false;
                self.send_refresh();
                Ok(())
            }
            408 | 481 => Err(End::SessionExpired),
            _ => {
                // Refused for now (491, 500…): the session lasts until its
                // end, and ends then unless the carrier refreshes it.
                if let Some(t) = &mut self.trunk.timer {
                    t.we_refresh = false;
                }
                Ok(())
            }
        }
    }
}
