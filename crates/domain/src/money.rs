//! Exact money: a decimal amount with its ISO 4217 currency, never a float.
//!
//! Amounts are held at the currency's minor unit (2 decimals for USD/EUR, 0 for
//! JPY/CLP, 3 for KWD/BHD…), the precision Stripe and every ledger use
//! (docs.stripe.com/currencies#zero-decimal). Arithmetic across currencies is
//! an error, not a silent conversion.

use std::{fmt, str::FromStr};

use rust_decimal::{Decimal, RoundingStrategy};

/// An ISO 4217 currency that has a minor unit (so not XAU, XDR and the like).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    iso: iso_currency::Currency,
    minor_unit: u32,
}

/// Why an amount or currency was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Not an ISO 4217 alphabetic code, or one without a minor unit.
    #[error("{0:?} is not an ISO 4217 currency code with a minor unit (e.g. USD, EUR, JPY)")]
    UnknownCurrency(String),
    /// More decimal places than the currency's minor unit allows.
    #[error("{amount} has more decimal places than {currency} allows ({minor_unit})")]
    TooPrecise {
        /// The amount as given.
        amount: Decimal,
        /// The currency's code.
        currency: &'static str,
        /// Decimal places of the currency's minor unit.
        minor_unit: u32,
    },
    /// An operation mixed two currencies.
    #[error("cannot combine {0} and {1} amounts")]
    CurrencyMismatch(&'static str, &'static str),
    /// The result does not fit the decimal range.
    #[error("amount out of range")]
    Overflow,
}

impl Currency {
    /// Parses an upper-case ISO 4217 alphabetic code (`USD`, `EUR`, `JPY`).
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] for an unknown code, a lower-case one,
    /// or a code with no minor unit (precious metals, special drawing rights).
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let unknown = || MoneyError::UnknownCurrency(code.to_owned());
        let iso = iso_currency::Currency::from_code(code).ok_or_else(unknown)?;
        let minor_unit = iso.exponent().ok_or_else(unknown)?;
        Ok(Self {
            iso,
            minor_unit: u32::from(minor_unit),
        })
    }

    /// The three-letter code, e.g. `USD`.
    pub fn code(&self) -> &'static str {
        self.iso.code()
    }

    /// Decimal places of the minor unit: 2 for USD, 0 for JPY, 3 for KWD.
    pub fn minor_unit(&self) -> u32 {
        self.minor_unit
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An amount in a currency, exact to the currency's minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// An amount that must already be exact to the minor unit: `29`, `29.9`
    /// and `29.90` are fine in USD, `29.999` is not.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`] when `amount` has more decimal places than
    /// the currency allows.
    pub fn exact(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        let normalized = amount.normalize();
        if normalized.scale() > currency.minor_unit {
            return Err(MoneyError::TooPrecise {
                amount,
                currency: currency.code(),
                minor_unit: currency.minor_unit,
            });
        }
        Ok(Self::rounded(normalized, currency))
    }

    /// `amount` rounded to the currency's minor unit, half away from zero
    /// (0.005 USD → 0.01 USD), the rounding Stripe applies to prorations.
    pub fn rounded(amount: Decimal, currency: Currency) -> Self {
        let mut amount = amount
            .round_dp_with_strategy(currency.minor_unit, RoundingStrategy::MidpointAwayFromZero);
        amount.rescale(currency.minor_unit);
        Self { amount, currency }
    }

    /// An amount from an integer count of minor units (cents for USD, yen for JPY).
    pub fn from_minor_units(units: i64, currency: Currency) -> Self {
        Self {
            amount: Decimal::new(units, currency.minor_unit),
            currency,
        }
    }

    /// Zero in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self::from_minor_units(0, currency)
    }

    /// The amount, with exactly `currency.minor_unit()` decimal places.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// The currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// The amount as an integer count of minor units, as Stripe's `amount` fields take it.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] when it does not fit an `i64`.
    pub fn minor_units(&self) -> Result<i64, MoneyError> {
        let units = self.amount.mantissa();
        i64::try_from(units).map_err(|_| MoneyError::Overflow)
    }

    /// True when the amount is zero.
    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    /// True when the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    fn same_currency(&self, other: &Self) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(
                self.currency.code(),
                other.currency.code(),
            ))
        }
    }

    /// `self + other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_add(&self, other: &Self) -> Result<Self, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_add(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::rounded(amount, self.currency))
    }

    /// `self - other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_sub(&self, other: &Self) -> Result<Self, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount
            .checked_sub(other.amount)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::rounded(amount, self.currency))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    #[test]
    fn minor_units_follow_iso_4217() {
        assert_eq!(usd().minor_unit(), 2);
        assert_eq!(Currency::parse("JPY").unwrap().minor_unit(), 0);
        assert_eq!(Currency::parse("CLP").unwrap().minor_unit(), 0);
        assert_eq!(Currency::parse("KWD").unwrap().minor_unit(), 3);
    }

    #[test]
    fn unknown_and_unitless_currencies_are_refused() {
        for bad in ["usd", "XXX1", "ABC", "XAU", ""] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_refuses_sub_minor_precision() {
        assert_eq!(
            Money::exact(dec!(29), usd()).unwrap().amount().to_string(),
            "29.00"
        );
        assert!(Money::exact(dec!(29.9000), usd()).is_ok());
        assert!(matches!(
            Money::exact(dec!(29.999), usd()),
            Err(MoneyError::TooPrecise { .. })
        ));
        let jpy = Currency::parse("JPY").unwrap();
        assert!(Money::exact(dec!(100.5), jpy).is_err());
        assert_eq!(Money::exact(dec!(100), jpy).unwrap().minor_units(), Ok(100));
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        assert_eq!(Money::rounded(dec!(0.005), usd()).amount(), dec!(0.01));
        assert_eq!(Money::rounded(dec!(-0.005), usd()).amount(), dec!(-0.01));
        assert_eq!(Money::rounded(dec!(0.0049), usd()).amount(), dec!(0.00));
    }

    #[test]
    fn mixing_currencies_is_an_error() {
        let eur = Currency::parse("EUR").unwrap();
        let a = Money::from_minor_units(100, usd());
        let b = Money::from_minor_units(100, eur);
        assert_eq!(
            a.checked_add(&b),
            Err(MoneyError::CurrencyMismatch("USD", "EUR"))
        );
        assert!(a.checked_sub(&b).is_err());
    }

    proptest! {
        #[test]
        fn minor_units_round_trip(units in -1_000_000_000_000i64..1_000_000_000_000) {
            let m = Money::from_minor_units(units, usd());
            prop_assert_eq!(m.minor_units(), Ok(units));
            prop_assert_eq!(Money::exact(m.amount(), usd()), Ok(m));
        }

        #[test]
        fn addition_then_subtraction_is_identity(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
            let (a, b) = (Money::from_minor_units(a, usd()), Money::from_minor_units(b, usd()));
            prop_assert_eq!(a.checked_add(&b).unwrap().checked_sub(&b).unwrap(), a);
        }
    }
}
