//! Unit tests of tenant databases that need no server: names, passwords,
//! redacted debug output and which errors are worth a retry.

use tenantry_domain::TenantSlug;

use super::*;
use proptest::prelude::*;

fn slug(s: &str) -> TenantSlug {
    TenantSlug::parse(s).unwrap()
}

#[test]
fn names_come_from_slugs() {
    assert_eq!(
        TenantDbName::from_slug(&slug("acme-corp")).as_str(),
        "t_acme_corp"
    );
    let sixty = "a".repeat(60);
    assert_eq!(
        TenantDbName::from_slug(&slug(&sixty)).as_str(),
        format!("t_{sixty}")
    );
    let long = format!("{}-x", "b".repeat(61));
    let name = TenantDbName::from_slug(&slug(&long));
    assert_eq!(name.as_str().len(), 63);
    assert!(name.as_str().starts_with(&format!("t_{}_", "b".repeat(48))));
    assert_eq!(TenantDbName::parse(name.as_str()), Ok(name));
}

#[test]
fn names_are_validated() {
    assert!(TenantDbName::parse("t_acme_1").is_ok());
    assert_eq!(TenantDbName::parse("t_"), Err(TenantDbNameError::Prefix));
    assert_eq!(
        TenantDbName::parse("postgres"),
        Err(TenantDbNameError::Prefix)
    );
    assert_eq!(
        TenantDbName::parse("pg_t_x"),
        Err(TenantDbNameError::Prefix)
    );
    assert_eq!(
        TenantDbName::parse("t_Acme"),
        Err(TenantDbNameError::Character('A'))
    );
    assert_eq!(
        TenantDbName::parse("t_a-b"),
        Err(TenantDbNameError::Character('-'))
    );
    assert_eq!(
        TenantDbName::parse("t_a\"; DROP ROLE postgres; --"),
        Err(TenantDbNameError::Character('"'))
    );
    assert_eq!(
        TenantDbName::parse(&format!("t_{}", "a".repeat(62))),
        Err(TenantDbNameError::TooLong(64))
    );
    assert_eq!("t_x".parse::<TenantDbName>().unwrap().to_string(), "t_x");
}

#[test]
fn passwords_are_32_url_safe_characters() {
    let a = generate_password();
    let b = generate_password();
    assert_eq!(a.expose_secret().len(), 32);
    assert!(
        a.expose_secret()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_ne!(a.expose_secret(), b.expose_secret());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let server = DatabaseServer::new(SecretString::from(
        "postgres://admin:hunter2@db:5432/postgres".to_owned(),
    ));
    assert!(!format!("{server:?}").contains("hunter2"));
}

#[test]
fn errors_say_whether_to_retry() {
    let name = TenantDbName::parse("t_x").unwrap();
    assert!(
        TenantDbError::Unavailable {
            action: "a",
            reason: "r".into()
        }
        .is_transient()
    );
    assert!(
        TenantDbError::Busy {
            action: "a",
            reason: "r".into()
        }
        .is_transient()
    );
    assert!(
        !TenantDbError::Refused {
            action: "a",
            code: "42501".into(),
            reason: "r".into()
        }
        .is_transient()
    );
    assert!(!TenantDbError::NoSuchDatabase(name.clone()).is_transient());
    assert!(!TenantDbError::Invalid("x".into()).is_transient());
    let dump = |transient| TenantDbError::Dump {
        name: name.clone(),
        status: "exit status: 1".into(),
        stderr: String::new(),
        transient,
    };
    assert!(dump(true).is_transient() && !dump(false).is_transient());
}

proptest! {
    #[test]
    fn every_tenant_slug_gives_a_valid_distinct_name(
        a in "[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
        b in "[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
    ) {
        let (Ok(sa), Ok(sb)) = (TenantSlug::parse(&a), TenantSlug::parse(&b)) else {
            return Ok(());
        };
        let (na, nb) = (TenantDbName::from_slug(&sa), TenantDbName::from_slug(&sb));
        prop_assert!(na.as_str().len() <= TenantDbName::MAX_LEN);
        prop_assert_eq!(TenantDbName::parse(na.as_str()), Ok(na.clone()));
        prop_assert_eq!(a == b, na == nb);
    }

    #[test]
    fn long_slugs_sharing_a_prefix_still_differ(tail_a in "[a-z0-9]{13,15}", tail_b in "[a-z0-9]{13,15}") {
        let head = "c".repeat(48);
        let (a, b) = (format!("{head}{tail_a}"), format!("{head}{tail_b}"));
        let (na, nb) = (
            TenantDbName::from_slug(&slug(&a)),
            TenantDbName::from_slug(&slug(&b)),
        );
        prop_assert_eq!(na.as_str().len(), 63);
        prop_assert_eq!(a == b, na == nb);
    }
}
