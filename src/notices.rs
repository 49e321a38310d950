//! Email notices: what the letter about an event says. The database writes a notice beside
//! each event a person is told about (migration 0007: what is available going under their
//! threshold, tokens about to expire); the server's mailer sends it after commit, at least
//! once, and retries it as webhooks are retried ([`crate::outbox::after_failure`]).

use crate::domain::{Timestamp, group_thousands};
use crate::outbox::{EventDetail, EventKind, OutboxEvent};

/// A notice as the person reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub subject: String,
    /// Plain text, lines under 78 characters.
    pub text: String,
}

/// An event nobody is mailed about (the notice table only takes those that are).
#[derive(Debug, thiserror::Error)]
#[error("no email is sent for {0:?} events")]
pub struct NotANotice(pub EventKind);

const DAY_MS: i64 = 86_400_000;

/// The letter about `event`; `billing` is the billing page's address.
pub fn letter_for(event: &OutboxEvent, billing: &str) -> Result<Letter, NotANotice> {
    match (&event.detail, event.kind) {
        (
            EventDetail::Low {
                available,
                threshold,
            },
            EventKind::BalanceLow,
        ) => Ok(Letter {
            subject: format!("Your balance is low: {} left", tokens(*available)),
            text: format!(
                "You have {} available.\n\
                 You asked to hear when fewer than {} are left.\n\n\
                 Buy more before you run out: {billing}\n\n\
                 You get this once each time your balance goes under that mark.\n\
                 Change the mark, or turn these emails off, on the billing page.\n",
                tokens(*available),
                tokens(*threshold),
            ),
        }),
        (
            EventDetail::Grant {
                tokens: left,
                expires_at: Some(expires_at),
                ..
            },
            EventKind::GrantExpiring,
        ) => {
            let days = days_between(event.created_at, *expires_at);
            let when = match days {
                1 => "tomorrow".to_owned(),
                n => format!("in {n} days"),
            };
            let expire = if *left == 1 { "expires" } else { "expire" };
            Ok(Letter {
                subject: format!("{} {expire} {when}", tokens(*left)),
                text: format!(
                    "{} of yours {expire} {when}, at {} (UTC).\n\n\
                     Tokens that expire soonest are spent first, so the next work you run uses\n\
                     them. What is left when they expire is gone.\n\n\
                     Your balance and what expires when: {billing}\n",
                    tokens(*left),
                    expires_at.rfc3339().replace('T', " ").trim_end_matches('Z'),
                ),
            })
        }
        (EventDetail::TopUp { tokens: added, .. }, EventKind::TopUpSucceeded) => {
            let added = added.map_or_else(|| "A pack of tokens".to_owned(), tokens);
            Ok(Letter {
                subject: format!("Auto top-up: {added} added"),
                text: format!(
                    "{added} were added to your balance, paid with your saved card,\n\
                     because what you could spend went under your auto top-up mark.\n\n\
                     Your balance, and auto top-up's mark, pack and monthly cap: {billing}\n"
                ),
            })
        }
        (EventDetail::TopUp { failure, .. }, EventKind::TopUpFailed) => {
            let (subject, why) = match failure.as_deref() {
                Some("authentication_required") => (
                    "Auto top-up paused: your bank asks you to confirm",
                    "Your bank asked to confirm the payment with you, and auto top-up pays\n\
                     while you are away, so nothing was charged.",
                ),
                Some("monthly_cap") => (
                    "Auto top-up reached this month's cap",
                    "Buying another pack would have passed the monthly cap you set, so\n\
                     nothing was charged. Auto top-up goes on next month.",
                ),
                _ => (
                    "Auto top-up paused: your card was declined",
                    "Your bank declined the payment for your auto top-up, so nothing was\n\
                     charged.",
                ),
            };
            let next = if failure.as_deref() == Some("monthly_cap") {
                "Raise the cap, or buy tokens yourself"
            } else {
                "Auto top-up is paused until you update your card"
            };
            Ok(Letter {
                subject: subject.to_owned(),
                text: format!("{why}\n\n{next}:\n{billing}\n"),
            })
        }
        _ => Err(NotANotice(event.kind)),
    }
}

/// `1 token`, `1,200 tokens`.
fn tokens(n: i64) -> String {
    match n {
        1 => "1 token".to_owned(),
        n => format!("{} tokens", group_thousands(n)),
    }
}

/// Whole days from `from` to `to`, a part of a day counting as one.
fn days_between(from: Timestamp, to: Timestamp) -> i64 {
    ((to.as_millis() - from.as_millis()).max(0) + DAY_MS - 1) / DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{GrantId, UserId};

    fn event(kind: EventKind, detail: EventDetail, created_at: i64) -> OutboxEvent {
        OutboxEvent {
            id: 7,
            user: UserId::new(3).unwrap(),
            kind,
            created_at: Timestamp::from_millis(created_at),
            detail,
        }
    }

    #[test]
    fn a_low_balance_names_what_is_left_and_the_mark() {
        let low = event(
            EventKind::BalanceLow,
            EventDetail::Low {
                available: 850,
                threshold: 1_000,
            },
            0,
        );
        let letter = letter_for(&low, "https://billing.example.com/app/billing").unwrap();
        assert_eq!(letter.subject, "Your balance is low: 850 tokens left");
        assert!(
            letter
                .text
                .starts_with("You have 850 tokens available.\nYou asked to hear when fewer than 1,000 tokens are left."),
            "{}",
            letter.text
        );
        assert!(
            letter
                .text
                .contains("https://billing.example.com/app/billing\n")
        );
        assert!(letter.text.lines().all(|line| line.len() < 78));
    }

    #[test]
    fn expiring_tokens_say_when_in_days_and_at_what_time() {
        let grant = |left, ends: i64| EventDetail::Grant {
            grant: GrantId::new(4).unwrap(),
            tokens: left,
            expires_at: Some(Timestamp::from_millis(ends)),
        };
        // Written by the minute sweep a little under seven days before the end.
        let now = 1_780_000_000_000;
        let week = event(
            EventKind::GrantExpiring,
            grant(1_200, now + 7 * DAY_MS - 30_000),
            now,
        );
        let letter = letter_for(&week, "http://localhost:3000").unwrap();
        assert_eq!(letter.subject, "1,200 tokens expire in 7 days");
        let ends = Timestamp::from_millis(now + 7 * DAY_MS - 30_000).rfc3339();
        assert!(
            letter
                .text
                .contains(&format!("at {} {} (UTC)", &ends[..10], &ends[11..19])),
            "{}",
            letter.text
        );
        let day = event(EventKind::GrantExpiring, grant(1, now + DAY_MS - 1), now);
        assert_eq!(
            letter_for(&day, "http://x").unwrap().subject,
            "1 token expires tomorrow"
        );
    }

    #[test]
    fn top_ups_say_what_was_added_or_why_nothing_was() {
        let topup = |kind, tokens, failure: Option<&str>| {
            event(
                kind,
                EventDetail::TopUp {
                    topup: 9,
                    tokens,
                    entry: None,
                    failure: failure.map(str::to_owned),
                },
                0,
            )
        };
        let page = "https://billing.example.com/app/billing";
        let paid = letter_for(&topup(EventKind::TopUpSucceeded, Some(5_000), None), page).unwrap();
        assert_eq!(paid.subject, "Auto top-up: 5,000 tokens added");
        for (failure, subject, next) in [
            (
                "declined",
                "Auto top-up paused: your card was declined",
                "update your card",
            ),
            (
                "authentication_required",
                "Auto top-up paused: your bank asks you to confirm",
                "update your card",
            ),
            (
                "monthly_cap",
                "Auto top-up reached this month's cap",
                "Raise the cap",
            ),
        ] {
            let letter =
                letter_for(&topup(EventKind::TopUpFailed, None, Some(failure)), page).unwrap();
            assert_eq!(letter.subject, subject);
            assert!(letter.text.contains(next), "{}", letter.text);
            assert!(letter.text.contains(page));
            assert!(
                letter.text.lines().all(|line| line.len() < 78),
                "{}",
                letter.text
            );
        }
    }

    #[test]
    fn other_events_are_not_mailed() {
        let depleted = event(
            EventKind::BalanceDepleted,
            EventDetail::Depleted { available: 0 },
            0,
        );
        assert!(letter_for(&depleted, "http://x").is_err());
    }
}
