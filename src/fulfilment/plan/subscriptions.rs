//! A subscription's state, as the page shows it.

use crate::domain::Timestamp;
use crate::store::{Change, SubscriptionRecord};
use crate::stripe::GatewayError;
use crate::stripe::events::SubscriptionState;

use super::Plan;
use crate::fulfilment::Outcome;
use crate::fulfilment::{Fulfilment, FulfilmentError};

impl Fulfilment {
    /// Any news of a subscription: Stripe is asked how it is now. Events arrive in any order
    /// and Stripe times them to the second (`created` saying `incomplete` and `updated` saying
    /// `active` often share one), so the state kept is the one read last, never the one an
    /// event happened to carry.
    pub(super) async fn subscription(
        &self,
        state: SubscriptionState,
    ) -> Result<Plan, FulfilmentError> {
        let now = match self.gateway.subscription(&state.subscription).await {
            Ok(now) => Some(now),
            // Stripe no longer knows it (deleted long ago): the event's word is all there is.
            Err(GatewayError::Refused(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let named = state.user.or_else(|| now.as_ref().and_then(|n| n.user));
        let Some(user) = self.user_of(named, Some(&state.customer)).await? else {
            return Ok(Plan::Fail(format!(
                "no user is linked to customer {}",
                state.customer
            )));
        };
        let record = match now {
            Some(now) => SubscriptionRecord {
                subscription: state.subscription,
                user,
                customer: state.customer,
                status: now.status,
                price: now.price.or(state.price),
                current_period_end: now.current_period_end.or(state.current_period_end),
                cancel_at_period_end: now.cancel_at_period_end,
                cancel_at: now.cancel_at,
                canceled_at: now.canceled_at,
                as_of: state.as_of,
                read_at: Timestamp::now().as_millis(),
            },
            None => SubscriptionRecord {
                subscription: state.subscription,
                user,
                customer: state.customer,
                status: state.status,
                price: state.price,
                current_period_end: state.current_period_end,
                cancel_at_period_end: state.cancel_at_period_end,
                cancel_at: state.cancel_at,
                canceled_at: state.canceled_at,
                as_of: state.as_of,
                read_at: 0,
            },
        };
        Ok(Plan::apply(
            vec![Change::Subscription(record)],
            Outcome::Recorded("state recorded"),
        ))
    }
}
