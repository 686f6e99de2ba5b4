//! Status columns read into `domain`'s enums.
//!
//! A status is stored as its wire spelling (`text` with a `CHECK`) and read
//! into the domain enum that owns its rules, so no caller compares status
//! strings by hand. A row field says so with
//! `#[diesel(deserialize_as = Parsed<TenantStatus>)]`; a spelling the enum
//! does not know is a deserialization error naming the value.

use std::{fmt::Display, str::FromStr};

use diesel::{
    deserialize::{self, FromSql},
    pg::{Pg, PgValue},
    sql_types::Text,
};
use tenantry_domain::{
    JobStatus, SubscriptionStatus, TenantStatus,
    billing::{ChangeKind, PlanChangeStatus, Timing},
};

/// A `text` column parsed with `T`'s `FromStr`: the intermediate type of a
/// `deserialize_as` field whose type is `T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct Parsed<T>(pub T);

impl<T> FromSql<Text, Pg> for Parsed<T>
where
    T: FromStr,
    T::Err: Display,
{
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
        text.parse::<T>()
            .map(Parsed)
            .map_err(|e| e.to_string().into())
    }
}

macro_rules! parsed_enums {
    ($($t:ty),+ $(,)?) => {$(
        impl From<Parsed<$t>> for $t {
            fn from(p: Parsed<$t>) -> Self {
                p.0
            }
        }
    )+};
}

parsed_enums!(
    TenantStatus,
    SubscriptionStatus,
    JobStatus,
    PlanChangeStatus,
    Timing,
    ChangeKind,
);
