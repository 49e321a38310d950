//! Stripe object ids, checked before they go into the path of a request to Stripe.
//!
//! The gateway builds paths such as `/v1/checkout/sessions/{id}` and sends them with the
//! secret key. An id that came from a browser (the success page's `session_id`) or from a
//! payload could hold `../`, `?`, `#` or `%2F` and so reach another object, add a query, or
//! tell an attacker whether something exists. Every id is therefore parsed with
//! [`StripeId::parse`] first: it must start with the prefix Stripe gives that kind of object
//! and hold nothing but `[A-Za-z0-9_]`, which no path or query can be made of.
//!
//! Use it at the top of every gateway method that puts an id in a path (or anywhere in a
//! request): `let session = StripeId::parse(StripeObject::CheckoutSession, session)?;`. A
//! refusal converts into [`GatewayError::Refused`]: Stripe would refuse such an id too.

use std::fmt;

use super::gateway::GatewayError;

/// The kinds of Stripe object billing names by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StripeObject {
    CheckoutSession,
    Customer,
    Invoice,
    Charge,
    Dispute,
    Refund,
    Subscription,
    Price,
    PaymentIntent,
    PaymentMethod,
    Event,
}

impl StripeObject {
    /// The prefixes Stripe gives ids of this kind (some kinds have an older or a
    /// payment-method-specific one beside the usual).
    pub fn prefixes(self) -> &'static [&'static str] {
        match self {
            StripeObject::CheckoutSession => &["cs_"],
            StripeObject::Customer => &["cus_"],
            StripeObject::Invoice => &["in_"],
            // `py_`: charges of bank debits and other non-card payments.
            StripeObject::Charge => &["ch_", "py_"],
            // `du_`: disputes of non-card payments.
            StripeObject::Dispute => &["dp_", "du_"],
            StripeObject::Refund => &["re_", "pyr_"],
            StripeObject::Subscription => &["sub_"],
            StripeObject::Price => &["price_"],
            StripeObject::PaymentIntent => &["pi_"],
            // `card_`: cards saved before payment methods existed.
            StripeObject::PaymentMethod => &["pm_", "card_"],
            StripeObject::Event => &["evt_"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StripeObject::CheckoutSession => "Checkout session",
            StripeObject::Customer => "customer",
            StripeObject::Invoice => "invoice",
            StripeObject::Charge => "charge",
            StripeObject::Dispute => "dispute",
            StripeObject::Refund => "refund",
            StripeObject::Subscription => "subscription",
            StripeObject::Price => "price",
            StripeObject::PaymentIntent => "payment intent",
            StripeObject::PaymentMethod => "payment method",
            StripeObject::Event => "event",
        }
    }
}

/// Why a string is not an id of the kind asked for. It never repeats the string: it may be
/// anything a caller sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a Stripe {} id", .0.name())]
pub struct InvalidStripeId(pub StripeObject);

impl From<InvalidStripeId> for GatewayError {
    fn from(error: InvalidStripeId) -> Self {
        GatewayError::Refused(error.to_string())
    }
}

/// An id of a Stripe object of a known kind: safe to put in a request path as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StripeId<'a> {
    kind: StripeObject,
    id: &'a str,
}

impl<'a> StripeId<'a> {
    /// Stripe's ids are at most 255 characters.
    pub const MAX_LEN: usize = 255;

    pub fn parse(kind: StripeObject, raw: &'a str) -> Result<Self, InvalidStripeId> {
        let shaped = raw.len() <= Self::MAX_LEN
            && kind.prefixes().iter().any(|prefix| {
                raw.strip_prefix(prefix).is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
            });
        if shaped {
            Ok(Self { kind, id: raw })
        } else {
            Err(InvalidStripeId(kind))
        }
    }

    pub fn kind(self) -> StripeObject {
        self.kind
    }

    pub fn as_str(self) -> &'a str {
        self.id
    }
}

impl fmt::Display for StripeId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_stripes_own_shape_pass() {
        for (kind, id) in [
            (StripeObject::CheckoutSession, "cs_test_a1B2c3D4e5"),
            (StripeObject::CheckoutSession, "cs_live_a1"),
            (StripeObject::CheckoutSession, "cs_sim0a1b2c3"),
            (StripeObject::Customer, "cus_NffrFeUfNV2Hib"),
            (StripeObject::Invoice, "in_1MtHbELkdIwHu7ixl4OzzPMv"),
            (StripeObject::Charge, "ch_3MmlLrLkdIwHu7ix0snN0B15"),
            (StripeObject::Charge, "py_3MmlLrLkdIwHu7ix0snN0B15"),
            (StripeObject::Dispute, "dp_1MtJUT2eZvKYlo2CNaw2HvEv"),
            (StripeObject::Dispute, "du_1MtJUT2eZvKYlo2CNaw2HvEv"),
            (StripeObject::Refund, "re_1Nispe2eZvKYlo2Cd31jOCgZ"),
            (StripeObject::Subscription, "sub_1MowQVLkdIwHu7ixeRlqHVzs"),
            (StripeObject::Price, "price_1MoBy5LkdIwHu7ixZhnattbh"),
            (StripeObject::Price, "price_sim_tokens_small"),
            (StripeObject::PaymentIntent, "pi_3MtwBwLkdIwHu7ix28a3tqPa"),
            (StripeObject::Event, "evt_1NG8Du2eZvKYlo2CUI79vXWy"),
        ] {
            let parsed = StripeId::parse(kind, id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.as_str(), id);
            assert_eq!(parsed.kind(), kind);
        }
    }

    #[test]
    fn anything_that_could_change_a_path_or_a_query_is_refused() {
        let long = format!("cs_{}", "a".repeat(253));
        for raw in [
            "",
            "cs_",
            "../../customers/cus_x",
            "cs_test_1/../../customers/cus_x",
            "cs_test_1/line_items",
            "cs_test_1?expand[]=customer",
            "cs_test_1&expand[]=customer",
            "cs_test_1#x",
            "cs_%2e%2e%2fcustomers",
            "cs_test 1",
            "cs_test_1\n",
            "cs_test-1",
            "cs_test.1",
            "cs_t\u{e9}st",
            "cs_\u{ff10}",
            "CS_test_1",
            " cs_test_1",
            "cus_x",
            long.as_str(),
        ] {
            assert_eq!(
                StripeId::parse(StripeObject::CheckoutSession, raw),
                Err(InvalidStripeId(StripeObject::CheckoutSession)),
                "{raw:?}"
            );
        }
        assert!(StripeId::parse(StripeObject::CheckoutSession, &long[..255]).is_ok());
    }

    #[test]
    fn the_refusal_never_repeats_the_id_and_is_a_final_gateway_refusal() {
        let error = StripeId::parse(StripeObject::Customer, "<script>").unwrap_err();
        assert_eq!(error.to_string(), "not a Stripe customer id");
        assert!(matches!(
            GatewayError::from(error),
            GatewayError::Refused(why) if why == "not a Stripe customer id"
        ));
    }
}
