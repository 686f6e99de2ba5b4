//! A plan's availability target (SLA), in percent.

use rust_decimal::Decimal;

/// An availability target in percent, `0 < sla ≤ 100`, e.g. 99.9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaPercent(Decimal);

impl SlaPercent {
    /// Validates an SLA percentage (at most 3 decimal places: 99.999).
    ///
    /// # Errors
    /// A message when out of range or too precise.
    pub fn parse(d: Decimal) -> Result<Self, String> {
        if d <= Decimal::ZERO || d > Decimal::ONE_HUNDRED {
            return Err(format!("must be greater than 0 and at most 100 (got {d})"));
        }
        if d.normalize().scale() > 3 {
            return Err("at most 3 decimal places".into());
        }
        Ok(Self(d.normalize()))
    }

    /// The percentage.
    pub fn get(&self) -> Decimal {
        self.0
    }
}
