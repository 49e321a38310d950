//! What the app asks of the simulated Stripe, answered from the account's state as Stripe's
//! API would answer it.

use async_trait::async_trait;
use url::Url;

use super::objects::{
    PaymentStatus, Portal, Session, SessionStatus, SetupSession, SubscriptionStatus,
};
use super::{SimError, Simulator, json, price_of};
use crate::domain::{Email, Money, ProductKind, Timestamp, UserId};
use crate::stripe::gateway::{
    CardSetup, CardSetupRequest, ChargeRefunds, CheckoutRequest, CheckoutSession, GatewayError,
    GatewayMode, LineItem, ListedEvent, OffSessionOutcome, OffSessionPayment, RefundState,
    SessionSnapshot, StripeGateway, SubscriptionSnapshot,
};
use crate::stripe::status::CheckoutMode;

impl Simulator {
    fn up(&self) -> Result<(), GatewayError> {
        if self.is_down() {
            return Err(GatewayError::Unavailable(
                "simulated outage: Stripe's API is not answering".into(),
            ));
        }
        Ok(())
    }
}

fn no_such(what: &str, id: &str) -> GatewayError {
    GatewayError::Refused(format!("No such {what}: '{id}'"))
}

#[async_trait]
impl StripeGateway for Simulator {
    fn mode(&self) -> GatewayMode {
        GatewayMode::Simulated
    }

    async fn price(&self, price: &str) -> Result<Option<Money>, GatewayError> {
        self.up()?;
        Ok(self.prices.get(price).map(|product| price_of(*product)))
    }

    async fn create_customer(&self, _user: UserId, _email: &Email) -> Result<String, GatewayError> {
        self.up()?;
        Ok(self.ids.make("cus"))
    }

    async fn create_checkout_session(
        &self,
        request: &CheckoutRequest,
    ) -> Result<CheckoutSession, GatewayError> {
        self.up()?;
        let product = *self
            .prices
            .get(&request.price)
            .ok_or_else(|| no_such("price", &request.price))?;
        let mut state = self.state();
        // Stripe answers a repeated idempotency key with the first response.
        if let Some(existing) = state
            .sessions
            .values()
            .find(|s| s.idempotency_key == request.idempotency_key)
        {
            return Ok(CheckoutSession {
                id: existing.id.clone(),
                url: self.page(&format!("checkout/{}", existing.id)),
            });
        }
        let amount = price_of(product);
        let session = Session {
            id: self.ids.make("cs"),
            user: request.user,
            customer: request.customer.clone(),
            price: request.price.clone(),
            product,
            amount,
            amount_total: amount.minor(),
            success_url: request.success_url.clone(),
            cancel_url: request.cancel_url.clone(),
            idempotency_key: request.idempotency_key.clone(),
            status: SessionStatus::Open,
            payment_status: PaymentStatus::Unpaid,
            settling: None,
            payment_intent: None,
            subscription: None,
            invoice: None,
            created: self.now(),
        };
        let created = CheckoutSession {
            id: session.id.clone(),
            url: self.page(&format!("checkout/{}", session.id)),
        };
        state.sessions.insert(session.id.clone(), session);
        Ok(created)
    }

    async fn create_card_setup_session(
        &self,
        request: &CardSetupRequest,
    ) -> Result<CheckoutSession, GatewayError> {
        self.up()?;
        let mut state = self.state();
        if let Some(existing) = state
            .setups
            .values()
            .find(|s| s.idempotency_key == request.idempotency_key)
        {
            return Ok(CheckoutSession {
                id: existing.id.clone(),
                url: self.page(&format!("setup/{}", existing.id)),
            });
        }
        let setup = SetupSession {
            id: self.ids.make("cs"),
            user: request.user,
            customer: request.customer.clone(),
            success_url: request.success_url.clone(),
            cancel_url: request.cancel_url.clone(),
            idempotency_key: request.idempotency_key.clone(),
            status: SessionStatus::Open,
            setup_intent: None,
            payment_method: None,
            created: self.now(),
        };
        let created = CheckoutSession {
            id: setup.id.clone(),
            url: self.page(&format!("setup/{}", setup.id)),
        };
        state.setups.insert(setup.id.clone(), setup);
        Ok(created)
    }

    async fn saved_card(&self, session: &str) -> Result<Option<CardSetup>, GatewayError> {
        self.up()?;
        let (user, customer, payment_method, created) = {
            let state = self.state();
            let setup = state
                .setups
                .get(session)
                .ok_or_else(|| no_such("checkout session", session))?;
            (
                setup.user,
                setup.customer.clone(),
                setup.payment_method.clone(),
                setup.created,
            )
        };
        Ok(payment_method
            .and_then(|pm| self.saved(&pm))
            .map(|card| CardSetup {
                user: Some(user),
                customer: Some(customer),
                card,
                created: Timestamp::from_millis(created * 1000),
            }))
    }

    async fn charge_saved_card(
        &self,
        payment: &OffSessionPayment,
    ) -> Result<OffSessionOutcome, GatewayError> {
        self.up()?;
        self.charge_off_session(payment).map_err(|e| match e {
            SimError::NotFound => no_such("payment method", &payment.payment_method),
            SimError::Refused(why) => GatewayError::Refused(why.to_owned()),
        })
    }

    async fn checkout_session(&self, session: &str) -> Result<SessionSnapshot, GatewayError> {
        self.up()?;
        let state = self.state();
        let s = state
            .sessions
            .get(session)
            .ok_or_else(|| no_such("checkout session", session))?;
        let currency = s.amount.currency();
        Ok(SessionSnapshot {
            id: s.id.clone(),
            user: Some(s.user),
            customer: Some(s.customer.clone()),
            mode: if s.product.kind() == ProductKind::Subscription {
                CheckoutMode::Subscription
            } else {
                CheckoutMode::Payment
            },
            payment_status: s.payment_status,
            status: Some(s.status),
            payment_intent: s.payment_intent.clone(),
            amount_total: Money::new(s.amount_total, currency).ok(),
        })
    }

    async fn checkout_line_items(&self, session: &str) -> Result<Vec<LineItem>, GatewayError> {
        self.up()?;
        let state = self.state();
        let s = state
            .sessions
            .get(session)
            .ok_or_else(|| no_such("checkout session", session))?;
        Ok(vec![LineItem {
            price: s.price.clone(),
            quantity: 1,
            amount_total: Money::new(s.amount_total, s.amount.currency()).ok(),
        }])
    }

    async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &Url,
    ) -> Result<Url, GatewayError> {
        self.up()?;
        let id = self.ids.make("bps");
        self.state().portals.insert(
            id.clone(),
            Portal {
                customer: customer.to_owned(),
                return_url: return_url.clone(),
            },
        );
        Ok(self.page(&format!("portal/{id}")))
    }

    async fn invoice_of_payment_intent(
        &self,
        payment_intent: &str,
    ) -> Result<Option<String>, GatewayError> {
        self.up()?;
        Ok(self
            .state()
            .charges
            .iter()
            .find(|c| c.payment_intent == payment_intent)
            .and_then(|c| c.invoice.clone()))
    }

    async fn charge_refunds(&self, charge: &str) -> Result<ChargeRefunds, GatewayError> {
        self.up()?;
        let state = self.state();
        let c = state
            .charge(charge)
            .ok_or_else(|| no_such("charge", charge))?;
        Ok(ChargeRefunds {
            charge: c.id.clone(),
            payment_intent: Some(c.payment_intent.clone()),
            amount: c.amount.minor(),
            refunds: state
                .refunds
                .iter()
                .filter(|r| r.charge == c.id)
                .map(|r| RefundState {
                    id: r.id.clone(),
                    amount: r.amount,
                    status: r.status,
                })
                .collect(),
        })
    }

    async fn subscription(&self, subscription: &str) -> Result<SubscriptionSnapshot, GatewayError> {
        self.up()?;
        let state = self.state();
        let s = state
            .subscriptions
            .get(subscription)
            .ok_or_else(|| no_such("subscription", subscription))?;
        Ok(SubscriptionSnapshot {
            id: s.id.clone(),
            customer: s.customer.clone(),
            user: s.user,
            status: s.status,
            price: Some(s.price.clone()),
            current_period_end: Some(s.period_end),
            cancel_at_period_end: s.cancel_at_period_end,
            cancel_at: s.cancel_at_period_end.then_some(s.period_end),
            canceled_at: s.canceled_at,
        })
    }

    async fn live_subscriptions(
        &self,
        customer: &str,
    ) -> Result<Vec<SubscriptionSnapshot>, GatewayError> {
        self.up()?;
        let ids: Vec<String> = self
            .state()
            .subscriptions
            .values()
            .filter(|s| s.customer == customer && s.status != SubscriptionStatus::Canceled)
            .map(|s| s.id.clone())
            .collect();
        let mut live = Vec::new();
        for id in ids {
            live.push(self.subscription(&id).await?);
        }
        Ok(live)
    }

    async fn invoice(&self, invoice: &str) -> Result<serde_json::Value, GatewayError> {
        self.up()?;
        let answer = self.api_get(&format!("/v1/invoices/{invoice}"), &[]);
        match answer.status {
            200 => Ok(answer.body),
            _ => Err(no_such("invoice", invoice)),
        }
    }

    async fn invoice_lines(&self, invoice: &str) -> Result<Vec<serde_json::Value>, GatewayError> {
        self.up()?;
        let state = self.state();
        let i = state
            .invoices
            .get(invoice)
            .ok_or_else(|| no_such("invoice", invoice))?;
        let sub = state
            .subscriptions
            .get(&i.subscription)
            .ok_or_else(|| no_such("subscription", &i.subscription))?;
        Ok(json::invoice_lines(i, sub, self.shape))
    }

    async fn events_since(
        &self,
        since: Timestamp,
        progress: &(dyn Fn(usize) + Send + Sync),
    ) -> Result<Vec<ListedEvent>, GatewayError> {
        self.up()?;
        let since = since.as_millis().div_euclid(1000);
        let events: Vec<ListedEvent> = self
            .state()
            .log
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, e)| e.clone())
            .collect();
        progress(events.len());
        Ok(events)
    }
}
