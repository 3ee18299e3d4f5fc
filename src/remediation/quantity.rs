//! Resource quantities compared by value, as Kubernetes' semantic equality
//! does: `500m` equals `0.5`, `1Gi` equals `1073741824`, `1e3` equals `1k`.

/// A canonical form of a quantity: `mantissa × 10^exp` with no trailing
/// zeros in the mantissa, so equal values have equal forms. `None` when the
/// string is not a quantity (or too large to normalise exactly), in which
/// case callers compare the strings.
pub(crate) fn canonical(q: &str) -> Option<(i128, i32)> {
    let q = q.trim();
    let (number, suffix) = split_number(q)?;
    let (sign, digits) = match number.strip_prefix('-') {
        Some(rest) => (-1i128, rest),
        None => (1, number.strip_prefix('+').unwrap_or(number)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut mantissa: i128 = 0;
    for c in int.chars().chain(frac.chars()) {
        let d = c.to_digit(10)?;
        mantissa = mantissa.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    let mut exp = -i32::try_from(frac.len()).ok()?;
    match suffix {
        "" => {}
        "n" => exp -= 9,
        "u" => exp -= 6,
        "m" => exp -= 3,
        "k" => exp += 3,
        "M" => exp += 6,
        "G" => exp += 9,
        "T" => exp += 12,
        "P" => exp += 15,
        "E" => exp += 18,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = match suffix {
                "Ki" => 1,
                "Mi" => 2,
                "Gi" => 3,
                "Ti" => 4,
                "Pi" => 5,
                _ => 6,
            };
            mantissa = mantissa.checked_mul(1024i128.checked_pow(power)?)?;
        }
        s if s.starts_with(['e', 'E']) => {
            exp = exp.checked_add(s[1..].parse::<i32>().ok()?)?;
        }
        _ => return None,
    }
    if mantissa == 0 {
        return Some((0, 0));
    }
    while mantissa % 10 == 0 {
        mantissa /= 10;
        exp += 1;
    }
    Some((sign * mantissa, exp))
}

fn split_number(q: &str) -> Option<(&str, &str)> {
    let end = q
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || ((*c == '-' || *c == '+') && *i == 0)))
        .map_or(q.len(), |(i, _)| i);
    Some((&q[..end], &q[end..]))
}

/// Whether two quantity strings are the same value.
#[cfg(test)]
fn equal(a: &str, b: &str) -> bool {
    match (canonical(a), canonical(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_by_value() {
        assert!(equal("500m", "0.5"));
        assert!(equal("1Gi", "1073741824"));
        assert!(equal("1k", "1e3"));
        assert!(equal("1000", "1k"));
        assert!(equal("0", "0m"));
        assert!(equal("128Mi", "131072Ki"));
        assert!(!equal("1", "1m"));
        assert!(!equal("1Gi", "1G"));
        assert!(equal("-1", "-1000m"));
        assert!(!equal("x", "y"));
        assert!(equal("x", "x"));
    }
}
