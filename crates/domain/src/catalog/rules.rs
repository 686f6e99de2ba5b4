//! Field rules the catalog's inputs share: integers within bounds, display
//! names, non-blank strings.

pub(super) fn bounded(n: i64, min: i64, max: i64) -> Result<u32, String> {
    if (min..=max).contains(&n) {
        u32::try_from(n).map_err(|e| e.to_string())
    } else {
        Err(format!("must be between {min} and {max} (got {n})"))
    }
}

pub(super) fn name(s: &str) -> Result<String, String> {
    let trimmed = s.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 {
        Err("must be 1 to 100 characters".into())
    } else {
        Ok(trimmed.to_owned())
    }
}

pub(super) fn non_blank(s: &str) -> Result<String, String> {
    if s.trim().is_empty() || s.len() > 255 {
        Err("must be 1 to 255 characters".into())
    } else {
        Ok(s.trim().to_owned())
    }
}
