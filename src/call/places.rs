//! Places in the queues held per calling number, so one person redialling
//! in a loop cannot crowd the line (`guard.caller_places`).
//!
//! A caller takes a [`Place`] when joining a queue; dropping it (leaving
//! the queue, being bridged, hanging up) gives it back. Anonymous callers
//! (no user part, or "anonymous") are not limited: a withheld number is
//! many people. Only this count lives here; the refusal itself is the
//! plan's "queue full" exit, decided by the call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::ops::metrics as m;

#[derive(Debug)]
pub struct CallerPlaces {
    max: usize,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

/// One place in a queue; gives itself back when dropped.
#[derive(Debug)]
pub struct Place {
    number: Option<String>,
    held: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let Some(n) = self.number.take() else { return };
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = held.get_mut(&n) {
            *c -= 1;
            if *c == 0 {
                held.remove(&n);
            }
        }
    }
}

/// The number a caller presents: the user part of a `sip:`/`sips:` From
/// URI or the number of a `tel:` one, without parameters. None when
/// anonymous.
pub fn caller_number(from_uri: &str) -> Option<String> {
    let rest = from_uri
        .strip_prefix("sip:")
        .or_else(|| from_uri.strip_prefix("sips:"))
        .map(|r| r.split_once('@').map(|(u, _)| u).unwrap_or(""))
        .or_else(|| from_uri.strip_prefix("tel:"))
        .unwrap_or("");
    let user = rest.split(';').next().unwrap_or("").trim();
    if user.is_empty() || user.eq_ignore_ascii_case("anonymous") {
        return None;
    }
    // Bounded key: a From header from the network may be long.
    Some(user.chars().take(64).collect())
}

impl CallerPlaces {
    /// `max` places per number; 0: no limit.
    pub fn new(max: usize) -> CallerPlaces {
        CallerPlaces {
            max,
            held: Arc::default(),
        }
    }

    /// A place for the caller with From URI `from_uri`, or None when that
    /// number already holds `max` places (counted in metrics).
    pub fn take(&self, from_uri: &str) -> Option<Place> {
        let number = caller_number(from_uri).filter(|_| self.max > 0);
        if let Some(n) = &number {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            let c = held.entry(n.clone()).or_insert(0);
            if *c >= self.max {
                metrics::counter!(m::GUARD_CALLER_PLACES_REFUSED_TOTAL).increment(1);
                return None;
            }
            *c += 1;
        }
        Some(Place {
            number,
            held: self.held.clone(),
        })
    }

    /// Numbers holding at least one place.
    pub fn numbers(&self) -> usize {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_from_sip_and_tel_uris() {
        assert_eq!(
            caller_number("sip:+5215512345678@10.0.0.1:5060").as_deref(),
            Some("+5215512345678")
        );
        assert_eq!(
            caller_number("tel:+525555;phone-context=x").as_deref(),
            Some("+525555")
        );
        assert_eq!(caller_number("sip:anonymous@anonymous.invalid"), None);
        assert_eq!(caller_number("sip:10.0.0.1"), None);
        assert_eq!(caller_number(""), None);
    }

    #[test]
    fn one_number_holds_at_most_max_places_and_gets_them_back() {
        let p = CallerPlaces::new(2);
        let a = p.take("sip:555@x").unwrap();
        let b = p.take("sip:555@y").unwrap();
        assert!(p.take("sip:555@z").is_none(), "third place refused");
        let other = p.take("sip:777@x");
        assert!(other.is_some(), "another number is not affected");
        drop(a);
        let c = p.take("sip:555@x");
        assert!(c.is_some(), "a place given back can be taken again");
        drop((b, c, other));
        assert_eq!(p.numbers(), 0, "nothing left behind");
    }

    #[test]
    fn anonymous_callers_and_a_zero_limit_are_never_refused() {
        let p = CallerPlaces::new(1);
        let held: Vec<_> = (0..10)
            .map(|_| p.take("sip:anonymous@anonymous.invalid").unwrap())
            .collect();
        assert_eq!(held.len(), 10);
        let off = CallerPlaces::new(0);
        let held: Vec<_> = (0..10).map(|_| off.take("sip:555@x").unwrap()).collect();
        assert_eq!(held.len(), 10);
        assert_eq!(off.numbers(), 0);
    }
}
