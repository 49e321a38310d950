//! The catalog: which Stripe price is which product. The one place a price id becomes tokens
//! (the amounts themselves are fixed by [`ProductId::tokens`]).

use crate::config::{Config, CreditSettings, PriceIds};
use crate::domain::{Expiry, GrantTerms, Money, Offer, ProductId, Rollover, Timestamp, Tokens};

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone)]
struct Entry {
    product: ProductId,
    price_id: String,
    price: Option<Money>,
}

#[derive(Debug, Clone)]
pub struct Catalog {
    entries: Vec<Entry>,
    trial_allowance: Option<Tokens>,
    credits: CreditSettings,
}

impl Catalog {
    /// The products whose price ids are configured (the plan is optional).
    pub fn from_prices(prices: &PriceIds) -> Self {
        let mut entries = vec![
            (ProductId::Small, prices.tokens_small.clone()),
            (ProductId::Medium, prices.tokens_medium.clone()),
            (ProductId::Large, prices.tokens_large.clone()),
        ];
        if let Some(starter) = &prices.subscription_starter {
            entries.push((ProductId::Starter, starter.clone()));
        }
        Self {
            entries: entries
                .into_iter()
                .map(|(product, price_id)| Entry {
                    product,
                    price_id,
                    price: None,
                })
                .collect(),
            trial_allowance: None,
            credits: CreditSettings::default(),
        }
    }

    /// The catalog the settings describe: prices, the trial allowance, the expiry rules.
    pub fn from_config(config: &Config) -> Self {
        Self::from_prices(&config.stripe.prices)
            .with_trial_allowance(config.stripe.trial_allowance)
            .with_credit_rules(config.credits)
    }

    /// When the tokens it grants expire (by default packs last a year, plan tokens their
    /// period, with nothing rolled over).
    pub fn with_credit_rules(mut self, credits: CreditSettings) -> Self {
        self.credits = credits;
        self
    }

    /// The terms of a pack's tokens: they last the configured days from their credit.
    pub fn pack_terms(&self) -> GrantTerms {
        match self.credits.pack_expiry_days {
            Some(days) => GrantTerms::lasting_ms(i64::from(days) * DAY_MS),
            None => GrantTerms::NEVER,
        }
    }

    /// The terms of a plan period's tokens (and a trial's): they expire at the period's end,
    /// keeping up to the rollover cap for one more period of the same length. A period Stripe
    /// did not say the end of never expires.
    pub fn period_terms(&self, period: Option<(Timestamp, Timestamp)>) -> GrantTerms {
        let Some((start, end)) = period else {
            return GrantTerms::NEVER;
        };
        let length = end.as_millis() - start.as_millis();
        GrantTerms {
            expiry: Expiry::At(end),
            rollover: self
                .credits
                .plan_rollover_cap
                .filter(|_| length > 0)
                .map(|cap| Rollover {
                    cap,
                    period_ms: length,
                }),
        }
    }

    /// Grants `tokens` once per Stripe customer for a subscription's first invoice when it is
    /// free (a trial, a 100% coupon); without it a free invoice grants nothing.
    pub fn with_trial_allowance(mut self, tokens: Option<Tokens>) -> Self {
        self.trial_allowance = tokens;
        self
    }

    pub fn trial_allowance(&self) -> Option<Tokens> {
        self.trial_allowance
    }

    /// Records what a product costs, for display.
    pub fn set_price(&mut self, product: ProductId, price: Money) {
        if let Some(entry) = self.entries.iter_mut().find(|e| e.product == product) {
            entry.price = Some(price);
        }
    }

    /// The product a Stripe price id stands for; `None` for a price this app does not sell.
    pub fn product_of(&self, price_id: &str) -> Option<ProductId> {
        self.entries
            .iter()
            .find(|e| e.price_id == price_id)
            .map(|e| e.product)
    }

    /// The Stripe price id of a product, when it is on sale.
    pub fn price_id(&self, product: ProductId) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.product == product)
            .map(|e| e.price_id.as_str())
    }

    pub fn price_ids(&self) -> impl Iterator<Item = (ProductId, &str)> {
        self.entries
            .iter()
            .map(|e| (e.product, e.price_id.as_str()))
    }

    pub fn offers(&self) -> Vec<Offer> {
        self.entries
            .iter()
            .map(|e| Offer {
                product: e.product,
                label: e.product.label().to_owned(),
                kind: e.product.kind(),
                tokens: e.product.tokens(),
                price: e.price,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Currency, ProductKind};

    fn prices(starter: Option<&str>) -> PriceIds {
        PriceIds {
            tokens_small: "price_s".into(),
            tokens_medium: "price_m".into(),
            tokens_large: "price_l".into(),
            subscription_starter: starter.map(str::to_owned),
        }
    }

    #[test]
    fn price_ids_map_to_products_and_nothing_else() {
        let catalog = Catalog::from_prices(&prices(Some("price_sub")));
        assert_eq!(catalog.product_of("price_m"), Some(ProductId::Medium));
        assert_eq!(catalog.product_of("price_sub"), Some(ProductId::Starter));
        assert_eq!(catalog.product_of("price_unknown"), None);
        assert_eq!(catalog.price_id(ProductId::Large), Some("price_l"));
    }

    #[test]
    fn the_plan_is_offered_only_when_configured() {
        let without = Catalog::from_prices(&prices(None));
        assert_eq!(without.offers().len(), 3);
        assert_eq!(without.price_id(ProductId::Starter), None);

        let mut with = Catalog::from_prices(&prices(Some("price_sub")));
        with.set_price(
            ProductId::Medium,
            Money::new(4000, Currency::parse("usd").unwrap()).unwrap(),
        );
        let offers = with.offers();
        assert_eq!(offers.len(), 4);
        assert_eq!(offers[1].tokens.get(), 5_000);
        assert_eq!(offers[1].price.unwrap().to_string(), "$40.00");
        assert_eq!(offers[3].kind, ProductKind::Subscription);
    }
}
