//! The algorithm and the in-memory store, on a manual clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderMap;

use super::*;

const SEC: Duration = Duration::from_secs(1);

fn store() -> (MemoryStore, ManualClock) {
    let clock = ManualClock::new();
    (MemoryStore::new(1_000).with_clock(clock.clone()), clock)
}

#[test]
fn bursts_up_to_the_limit_then_refuses() {
    let (store, _clock) = store();
    let quota = Quota::new(5, 60 * SEC);
    for expected_remaining in (0..5).rev() {
        let decision = store.check_now("k", quota);
        assert!(decision.allowed);
        assert_eq!(decision.remaining, expected_remaining);
    }
    let refused = store.check_now("k", quota);
    assert!(!refused.allowed);
    assert_eq!(refused.remaining, 0);
    // Other keys are untouched.
    assert_eq!(store.check_now("other", quota).remaining, 4);
}

#[test]
fn refills_one_request_per_interval() {
    let (store, clock) = store();
    let quota = Quota::new(5, 60 * SEC);
    assert_eq!(quota.emission_interval(), 12 * SEC);
    for _ in 0..5 {
        assert!(store.check_now("k", quota).allowed);
    }
    clock.advance(12 * SEC - Duration::from_nanos(1));
    assert!(!store.check_now("k", quota).allowed);
    clock.advance(Duration::from_nanos(1));
    let decision = store.check_now("k", quota);
    assert!(decision.allowed);
    assert_eq!(decision.remaining, 0);
    assert!(!store.check_now("k", quota).allowed);

    // Sustained: one every interval, for ever, and no more.
    for _ in 0..100 {
        clock.advance(12 * SEC);
        assert!(store.check_now("k", quota).allowed);
        assert!(!store.check_now("k", quota).allowed);
    }

    // A full window of silence restores the whole burst, and no more than it.
    clock.advance(600 * SEC);
    let allowed = (0..20)
        .filter(|_| store.check_now("k", quota).allowed)
        .count();
    assert_eq!(allowed, 5);
}

#[test]
fn no_fixed_window_boundary_to_exploit() {
    // A fixed window allows `limit` at the end of one window and `limit` again at the start
    // of the next. GCRA allows at most `limit + elapsed / interval` in any stretch of time.
    let (store, clock) = store();
    let quota = Quota::new(10, 60 * SEC);
    clock.set(59 * SEC);
    let first = (0..10)
        .filter(|_| store.check_now("k", quota).allowed)
        .count();
    clock.set(61 * SEC);
    let second = (0..10)
        .filter(|_| store.check_now("k", quota).allowed)
        .count();
    assert_eq!((first, second), (10, 0));
}

#[test]
fn remaining_and_reset_report_the_bucket() {
    let (store, clock) = store();
    let quota = Quota::new(3, 30 * SEC);
    let first = store.check_now("k", quota);
    assert_eq!((first.remaining, first.reset_after), (2, 10 * SEC));
    let second = store.check_now("k", quota);
    assert_eq!((second.remaining, second.reset_after), (1, 20 * SEC));
    assert_eq!(second.reset_after_secs(), 20);
    clock.advance(Duration::from_millis(2_500));
    let third = store.check_now("k", quota);
    // 20 s were owed, 2.5 s passed, 10 s added: full again in 27.5 s, and 2.5 s of credit
    // is not yet a whole request.
    assert_eq!(third.remaining, 0);
    assert_eq!(third.reset_after, Duration::from_millis(27_500));
    assert_eq!(third.reset_after_secs(), 28);
    let refused = store.check_now("k", quota);
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Duration::from_millis(7_500));
    assert_eq!(refused.retry_after_secs(), 8);
    assert_eq!(refused.reset_after_secs(), 28);
}

#[test]
fn retry_after_rounds_up_to_at_least_one_second() {
    let quota = Quota::new(7, 60 * SEC);
    // interval = 8.571428571 s
    let (refused, tat) = quota.evaluate(Some(60 * SEC), Duration::ZERO);
    assert!(!refused.allowed && tat.is_none());
    assert_eq!(refused.retry_after_secs(), 9);

    let fast = Quota::new(10, SEC);
    let (refused, _) = fast.evaluate(Some(SEC), Duration::ZERO);
    assert_eq!(refused.retry_after, Duration::from_millis(100));
    assert_eq!(refused.retry_after_secs(), 1);

    let (allowed, tat) = fast.evaluate(None, Duration::ZERO);
    assert!(allowed.allowed);
    assert_eq!(allowed.retry_after_secs(), 0);
    assert_eq!(tat, Some(Duration::from_millis(100)));
}

#[test]
fn uneven_windows_never_allow_more_than_the_limit() {
    for limit in [1, 3, 7, 13, 1_000, 999_999] {
        let quota = Quota::new(limit, Duration::from_nanos(1_000_000_007));
        let mut tat = None;
        let mut allowed = 0;
        while let (decision, Some(next)) = quota.evaluate(tat, Duration::ZERO) {
            assert!(decision.allowed);
            allowed += 1;
            tat = Some(next);
        }
        assert_eq!(allowed, limit);
    }
}

#[test]
#[should_panic(expected = "at least 1 request")]
fn a_zero_limit_is_a_configuration_error() {
    let _ = rate_limit().limit(0);
}

#[test]
#[should_panic(expected = "longer than zero")]
fn a_zero_window_is_a_configuration_error() {
    let _ = rate_limit().window(0);
}

#[test]
fn concurrent_checks_allow_exactly_the_limit() {
    let (store, _clock) = store();
    let quota = Quota::new(500, 60 * SEC);
    let allowed = AtomicU64::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..250 {
                    if store.check_now("shared", quota).allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(allowed.load(Ordering::Relaxed), 500);
}

#[test]
fn memory_is_bounded_by_max_capacity() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(10_000).with_clock(clock);
    let quota = Quota::new(10, 60 * SEC);
    for i in 0..100_000 {
        store.check_now(&format!("client-{i}"), quota);
    }
    store.run_pending_tasks();
    assert!(
        store.entry_count() <= 10_000,
        "{} keys held",
        store.entry_count()
    );
    // The key that came last is held.
    assert_eq!(store.check_now("client-99999", quota).remaining, 8);
}

#[test]
fn idle_keys_are_forgotten_after_their_window() {
    let (store, clock) = store();
    let quota = Quota::new(1, 60 * SEC);
    assert!(store.check_now("idle", quota).allowed);
    assert!(!store.check_now("idle", quota).allowed);
    clock.advance(59 * SEC);
    store.run_pending_tasks();
    assert!(store.holds("idle"), "dropped before its window");
    clock.advance(SEC);
    store.run_pending_tasks();
    assert!(!store.holds("idle"));
    assert!(store.check_now("idle", quota).allowed);
}

#[test]
fn a_new_key_drops_idle_keys_once_a_window_has_passed() {
    // Small enough for one shard, so the two keys meet.
    let clock = ManualClock::new();
    let store = MemoryStore::new(10).with_clock(clock.clone());
    let quota = Quota::new(2, 60 * SEC);
    store.check_now("first", quota);
    clock.advance(61 * SEC);
    store.check_now("second", quota);
    assert!(
        !store.holds("first"),
        "an idle key outlived a new key's arrival"
    );
    assert!(store.holds("second"));
}

#[test]
fn a_full_store_keeps_the_keys_furthest_from_a_full_allowance() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(8).with_clock(clock.clone());
    let quota = Quota::new(10, 60 * SEC);
    // `busy` uses up its allowance; the others each send one request.
    for _ in 0..10 {
        store.check_now("busy", quota);
    }
    for i in 0..100 {
        store.check_now(&format!("passer-by-{i}"), quota);
    }
    assert!(
        store.entry_count() <= 8,
        "{} keys held",
        store.entry_count()
    );
    assert!(
        store.holds("busy"),
        "a flood of new keys pushed out a limited client"
    );
    assert!(!store.check_now("busy", quota).allowed);
}

#[test]
fn headers_keep_the_tighter_of_nested_limits() {
    let quota = Quota::new(10, 60 * SEC);
    let (loose, _) = quota.evaluate(None, Duration::ZERO);
    let (tight, _) = Quota::new(2, 60 * SEC).evaluate(None, Duration::ZERO);
    let mut headers = HeaderMap::new();
    tight.write_headers(&mut headers);
    loose.write_headers(&mut headers);
    assert_eq!(headers[&X_RATELIMIT_LIMIT], "2");
    assert_eq!(headers[&X_RATELIMIT_REMAINING], "1");
    assert_eq!(headers[&X_RATELIMIT_RESET], "30");
    let mut headers = HeaderMap::new();
    loose.write_headers(&mut headers);
    tight.write_headers(&mut headers);
    assert_eq!(headers[&X_RATELIMIT_LIMIT], "2");
}

#[test]
fn numbers_render_with_and_without_the_table() {
    for n in 0..1100_u64 {
        assert_eq!(number(n), n.to_string().as_str(), "{n}");
    }
    assert_eq!(number(0), "0");
    assert_eq!(number(1023), "1023");
    assert_eq!(number(1024), "1024");
    assert_eq!(number(u64::MAX), "18446744073709551615");
}
