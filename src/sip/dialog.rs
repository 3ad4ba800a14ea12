//! Dialog identity and in-dialog state (RFC 3261 §12), with plain types.
//!
//! A [`Dialog`] holds what both sides of a call leg must remember between
//! transactions: Call-ID and tags, the local and remote CSeq, the remote
//! target (the peer's Contact), the route set (from Record-Route, reversed on
//! the UAC side) and whether the dialog is secure. It builds the Request-URI
//! and Route list for the next in-dialog request, with loose (`;lr`) or strict
//! routing per §12.2.1.1, and checks the remote CSeq per §12.2.2.
//!
//! It is used for the trunk leg (we are the UAS) and the operator leg (we are
//! the UAC). It works on strings the codec produced; it never parses whole
//! messages, sends anything or keeps a table of dialogs (the call room does).

use std::fmt;

/// Highest CSeq number allowed (RFC 3261 §8.1.1.5: less than 2**31).
pub const MAX_CSEQ: u32 = (1 << 31) - 1;

/// Dialog identity, always from our point of view.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

impl DialogId {
    /// For a request we received: the To tag is ours, the From tag theirs.
    pub fn for_incoming_request(call_id: &str, from_tag: &str, to_tag: &str) -> Self {
        Self {
            call_id: call_id.to_owned(),
            local_tag: to_tag.to_owned(),
            remote_tag: from_tag.to_owned(),
        }
    }

    /// For a response to a request we sent: the From tag is ours, the To tag
    /// theirs.
    pub fn for_response(call_id: &str, from_tag: &str, to_tag: &str) -> Self {
        Self {
            call_id: call_id.to_owned(),
            local_tag: from_tag.to_owned(),
            remote_tag: to_tag.to_owned(),
        }
    }
}

impl fmt::Display for DialogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};l={};r={}",
            self.call_id, self.local_tag, self.remote_tag
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response with a To tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Which side created the dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogRole {
    Uac,
    Uas,
}

/// What the dialog-creating message gave us. `record_route` holds the
/// Record-Route values in the order they appeared in the message (one
/// name-addr each, e.g. `<sip:p1.example.com;lr>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialogParams {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our From (UAC) or To (UAS) URI, without tag.
    pub local_uri: String,
    /// The peer's URI, without tag.
    pub remote_uri: String,
    /// The URI from the peer's Contact.
    pub remote_target: String,
    pub record_route: Vec<String>,
    /// Request sent over TLS with a `sips:` Request-URI (§12.1.1, §12.1.2).
    pub secure: bool,
}

/// Rejection of an in-dialog request's CSeq.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CSeqError {
    /// §12.2.2: lower than (or equal to) the last one seen: answer 500.
    #[error("CSeq {got} is not above the last remote CSeq {last}")]
    OutOfOrder { last: u32, got: u32 },
    /// 2**31 or above: answer 400.
    #[error("CSeq {0} is out of range")]
    OutOfRange(u32),
}

/// Request-URI and Route header values for the next in-dialog request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InDialogTarget {
    pub request_uri: String,
    /// One `Route:` value each, in order.
    pub routes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    role: DialogRole,
    state: DialogState,
    next_local_seq: u32,
    remote_seq: Option<u32>,
    local_uri: String,
    remote_uri: String,
    remote_target: String,
    route_set: Vec<String>,
    secure: bool,
}

impl Dialog {
    /// We answered a dialog-creating request (§12.1.1). `remote_cseq` is the
    /// request's CSeq number; `first_local_cseq` the number our first
    /// in-dialog request will carry (any value below 2**31, e.g. random).
    pub fn uas(
        params: DialogParams,
        remote_cseq: u32,
        first_local_cseq: u32,
        state: DialogState,
    ) -> Self {
        Self::build(
            params,
            DialogRole::Uas,
            state,
            first_local_cseq,
            Some(remote_cseq),
            false,
        )
    }

    /// We sent the dialog-creating request with CSeq `request_cseq` and got a
    /// response with a To tag (§12.1.2): the route set is the response's
    /// Record-Route reversed; the remote CSeq starts empty.
    pub fn uac(params: DialogParams, request_cseq: u32, state: DialogState) -> Self {
        Self::build(
            params,
            DialogRole::Uac,
            state,
            request_cseq.saturating_add(1),
            None,
            true,
        )
    }

    fn build(
        params: DialogParams,
        role: DialogRole,
        state: DialogState,
        next_local_seq: u32,
        remote_seq: Option<u32>,
        reverse: bool,
    ) -> Self {
        let mut route_set = params.record_route;
        if reverse {
            route_set.reverse();
        }
        Self {
            id: DialogId {
                call_id: params.call_id,
                local_tag: params.local_tag,
                remote_tag: params.remote_tag,
            },
            role,
            state,
            next_local_seq,
            remote_seq,
            local_uri: params.local_uri,
            remote_uri: params.remote_uri,
            remote_target: params.remote_target,
            route_set,
            secure: params.secure,
        }
    }

    pub fn id(&self) -> &DialogId {
        &self.id
    }

    pub fn role(&self) -> DialogRole {
        self.role
    }

    pub fn state(&self) -> DialogState {
        self.state
    }

    pub fn local_uri(&self) -> &str {
        &self.local_uri
    }

    pub fn remote_uri(&self) -> &str {
        &self.remote_uri
    }

    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    pub fn is_secure(&self) -> bool {
        self.secure
    }

    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// The CSeq the next new in-dialog request will use (without taking it).
    pub fn peek_cseq(&self) -> u32 {
        self.next_local_seq
    }

    /// Takes the CSeq number for a new in-dialog request (BYE, re-INVITE,
    /// INFO, UPDATE…). ACK and CANCEL reuse their INVITE's number and must not
    /// call this. `None` once the 2**31 space is used up: end the dialog.
    pub fn next_cseq(&mut self) -> Option<u32> {
        let seq = self.next_local_seq;
        if seq > MAX_CSEQ {
            return None;
        }
        self.next_local_seq = seq + 1;
        Some(seq)
    }

    /// §12.2.2: checks and records the CSeq of an in-dialog request from the
    /// peer. ACK and CANCEL carry their INVITE's number and are not checked.
    pub fn check_remote_cseq(&mut self, seq: u32, method: &str) -> Result<(), CSeqError> {
        if seq > MAX_CSEQ {
            return Err(CSeqError::OutOfRange(seq));
        }
        if method.eq_ignore_ascii_case("ACK") || method.eq_ignore_ascii_case("CANCEL") {
            return Ok(());
        }
        if let Some(last) = self.remote_seq
            && seq <= last
        {
            return Err(CSeqError::OutOfOrder { last, got: seq });
        }
        self.remote_seq = Some(seq);
        Ok(())
    }

    /// A target refresh (re-INVITE, UPDATE, or their 2xx) carried a new
    /// Contact (§12.2.1.2, §12.2.2).
    pub fn update_remote_target(&mut self, uri: impl Into<String>) {
        self.remote_target = uri.into();
    }

    /// An early dialog got its 2xx. On the UAC side the route set is
    /// recomputed from the 2xx's Record-Route (§12.1.2, §13.2.2.4); pass
    /// `None` on the UAS side, where it never changes.
    pub fn confirm(&mut self, uac_record_route: Option<Vec<String>>) {
        self.state = DialogState::Confirmed;
        if self.role == DialogRole::Uac
            && let Some(mut rr) = uac_record_route
        {
            rr.reverse();
            self.route_set = rr;
        }
    }

    /// Request-URI and Route values for the next in-dialog request
    /// (§12.2.1.1): with an empty route set or a loose-routing first hop the
    /// Request-URI is the remote target; a strict-routing first hop goes into
    /// the Request-URI and the remote target is appended to the Routes.
    pub fn request_target(&self) -> InDialogTarget {
        let Some(first) = self.route_set.first() else {
            return InDialogTarget {
                request_uri: self.remote_target.clone(),
                routes: Vec::new(),
            };
        };
        let first_uri = route_uri(first);
        if is_loose_route(first_uri) {
            return InDialogTarget {
                request_uri: self.remote_target.clone(),
                routes: self.route_set.clone(),
            };
        }
        let mut routes: Vec<String> = self.route_set[1..].to_vec();
        routes.push(format!("<{}>", self.remote_target));
        InDialogTarget {
            request_uri: strip_for_request_uri(first_uri),
            routes,
        }
    }
}

impl Dialog {
    /// Starts the next in-dialog request (BYE, re-INVITE, INFO, UPDATE…)
    /// with everything §12.2.1.1 fixes: Request-URI and Route from
    /// [`Self::request_target`], From and To from the dialog's URIs and tags,
    /// Call-ID, a fresh CSeq and the given Via. The caller adds what is its
    /// own (User-Agent, Contact, a body) and builds it. `None` once the CSeq
    /// space is used up: end the dialog instead.
    pub fn request(
        &mut self,
        method: crate::sip::Method,
        via: impl Into<String>,
    ) -> Option<crate::sip::RequestBuilder> {
        let seq = self.next_cseq()?;
        let target = self.request_target();
        let mut b = crate::sip::RequestBuilder::new(method.clone(), &target.request_uri)
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", tagged(&self.local_uri, &self.id.local_tag))
            .header("To", tagged(&self.remote_uri, &self.id.remote_tag))
            .header("Call-ID", self.id.call_id.clone())
            .header("CSeq", format!("{seq} {}", method.as_str()));
        for r in target.routes {
            b = b.header("Route", r);
        }
        Some(b)
    }

    /// The ACK for a 2xx to our in-dialog INVITE with CSeq `seq` (§13.2.2.4):
    /// the dialog's target and routes, the INVITE's number, a new branch in
    /// `via`. It takes no CSeq of its own.
    pub fn ack(&self, seq: u32, via: impl Into<String>) -> crate::sip::RequestBuilder {
        let target = self.request_target();
        let mut b = crate::sip::RequestBuilder::new(crate::sip::Method::Ack, &target.request_uri)
            .header("Via", via)
            .header("Max-Forwards", "70")
            .header("From", tagged(&self.local_uri, &self.id.local_tag))
            .header("To", tagged(&self.remote_uri, &self.id.remote_tag))
            .header("Call-ID", self.id.call_id.clone())
            .header("CSeq", format!("{seq} ACK"));
        for r in target.routes {
            b = b.header("Route", r);
        }
        b
    }
}

/// A From/To value: the URI in brackets and the tag when there is one.
fn tagged(uri: &str, tag: &str) -> String {
    if tag.is_empty() {
        format!("<{uri}>")
    } else {
        format!("<{uri}>;tag={tag}")
    }
}

/// The URI inside a Route/Record-Route value: between `<` and `>` when
/// present, else the whole trimmed value (lenient with peers that omit the
/// brackets).
pub fn route_uri(value: &str) -> &str {
    let value = value.trim();
    if let Some(start) = value.find('<') {
        let rest = &value[start + 1..];
        if let Some(end) = rest.find('>') {
            return rest[..end].trim();
        }
        return rest.trim();
    }
    value
}

/// Whether a SIP URI carries the `lr` parameter (loose router, RFC 3261
/// §19.1.1). Parameters in the user part are not URI parameters and are
/// skipped.
pub fn is_loose_route(uri: &str) -> bool {
    uri_params(uri).any(|p| {
        let name = p.split('=').next().unwrap_or("");
        name.trim().eq_ignore_ascii_case("lr")
    })
}

/// The `;param` list after the host part, before any `?headers`.
fn uri_params(uri: &str) -> impl Iterator<Item = &str> {
    let without_headers = uri.split('?').next().unwrap_or("");
    let host_part = match without_headers.rfind('@') {
        Some(at) => &without_headers[at + 1..],
        None => without_headers,
    };
    host_part.split(';').skip(1).filter(|p| !p.is_empty())
}

/// A route URI made fit for a Request-URI: headers (`?…`) and the `method`
/// parameter are not allowed there (RFC 3261 §19.1.1, Table 1).
fn strip_for_request_uri(uri: &str) -> String {
    let without_headers = uri.split('?').next().unwrap_or("");
    let (user, host) = match without_headers.rfind('@') {
        Some(at) => without_headers.split_at(at),
        None => ("", without_headers),
    };
    let mut out = String::with_capacity(without_headers.len());
    out.push_str(user);
    for (i, part) in host.split(';').enumerate() {
        if i > 0 {
            let name = part.split('=').next().unwrap_or("").trim();
            if name.eq_ignore_ascii_case("method") {
                continue;
            }
            out.push(';');
        }
        out.push_str(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(rr: &[&str]) -> DialogParams {
        DialogParams {
            call_id: "c1@host".into(),
            local_tag: "ours".into(),
            remote_tag: "theirs".into(),
            local_uri: "sip:mexitel@gw.example".into(),
            remote_uri: "sip:+525555555555@trunk.example".into(),
            remote_target: "sip:caller@192.0.2.10:5062;transport=udp".into(),
            record_route: rr.iter().map(|s| s.to_string()).collect(),
            secure: false,
        }
    }

    #[test]
    fn dialog_id_sides() {
        let a = DialogId::for_incoming_request("c", "ft", "tt");
        assert_eq!((a.local_tag.as_str(), a.remote_tag.as_str()), ("tt", "ft"));
        let b = DialogId::for_response("c", "ft", "tt");
        assert_eq!((b.local_tag.as_str(), b.remote_tag.as_str()), ("ft", "tt"));
        assert_eq!(a.to_string(), "c;l=tt;r=ft");
    }

    #[test]
    fn uas_keeps_record_route_order_and_remote_cseq() {
        let d = Dialog::uas(
            params(&["<sip:p1.example;lr>", "<sip:p2.example;lr>"]),
            101,
            1,
            DialogState::Confirmed,
        );
        assert_eq!(
            d.route_set(),
            ["<sip:p1.example;lr>", "<sip:p2.example;lr>"]
        );
        assert_eq!(d.remote_cseq(), Some(101));
        assert_eq!(d.role(), DialogRole::Uas);
        assert_eq!(d.id().local_tag, "ours");
    }

    #[test]
    fn uac_reverses_record_route_and_continues_cseq() {
        let mut d = Dialog::uac(
            params(&["<sip:p1.example;lr>", "<sip:p2.example;lr>"]),
            7,
            DialogState::Early,
        );
        assert_eq!(
            d.route_set(),
            ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
        );
        assert_eq!(d.remote_cseq(), None);
        assert_eq!(d.next_cseq(), Some(8));
        assert_eq!(d.next_cseq(), Some(9));
        assert_eq!(d.peek_cseq(), 10);
    }

    #[test]
    fn uac_confirm_recomputes_route_set_from_2xx() {
        let mut d = Dialog::uac(params(&["<sip:a;lr>"]), 1, DialogState::Early);
        d.confirm(Some(vec!["<sip:x;lr>".into(), "<sip:y;lr>".into()]));
        assert_eq!(d.state(), DialogState::Confirmed);
        assert_eq!(d.route_set(), ["<sip:y;lr>", "<sip:x;lr>"]);
        // The UAS side ignores it.
        let mut u = Dialog::uas(params(&["<sip:a;lr>"]), 1, 1, DialogState::Early);
        u.confirm(Some(vec!["<sip:x;lr>".into()]));
        assert_eq!(u.route_set(), ["<sip:a;lr>"]);
    }

    #[test]
    fn remote_cseq_lower_or_equal_rejected_ack_cancel_exempt() {
        let mut d = Dialog::uas(params(&[]), 10, 1, DialogState::Confirmed);
        assert_eq!(
            d.check_remote_cseq(9, "BYE"),
            Err(CSeqError::OutOfOrder { last: 10, got: 9 })
        );
        assert_eq!(
            d.check_remote_cseq(10, "INFO"),
            Err(CSeqError::OutOfOrder { last: 10, got: 10 })
        );
        assert_eq!(d.check_remote_cseq(10, "ACK"), Ok(()));
        assert_eq!(d.check_remote_cseq(10, "cancel"), Ok(()));
        assert_eq!(d.check_remote_cseq(11, "BYE"), Ok(()));
        assert_eq!(d.remote_cseq(), Some(11));
        // Gaps are fine.
        assert_eq!(d.check_remote_cseq(500, "INVITE"), Ok(()));
        assert_eq!(
            d.check_remote_cseq(1 << 31, "BYE"),
            Err(CSeqError::OutOfRange(1 << 31))
        );
    }

    #[test]
    fn in_dialog_request_carries_the_dialog_and_a_fresh_cseq() {
        let mut d = Dialog::uas(
            params(&["<sip:p1.example;lr>"]),
            10,
            2,
            DialogState::Confirmed,
        );
        let bye = d
            .request(
                crate::sip::Method::Bye,
                "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx",
            )
            .unwrap()
            .build();
        let m = crate::sip::Message::parse(bye).unwrap();
        assert_eq!(
            m.request_uri_str(),
            Some("sip:caller@192.0.2.10:5062;transport=udp")
        );
        assert_eq!(m.header("Route"), Some("<sip:p1.example;lr>"));
        assert_eq!(m.header("From"), Some("<sip:mexitel@gw.example>;tag=ours"));
        assert_eq!(
            m.header("To"),
            Some("<sip:+525555555555@trunk.example>;tag=theirs")
        );
        assert_eq!(m.header("CSeq"), Some("2 BYE"));
        assert_eq!(m.header("Call-ID"), Some("c1@host"));
        let next = d
            .request(crate::sip::Method::Info, "SIP/2.0/UDP h;branch=z9hG4bKy")
            .unwrap();
        let m = crate::sip::Message::parse(next.build()).unwrap();
        assert_eq!(m.header("CSeq"), Some("3 INFO"));
    }

    #[test]
    fn uac_remote_cseq_starts_empty() {
        let mut d = Dialog::uac(params(&[]), 1, DialogState::Confirmed);
        assert_eq!(d.check_remote_cseq(1, "BYE"), Ok(()));
        assert_eq!(d.remote_cseq(), Some(1));
    }

    #[test]
    fn next_cseq_stops_at_2_pow_31() {
        let mut d = Dialog::uas(params(&[]), 1, MAX_CSEQ, DialogState::Confirmed);
        assert_eq!(d.next_cseq(), Some(MAX_CSEQ));
        assert_eq!(d.next_cseq(), None);
        assert_eq!(d.next_cseq(), None);
        let mut u = Dialog::uac(params(&[]), u32::MAX, DialogState::Confirmed);
        assert_eq!(u.next_cseq(), None);
    }

    #[test]
    fn target_without_route_set_is_remote_target() {
        let d = Dialog::uas(params(&[]), 1, 1, DialogState::Confirmed);
        let t = d.request_target();
        assert_eq!(t.request_uri, "sip:caller@192.0.2.10:5062;transport=udp");
        assert!(t.routes.is_empty());
    }

    #[test]
    fn loose_routing_keeps_remote_target_and_all_routes() {
        let d = Dialog::uas(
            params(&[
                "<sip:p1.example;lr>",
                "\"Edge\" <sip:p2.example;lr=on;transport=tcp>",
            ]),
            1,
            1,
            DialogState::Confirmed,
        );
        let t = d.request_target();
        assert_eq!(t.request_uri, "sip:caller@192.0.2.10:5062;transport=udp");
        assert_eq!(
            t.routes,
            vec![
                "<sip:p1.example;lr>".to_owned(),
                "\"Edge\" <sip:p2.example;lr=on;transport=tcp>".to_owned()
            ]
        );
    }

    #[test]
    fn strict_routing_moves_first_hop_to_request_uri() {
        let d = Dialog::uac(
            // As received in the response: the UAC reverses it.
            params(&[
                "<sip:p3.example;lr>",
                "<sip:p1.example;maddr=10.0.0.1;method=INVITE?x=y>",
            ]),
            1,
            DialogState::Confirmed,
        );
        let t = d.request_target();
        assert_eq!(t.request_uri, "sip:p1.example;maddr=10.0.0.1");
        assert_eq!(
            t.routes,
            vec![
                "<sip:p3.example;lr>".to_owned(),
                "<sip:caller@192.0.2.10:5062;transport=udp>".to_owned()
            ]
        );
    }

    #[test]
    fn lr_in_user_part_does_not_count() {
        assert!(!is_loose_route("sip:user;lr@p1.example"));
        assert!(is_loose_route("sip:user;x@p1.example;LR"));
        assert!(is_loose_route("sip:[2001:db8::1]:5060;lr"));
        assert!(!is_loose_route("sip:p1.example;transport=tcp?lr=1"));
        assert!(!is_loose_route(""));
    }

    #[test]
    fn route_uri_extraction_is_lenient() {
        assert_eq!(route_uri(" <sip:a;lr> ;foo=bar"), "sip:a;lr");
        assert_eq!(route_uri("\"X\" <sip:a>"), "sip:a");
        assert_eq!(route_uri("sip:a;lr"), "sip:a;lr");
        assert_eq!(route_uri("<sip:unterminated"), "sip:unterminated");
        assert_eq!(route_uri(""), "");
    }

    #[test]
    fn target_refresh_updates_remote_target() {
        let mut d = Dialog::uas(params(&[]), 1, 1, DialogState::Confirmed);
        d.update_remote_target("sip:caller@198.51.100.7:5070");
        assert_eq!(
            d.request_target().request_uri,
            "sip:caller@198.51.100.7:5070"
        );
        assert_eq!(d.remote_target(), "sip:caller@198.51.100.7:5070");
    }

    #[test]
    fn secure_flag_and_uris_kept() {
        let mut p = params(&[]);
        p.secure = true;
        let d = Dialog::uas(p, 1, 1, DialogState::Early);
        assert!(d.is_secure());
        assert_eq!(d.state(), DialogState::Early);
        assert_eq!(d.local_uri(), "sip:mexitel@gw.example");
        assert_eq!(d.remote_uri(), "sip:+525555555555@trunk.example");
    }
}
