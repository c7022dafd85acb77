//! Helpers for writing tower services.

/// Takes the service that `poll_ready` readied and leaves a fresh clone in its place.
///
/// A middleware whose future calls the inner service later (after an `.await`) must own it, and
/// tower's contract is that only the instance `poll_ready` answered for may be called: a clone
/// is not ready. The clone left behind is readied by the next `poll_ready`.
pub(crate) fn take_ready<S: Clone>(service: &mut S) -> S {
    let clone = service.clone();
    std::mem::replace(service, clone)
}
