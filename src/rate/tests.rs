use super::*;

fn limiter(requests: u32, tokens: u32, generations: u32) -> Limiter {
    let settings = LimitSettings {
        requests_per_minute: requests,
        tokens_per_minute: tokens,
        uploads_per_day: 3,
        generations_per_user: generations,
    };
    Limiter::new(settings, 16, 4)
}

#[test]
fn requests_are_counted_per_user() {
    let l = limiter(5, 0, 0);
    for _ in 0..5 {
        l.request(1).unwrap();
    }
    let refused = l.request(1).unwrap_err();
    assert!(matches!(refused, Refusal::Requests { limit: 5, retry_after: 12 }), "{refused:?}");
    assert!(refused.to_string().contains("5 a minute"), "{refused}");
    // Another user is not affected.
    l.request(2).unwrap();
}

#[test]
fn a_tokens_own_limit_is_counted_per_token_even_with_no_user_limit() {
    let l = limiter(0, 0, 0);
    for _ in 0..2 {
        l.token_request(7, 2).unwrap();
    }
    let refused = l.token_request(7, 2).unwrap_err();
    assert!(matches!(refused, Refusal::TokenRequests { limit: 2, retry_after: 30 }), "{refused:?}");
    assert_eq!(refused.kind(), "token_requests");
    assert!(refused.to_string().contains("this token's limit is 2"), "{refused}");
    // Another token, of the same user or not, has its own bucket.
    l.token_request(8, 2).unwrap();
}

#[test]
fn a_user_holds_at_most_their_share_of_generations() {
    let l = limiter(0, 0, 2);
    let a1 = l.admit(Owner::user(1)).unwrap();
    let _a2 = l.admit(Owner::user(1)).unwrap();
    assert_eq!(l.admit(Owner::user(1)).err(), Some(Refusal::Generations { limit: 2 }));
    // Others still get in.
    let _b = l.admit(Owner::user(2)).unwrap();
    assert_eq!(l.generating(1), 2);
    drop(a1);
    assert_eq!(l.generating(1), 1);
    let _a3 = l.admit(Owner::user(1)).unwrap();
}

#[test]
fn the_default_share_follows_the_queue() {
    assert_eq!(limiter(0, 0, 0).generations_per_user(), 16 / 4 + 4);
    assert_eq!(Limiter::new(LimitSettings::default(), 1, 0).generations_per_user(), 2);
}

#[test]
fn generated_tokens_are_counted_when_a_reply_ends() {
    let l = limiter(0, 60, 0);
    let share = l.admit(Owner::user(1)).unwrap();
    share.charge(120);
    drop(share);
    let refused = l.admit(Owner::user(1)).err().unwrap();
    // 60 tokens owed, one a second.
    assert!(matches!(refused, Refusal::Tokens { limit: 60, retry_after: 60 }), "{refused:?}");
    l.admit(Owner::user(2)).unwrap();
}

#[test]
fn owners_that_are_not_users_are_not_limited() {
    let l = limiter(1, 1, 1);
    let _a = l.admit(Owner::CONSOLE).unwrap();
    let _b = l.admit(Owner::CONSOLE).unwrap();
    let _c = l.admit(Owner::SATELLITES).unwrap();
}

#[test]
fn uploads_per_day_say_when_the_oldest_leaves_the_window() {
    let l = limiter(0, 0, 0);
    l.uploads(2, 100, 1).unwrap();
    assert_eq!(l.uploads(3, 86_000, 1), Err(Refusal::Uploads { limit: 3, retry_after: 400 }));
    assert!(l.uploads(0, 0, 4).is_err(), "one request over the limit at once");
}

#[test]
fn the_engines_places_are_shared_evenly_among_the_users_generating() {
    // 16 queued + 4 running = 20 places; a user may hold 8 on their own.
    let l = limiter(0, 0, 0);
    let mut held: Vec<Share> = (0..8).map(|_| l.admit(Owner::user(1)).unwrap()).collect();
    assert!(l.admit(Owner::user(1)).is_err(), "8 at most alone");
    // Nine more users arrive, one reply each: ten users generating, 2 places each.
    for user in 2..=10 {
        held.push(l.admit(Owner::user(user)).unwrap());
    }
    for user in 2..=10 {
        held.push(l.admit(Owner::user(user)).unwrap());
        assert_eq!(l.admit(Owner::user(user)).err(), Some(Refusal::Generations { limit: 2 }), "user {user}");
    }
    // User 1 holds more than an even share now: refused until theirs drop to it.
    assert_eq!(l.admit(Owner::user(1)).err(), Some(Refusal::Generations { limit: 2 }));
    assert_eq!(held.len(), 8 + 18);
}

#[test]
fn unlimited_is_unlimited() {
    let l = Limiter::unlimited();
    let held: Vec<_> = (0..100).map(|_| l.admit(Owner::user(1)).unwrap()).collect();
    assert_eq!(held.len(), 100);
}
