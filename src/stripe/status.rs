//! Stripe's names for the states of its objects, as types: a status is parsed once, where it
//! enters (an event, an API answer, a stored row), and matched as a value everywhere after.

/// An enum whose variants are Stripe's spellings, with `as_str`, `parse`, `Display` and serde
/// under the same names.
macro_rules! stripe_names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Stripe's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// `None` for a name this build does not know.
            pub fn parse(raw: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|s| s.as_str() == raw)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares with Stripe's spelling.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

stripe_names! {
    /// Where a refund stands.
    RefundStatus {
        Pending = "pending",
        RequiresAction = "requires_action",
        Succeeded = "succeeded",
        /// The money never left (an expired card, a closed account): it is back with the merchant.
        Failed = "failed",
        /// Canceled before it was sent.
        Canceled = "canceled",
    }
}

impl RefundStatus {
    /// Whether the refund's money goes (or went) back to the customer.
    pub fn returns_money(self) -> bool {
        !matches!(self, RefundStatus::Failed | RefundStatus::Canceled)
    }
}

stripe_names! {
    /// Where a subscription stands.
    SubscriptionStatus {
        Incomplete = "incomplete",
        IncompleteExpired = "incomplete_expired",
        Trialing = "trialing",
        Active = "active",
        PastDue = "past_due",
        Canceled = "canceled",
        Unpaid = "unpaid",
        Paused = "paused",
    }
}

impl SubscriptionStatus {
    /// A subscription that is not over: it charges, or is about to (a first payment still
    /// being made). A user has at most one bought here.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            SubscriptionStatus::Incomplete
                | SubscriptionStatus::Trialing
                | SubscriptionStatus::Active
                | SubscriptionStatus::PastDue
        )
    }
}

stripe_names! {
    /// What a Checkout session sells.
    CheckoutMode {
        Payment = "payment",
        Subscription = "subscription",
        Setup = "setup",
    }
}

stripe_names! {
    /// Whether a Checkout session is still open.
    SessionStatus {
        Open = "open",
        Complete = "complete",
        Expired = "expired",
    }
}

stripe_names! {
    /// Whether a Checkout session's money has arrived.
    PaymentStatus {
        Paid = "paid",
        Unpaid = "unpaid",
        NoPaymentRequired = "no_payment_required",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_unknown_ones_are_refused() {
        for status in SubscriptionStatus::ALL {
            assert_eq!(SubscriptionStatus::parse(status.as_str()), Some(*status));
        }
        assert_eq!(
            PaymentStatus::parse("no_payment_required"),
            Some(PaymentStatus::NoPaymentRequired)
        );
        assert_eq!(
            CheckoutMode::parse("subscription"),
            Some(CheckoutMode::Subscription)
        );
        assert_eq!(SessionStatus::parse("Complete"), None);
        assert_eq!(SubscriptionStatus::parse("exploded"), None);
        assert!(SubscriptionStatus::PastDue.is_live() && SubscriptionStatus::Incomplete.is_live());
        assert!(!SubscriptionStatus::IncompleteExpired.is_live());
        assert_eq!(SubscriptionStatus::Active, "active");
    }
}
