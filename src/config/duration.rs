use chrono::TimeDelta;

/// The units durations accept, with their length in seconds. Deliberately
/// small: `M` (month) or `y` would be traps in an autoscaler's settings.
const UNITS: [(&str, i64); 5] = [
    ("s", 1),
    ("m", 60),
    ("h", 3_600),
    ("d", 86_400),
    ("w", 604_800),
];

/// How to write a duration, appended to every error.
const HINT: &str = "write durations like 90s, 15m, 2h, 14d or 1w";

/// A duration string could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The text is not a sequence of `<integer><unit>` terms.
    #[error("invalid duration {text:?}: {reason} ({HINT})")]
    Invalid {
        /// What the user wrote.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The duration parsed but is zero, which no setting accepts.
    #[error("invalid duration {text:?}: must be greater than zero")]
    Zero {
        /// What the user wrote.
        text: String,
    },
}

/// Parses a duration that may be zero (`0s`), for the settings where zero
/// means "none" (the shutdown delay).
pub fn parse_duration_or_zero(text: &str) -> Result<std::time::Duration, DurationError> {
    match parse_duration(text) {
        Ok(d) => d.to_std().map_err(|e| DurationError::Invalid {
            text: text.to_string(),
            reason: e.to_string(),
        }),
        Err(DurationError::Zero { .. }) => Ok(std::time::Duration::ZERO),
        Err(e) => Err(e),
    }
}

/// Parses a positive duration written like `90s`, `15m`, `2h`, `14d` or `1w`,
/// or a sum of such terms (`1h30m`).
pub fn parse_duration(text: &str) -> Result<TimeDelta, DurationError> {
    let invalid = |reason: String| DurationError::Invalid {
        text: text.to_string(),
        reason,
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(invalid("empty".into()));
    }
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid(format!("expected a whole number at {rest:?}")));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("number too large".into()))?;
        rest = &rest[digits..];
        if rest.starts_with(['.', ',']) {
            return Err(invalid(
                "fractions are not supported; use a smaller unit, e.g. 90m rather than 1.5h".into(),
            ));
        }
        let unit_len = rest.len()
            - rest
                .trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(invalid(format!(
                "missing unit after {number} (use s, m, h, d or w)"
            )));
        }
        let Some((_, secs)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(invalid(format!(
                "unknown unit {unit:?} (use s, m, h, d or w)"
            )));
        };
        total = number
            .checked_mul(*secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| invalid("too large".into()))?;
        rest = &rest[unit_len..];
    }
    if total == 0 {
        return Err(DurationError::Zero {
            text: text.to_string(),
        });
    }
    if total > MAX_SECONDS {
        return Err(invalid(format!("longer than {}w", MAX_SECONDS / 604_800)));
    }
    TimeDelta::try_seconds(total).ok_or_else(|| invalid("too large".into()))
}

/// The longest duration any setting takes: about ten years. Every setting
/// is added to and multiplied with instants and other settings, and chrono
/// panics when an instant leaves its range, so the bound keeps a typo
/// (`7000000w`) an error rather than a crash; settings also have their own,
/// tighter bounds where a long value would cost work.
const MAX_SECONDS: i64 = 520 * 604_800;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_would_overflow_an_instant_is_refused() {
        assert_eq!(parse_duration("520w").unwrap(), TimeDelta::weeks(520));
        for text in ["521w", "7000000w", "9223372036854775807s"] {
            let e = parse_duration(text).unwrap_err().to_string();
            assert!(
                e.contains("longer than 520w") || e.contains("too large"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn common_units() {
        assert_eq!(parse_duration("90s").unwrap(), TimeDelta::seconds(90));
        assert_eq!(parse_duration("15m").unwrap(), TimeDelta::minutes(15));
        assert_eq!(parse_duration("2h").unwrap(), TimeDelta::hours(2));
        assert_eq!(parse_duration("14d").unwrap(), TimeDelta::days(14));
        assert_eq!(parse_duration("1w").unwrap(), TimeDelta::weeks(1));
        assert_eq!(parse_duration(" 1h30m ").unwrap(), TimeDelta::minutes(90));
    }

    #[test]
    fn errors_name_the_problem() {
        let msg = |s: &str| parse_duration(s).unwrap_err().to_string();
        assert_eq!(
            msg("5x"),
            r#"invalid duration "5x": unknown unit "x" (use s, m, h, d or w) (write durations like 90s, 15m, 2h, 14d or 1w)"#
        );
        assert!(msg("15").contains("missing unit after 15"));
        assert!(msg("soon").contains(r#"expected a whole number at "soon""#));
        assert!(msg("1.5h").contains("fractions are not supported"));
        assert!(msg("").contains("empty"));
        assert!(msg("1M").contains(r#"unknown unit "M""#));
        assert!(msg("99999999999999999999w").contains("too large"));
        assert!(matches!(
            parse_duration("0s"),
            Err(DurationError::Zero { .. })
        ));
    }
}
