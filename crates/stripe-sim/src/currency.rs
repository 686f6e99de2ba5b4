//! The currencies Stripe charges in, and the error for any other.

use serde_json::{Value, json};

/// The presentment currencies Stripe supports, lower case as the API takes
/// them: the list on docs.stripe.com/currencies ("Supported presentment
/// currencies", 134 ISO 4217 codes, as a US account answers them).
/// Three-decimal currencies (BHD, JOD, KWD, OMR, TND) are not in it: a US
/// account refuses them.
pub const SUPPORTED_CURRENCIES: &[&str] = &[
    "usd", "aed", "afn", "all", "amd", "ang", "aoa", "ars", "aud", "awg", "azn", "bam", "bbd",
    "bdt", "bgn", "bif", "bmd", "bnd", "bob", "brl", "bsd", "bwp", "byn", "bzd", "cad", "cdf",
    "chf", "clp", "cny", "cop", "crc", "cve", "czk", "djf", "dkk", "dop", "dzd", "egp", "etb",
    "eur", "fjd", "fkp", "gbp", "gel", "gip", "gmd", "gnf", "gtq", "gyd", "hkd", "hnl", "htg",
    "huf", "idr", "ils", "inr", "isk", "jmd", "jpy", "kes", "kgs", "khr", "kmf", "krw", "kyd",
    "kzt", "lak", "lbp", "lkr", "lrd", "lsl", "mad", "mdl", "mga", "mkd", "mmk", "mnt", "mop",
    "mur", "mvr", "mwk", "mxn", "myr", "mzn", "nad", "ngn", "nio", "nok", "npr", "nzd", "pab",
    "pen", "pgk", "php", "pkr", "pln", "pyg", "qar", "ron", "rsd", "rub", "rwf", "sar", "sbd",
    "scr", "sek", "sgd", "shp", "sle", "sos", "srd", "std", "szl", "thb", "tjs", "top", "try",
    "ttd", "twd", "tzs", "uah", "ugx", "uyu", "uzs", "vnd", "vuv", "wst", "xaf", "xcd", "xof",
    "xpf", "yer", "zar", "zmw",
];

/// `currency` (any case) as Stripe stores it, lower case, when Stripe
/// supports it; else Stripe's 400 naming `param`:
/// `Invalid currency: xyz. Stripe currently supports these currencies: …`.
pub(crate) fn supported(currency: &Value, param: &str) -> Result<String, (u16, Value)> {
    let Some(code) = currency.as_str().map(str::to_ascii_lowercase) else {
        return Err((
            400,
            json!({"error": {"type": "invalid_request_error", "code": "parameter_missing", "param": param,
                "message": format!("Missing required param: {param}.")}}),
        ));
    };
    if SUPPORTED_CURRENCIES.contains(&code.as_str()) {
        return Ok(code);
    }
    Err((
        400,
        json!({"error": {"type": "invalid_request_error", "param": param,
            "message": format!("Invalid currency: {code}. Stripe currently supports these currencies: {}",
                SUPPORTED_CURRENCIES.join(", "))}}),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{SUPPORTED_CURRENCIES, supported};

    #[test]
    fn the_list_is_lower_case_iso_codes_without_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for c in SUPPORTED_CURRENCIES {
            assert!(
                c.len() == 3 && c.chars().all(|ch| ch.is_ascii_lowercase()),
                "{c}"
            );
            assert!(seen.insert(c), "{c} twice");
        }
        assert_eq!(SUPPORTED_CURRENCIES.len(), 134);
    }

    #[test]
    fn an_unsupported_currency_is_refused_with_stripes_message() {
        assert_eq!(supported(&json!("EUR"), "currency").unwrap(), "eur");
        let (status, body) = supported(&json!("xyz"), "currency").unwrap_err();
        assert_eq!(status, 400);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "currency");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with(
                "Invalid currency: xyz. Stripe currently supports these currencies: usd, aed, afn,"
            ),
            "{message}"
        );
        assert_eq!(supported(&json!(null), "currency").unwrap_err().0, 400);
    }
}
