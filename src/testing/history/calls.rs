//! The product's calls in a history, and what each must be answered: consume calls alone and
//! in batches (by their idempotency keys), holds, captures and releases (by what the history
//! knows of each hold and of the time). A refusal for want of tokens is held against what was
//! available when it was made: nothing else runs beside these calls, so what the store says
//! is available right before (and, for a batch, what the items before it took) is what the
//! call saw.

use std::collections::{BTreeSet, HashMap};

use super::nodes::{Consumed, HoldAnswer, Settled};
use super::steps::Key;
use super::{ConsumeCall, Run};
use crate::clock::Clock;
use crate::store::Store;

/// A consume call about to be made.
pub(super) struct PlannedConsume {
    pub(super) user: usize,
    pub(super) tokens: i64,
    pub(super) key: String,
    /// It repeats the key of an earlier call.
    pub(super) retry: bool,
}

/// Where the tags of batch items start, apart from step ids.
const BATCH_TAGS: usize = 1_000_000;

/// A hold as the history made it.
#[derive(Debug, Clone)]
pub(super) struct HoldCall {
    pub(super) user: usize,
    pub(super) id: i64,
    pub(super) tokens: i64,
    /// Milliseconds, by the history's clock.
    pub(super) expires_at: i64,
    pub(super) seen: HoldSeen,
}

/// What the history was told of a hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HoldSeen {
    Open,
    Captured { tokens: i64, entry: i64 },
    Released,
}

impl Run<'_> {
    pub(super) async fn consume(&mut self, step: usize, user: usize, tokens: i64, key: Key) {
        let Some(call) = self.consume_call(step, user, tokens, key) else {
            return;
        };
        let node = step % self.nodes.len();
        let before = self.available(call.user).await;
        let answer = self.nodes[node]
            .consume(self.users[call.user].user, call.tokens, &call.key)
            .await;
        self.refused_fairly(&answer, call.user, call.tokens, before, "a consume");
        self.judge_consume(step, call, answer);
    }

    /// What the user can spend now, by the store, when the nodes tell time as the history
    /// does (otherwise reading it here would settle expiries by another clock than theirs).
    async fn available(&self, user: usize) -> Option<i64> {
        if !self.bench.cluster.tells_history_time() {
            return None;
        }
        let available = self
            .bench
            .store
            .available(self.users[user].user)
            .await
            .expect("the store answers");
        Some(available.spendable())
    }

    /// A refusal for want of tokens is only right when fewer than `tokens` were available.
    fn refused_fairly(
        &mut self,
        answer: &Consumed,
        user: usize,
        tokens: i64,
        available: Option<i64>,
        what: &str,
    ) {
        if let (Consumed::Insufficient, Some(available)) = (answer, available)
            && available >= tokens
        {
            self.problems.push(format!(
                "{what} of {tokens} tokens by user {user} was refused with {available} available"
            ));
        }
    }

    /// Several consume calls in one batch: each answered as its key requires, in order.
    pub(super) async fn batch(&mut self, step: usize, items: Vec<(usize, i64, Key)>) {
        let calls: Vec<(usize, PlannedConsume)> = items
            .into_iter()
            .enumerate()
            .filter_map(|(i, (user, tokens, key))| {
                let tag = BATCH_TAGS + step * 100 + i;
                let user = user % self.users.len();
                self.consume_call(tag, user, tokens, key).map(|c| (tag, c))
            })
            .collect();
        if calls.is_empty() {
            return;
        }
        let items: Vec<_> = calls
            .iter()
            .map(|(_, c)| (self.users[c.user].user, c.tokens, c.key.clone()))
            .collect();
        let users: BTreeSet<usize> = calls.iter().map(|(_, call)| call.user).collect();
        let mut available: HashMap<usize, Option<i64>> = HashMap::new();
        for user in users {
            available.insert(user, self.available(user).await);
        }
        let answers = self.nodes[step % self.nodes.len()]
            .consume_batch(&items)
            .await;
        if answers.len() != calls.len() {
            self.problems.push(format!(
                "a batch of {} was answered {} times",
                calls.len(),
                answers.len()
            ));
            return;
        }
        for ((tag, call), answer) in calls.into_iter().zip(answers) {
            // Each item sees what the items before it left.
            let left = available[&call.user];
            self.refused_fairly(&answer, call.user, call.tokens, left, "a batch item");
            if let (
                Consumed::Applied {
                    replayed: false, ..
                },
                Some(left),
            ) = (&answer, left)
            {
                available.insert(call.user, Some(left - call.tokens));
            }
            self.judge_consume(tag, call, answer);
        }
    }

    /// The user, amount and key of a consume call (a retry takes those of the call it
    /// repeats); `None` when it repeats a call never made.
    fn consume_call(
        &self,
        tag: usize,
        user: usize,
        tokens: i64,
        key: Key,
    ) -> Option<PlannedConsume> {
        Some(match key {
            Key::New => PlannedConsume {
                user,
                tokens,
                key: format!("job-{}-{tag}", self.nonce),
                retry: false,
            },
            Key::Repeat { of } | Key::Changed { of } if !self.consumed.contains_key(&of) => {
                return None;
            }
            Key::Repeat { of } => {
                let c = &self.consumed[&of];
                PlannedConsume {
                    user: c.user,
                    tokens: c.tokens,
                    key: c.key.clone(),
                    retry: true,
                }
            }
            Key::Changed { of } => {
                let c = &self.consumed[&of];
                PlannedConsume {
                    user: c.user,
                    tokens: c.tokens + 1,
                    key: c.key.clone(),
                    retry: true,
                }
            }
        })
    }

    /// Holds a consume call's answer against its key: the first call under a key takes
    /// tokens or is refused for want of them; a later one with the same body is a replay of
    /// the first that took tokens, with another body a conflict.
    fn judge_consume(&mut self, tag: usize, call: PlannedConsume, answer: Consumed) {
        let PlannedConsume {
            user,
            tokens,
            key,
            retry,
        } = call;
        // What the first call with this key was answered, if it took tokens.
        let applied_before = self
            .consumed
            .values()
            .find(|c| c.key == key && c.applied.is_some())
            .and_then(|c| c.applied.map(|entry| (entry, c.tokens)));
        let mut applied = None;
        match (answer, applied_before, retry) {
            (
                Consumed::Applied {
                    entry,
                    replayed: false,
                    balance,
                },
                None,
                _,
            ) => {
                if balance < 0 {
                    self.problems.push(format!(
                        "a debit took user {user} below zero: entry {entry}, balance {balance}"
                    ));
                }
                self.model.debited(user, tokens);
                applied = Some(entry);
            }
            (
                Consumed::Applied {
                    entry,
                    replayed: true,
                    ..
                },
                Some((first, taken)),
                true,
            ) if taken == tokens && entry == first => {}
            (Consumed::Conflict, Some((_, taken)), true) if taken != tokens => {}
            (Consumed::Insufficient, None, _) => {}
            (answer, before, retry) => self.problems.push(format!(
                "consume {key} ({tokens} tokens, retry {retry}) answered {answer:?} after {before:?}"
            )),
        }
        self.consumed.insert(
            tag,
            ConsumeCall {
                user,
                tokens,
                key,
                applied,
            },
        );
    }

    /// A hold for one of the user's jobs.
    pub(super) async fn hold(&mut self, step: usize, user: usize, tokens: i64, ttl_secs: i64) {
        let node = self.nodes[step % self.nodes.len()].clone();
        let key = format!("hold-{}-{step}", self.nonce);
        let before = self.available(user).await;
        match node
            .open_hold(self.users[user].user, tokens, ttl_secs, &key)
            .await
        {
            HoldAnswer::Opened {
                hold,
                available,
                replayed: false,
            } => {
                if available < 0 {
                    self.problems.push(format!(
                        "hold {hold} of user {user} left {available} available"
                    ));
                }
                self.holds.push(HoldCall {
                    user,
                    id: hold,
                    tokens,
                    expires_at: self.clock.now().as_millis() + ttl_secs * 1000,
                    seen: HoldSeen::Open,
                });
            }
            HoldAnswer::Insufficient => {
                if let Some(available) = before
                    && available >= tokens
                {
                    self.problems.push(format!(
                        "a hold of {tokens} tokens for user {user} was refused with {available} \
                         available"
                    ));
                }
            }
            other => self
                .problems
                .push(format!("a new hold of user {user} was answered {other:?}")),
        }
    }

    /// The job of a hold ends: the capture must be applied exactly when the hold is open and
    /// the amount within what it held (or allowed beyond it), replayed when sent again.
    pub(super) async fn capture(
        &mut self,
        step: usize,
        nth: usize,
        percent: i64,
        exceed: bool,
        again: bool,
    ) {
        let at = nth % self.holds.len();
        let hold = self.holds[at].clone();
        let tokens = (hold.tokens * percent / 100).max(1);
        let node = self.nodes[step % self.nodes.len()].clone();
        let expired = self.expired(&hold);
        let answer = node.capture(hold.id, tokens, exceed).await;
        let fine = match (&hold.seen, &answer) {
            (
                HoldSeen::Open,
                Settled::Captured {
                    replayed: false,
                    entry,
                    ..
                },
            ) if expired != Some(true) && (tokens <= hold.tokens || exceed) => {
                self.model.debited(hold.user, tokens);
                self.holds[at].seen = HoldSeen::Captured {
                    tokens,
                    entry: *entry,
                };
                true
            }
            // More than held, with leave, and more than is available: refused.
            (HoldSeen::Open, Settled::Refused(_)) => expired != Some(false) || tokens > hold.tokens,
            (
                HoldSeen::Captured {
                    tokens: taken,
                    entry: first,
                },
                Settled::Captured {
                    replayed: true,
                    entry,
                    ..
                },
            ) => *taken == tokens && first == entry,
            (HoldSeen::Captured { tokens: taken, .. }, Settled::Refused(_)) => *taken != tokens,
            (HoldSeen::Released, Settled::Refused(_)) => true,
            _ => false,
        };
        if !fine {
            self.problems.push(format!(
                "capturing {tokens} of hold {} ({:?}, {} held, expired {expired:?}, exceed \
                 {exceed}) was answered {answer:?}",
                hold.id, hold.seen, hold.tokens
            ));
        }
        if again && matches!(answer, Settled::Captured { .. }) {
            let repeated = node.capture(hold.id, tokens, exceed).await;
            let same = matches!((&answer, &repeated),
                (Settled::Captured { entry: a, .. }, Settled::Captured { entry: b, replayed: true, .. })
                    if a == b);
            if !same {
                self.problems.push(format!(
                    "the capture of hold {} sent again was answered {repeated:?} after {answer:?}",
                    hold.id
                ));
            }
        }
    }

    /// Whether a hold's time has passed, by the nodes' clock: known only when they tell time
    /// by the history's.
    fn expired(&self, hold: &HoldCall) -> Option<bool> {
        self.bench
            .cluster
            .tells_history_time()
            .then(|| self.clock.now().as_millis() >= hold.expires_at)
    }

    pub(super) async fn release(&mut self, step: usize, nth: usize) {
        let at = nth % self.holds.len();
        let hold = self.holds[at].clone();
        let expired = self.expired(&hold);
        let answer = self.nodes[step % self.nodes.len()].release(hold.id).await;
        let fine = match (&hold.seen, &answer) {
            (HoldSeen::Open, Settled::Released { replayed }) => {
                expired.is_none_or(|expired| *replayed == expired)
            }
            (HoldSeen::Released, Settled::Released { replayed: true }) => true,
            (HoldSeen::Captured { .. }, Settled::Refused(_)) => true,
            _ => false,
        };
        if !fine {
            self.problems.push(format!(
                "releasing hold {} ({:?}, expired {expired:?}) was answered {answer:?}",
                hold.id, hold.seen
            ));
        }
        if matches!(answer, Settled::Released { .. }) {
            self.holds[at].seen = HoldSeen::Released;
        }
    }
}
